"""Spectrogram-domain scores of models on the music-dev clips.

The model's input tile against its output tile, as the codec runs it (eval
mode, hard quantiser), per clip and then averaged; with the 'each clip's own
mean' row so a grey output is never mistaken for learning.

    python bench/score.py default [path/to/other.pt ...]
"""

from __future__ import annotations

import argparse

from common import machine, music_dev, save

from melcodec import evaluate, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--name", default="scores", help="results file name")
    args = ap.parse_args()
    tiles = evaluate.tiles_of(music_dev())
    rows = {"each clip's own mean": evaluate.mean_baseline(tiles)}
    cards = {}
    for name in args.models:
        model = load_model(name)
        rows[model.name] = evaluate.summary(evaluate.per_tile(model.net, tiles))
        cards[model.name] = {"sha256": model.sha256.hex(), **model.card}
    m = machine()
    lines = [
        f"Spectrogram-domain scores on {len(tiles)} music-dev tiles (eval mode, hard quantiser), "
        f"{m['date']}.",
        "",
        "| model | MSE | NLPD | MS-SSIM |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['mse']:.4f} | {v['nlpd']:.2f} | {v['msssim']:.3f} |"
            for k, v in rows.items()
        ),
    ]
    save(args.name, {"machine": m, "scores": rows, "cards": cards}, "\n".join(lines))


if __name__ == "__main__":
    main()
