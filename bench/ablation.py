"""Ablation of the noise-training recipe (issue 5), one variant per call.

Each variant trains on uniform noise from the same seed for the same number of
steps, validating on the music-dev clips every ``--val-every`` steps (the
learning curve), then scores all music-dev tiles in the spectrogram domain as
the codec runs the model (eval mode, hard quantiser). Results are appended to
bench/results/ablation.jsonl; ``--table`` renders them as Markdown.

    python bench/ablation.py base-nlpd --steps 300
    python bench/ablation.py --table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from common import RESULTS, machine, music_dev

from melcodec import evaluate, load_model, train
from melcodec.model import ArchConfig
from melcodec.recipes import RECIPES

BASE = RECIPES["cpu-v1"]  # the recipe these rows were run with
PAPER_ARCH = ArchConfig()  # BatchNorm before Tanh, soft quantiser, s = 10
OURS = BASE.arch
STE = RECIPES["cpu-uniform"]  # BASE + straight-through quantiser

# name: (what changes, loss, recipe)
VARIANTS = {
    "paper-mse": ("paper arch, MSE", "mse", dataclasses.replace(BASE, arch=PAPER_ARCH)),
    "paper-nlpd": ("paper arch, NLPD", "nlpd", dataclasses.replace(BASE, arch=PAPER_ARCH)),
    "base-mse": ("no BatchNorm before Tanh, MSE", "mse", BASE),
    "base-nlpd": ("no BatchNorm before Tanh, NLPD", "nlpd", BASE),
    "ste-nlpd": (
        "base + straight-through quantiser",
        "nlpd",
        dataclasses.replace(BASE, arch=dataclasses.replace(OURS, quantiser="ste")),
    ),
    "ste-mse": (
        "base + straight-through quantiser, MSE",
        "mse",
        dataclasses.replace(BASE, arch=dataclasses.replace(OURS, quantiser="ste")),
    ),
    "soft1-nlpd": (
        "base + softness s = 1",
        "nlpd",
        dataclasses.replace(BASE, arch=dataclasses.replace(OURS, softness=1.0)),
    ),
    "const-lr-nlpd": ("base, constant lr", "nlpd", dataclasses.replace(BASE, schedule="constant")),
    "lr3e-4-nlpd": ("base, lr 3e-4", "nlpd", dataclasses.replace(BASE, lr=3e-4)),
    "crop64-nlpd": (
        "base, crop 64 x batch 64 (same pixels)",
        "nlpd",
        dataclasses.replace(BASE, crop=64, batch_size=64),
    ),
    "crop256-nlpd": (
        "base, crop 256 x batch 4 (same pixels)",
        "nlpd",
        dataclasses.replace(BASE, crop=256, batch_size=4),
    ),
    "octaves-nlpd": (
        "straight-through, noise at every scale (data.octave_noise)",
        "nlpd",
        dataclasses.replace(STE, noise="octaves"),
    ),
    "octaves-mse": (
        "straight-through, noise at every scale, MSE",
        "mse",
        dataclasses.replace(STE, noise="octaves"),
    ),
    "octaves-msssim": (
        "straight-through, noise at every scale, MS-SSIM",
        "msssim",
        dataclasses.replace(STE, noise="octaves"),
    ),
    "paper-octaves-mse": (
        "paper arch (BatchNorm before Tanh, soft quantiser), noise at every scale, MSE",
        "mse",
        dataclasses.replace(BASE, arch=PAPER_ARCH, noise="octaves"),
    ),
    "ste-crop256-nlpd": (
        "straight-through, crop 256 x batch 4 (same pixels)",
        "nlpd",
        dataclasses.replace(STE, crop=256, batch_size=4),
    ),
}
# Trained on music (the training corpus, --music), not noise: does the recipe suit both?
MUSIC_VARIANTS = {
    "music-v1-nlpd": ("cpu-v1 recipe on training music", "nlpd", BASE),
    "music-ste-nlpd": ("straight-through (cpu-uniform) on training music", "nlpd", STE),
}
VARIANTS.update(MUSIC_VARIANTS)
LOG = RESULTS / "ablation.jsonl"


def run(name: str, steps: int, val_every: int, out_root: Path, music: Path) -> dict:
    what, loss, recipe = VARIANTS[name]
    recipe = dataclasses.replace(recipe, steps=steps)
    out = out_root / name
    opts = train.RunOptions(
        loss=loss,
        data=str(music) if name in MUSIC_VARIANTS else "noise",
        recipe=recipe,
        out=out,
        seed=0,
        val_every=val_every,
        checkpoint_every=val_every,
        val_data=str(music_dev()[0].parent),
        resume=True,
        name=f"ablation-{name}",
    )
    model = load_model(train.train(opts))
    wall = model.card["wall_time_s"]  # includes the steps before a resume
    net = model.net
    tiles = evaluate.tiles_of(music_dev())
    final = evaluate.summary(evaluate.per_tile(net, tiles))
    curve = [
        {"step": r["step"], **r["val"]}
        for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
        if "val" in r
    ]
    result = {
        "variant": name,
        "what": what,
        "loss": loss,
        "data": "music" if name in MUSIC_VARIANTS else "noise",
        "recipe": recipe.to_dict(),
        "music_dev": final,
        "curve": curve,
        "wall_s": round(wall, 1),
        "machine": machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    return result


def batch_stats_row(name: str, out_root: Path, tiles) -> str:
    """Eval-only row: the trained variant with BatchNorm on the test batch's statistics."""
    net = load_model(out_root / name / "model.pt").net
    m = evaluate.summary(evaluate.per_tile(net, tiles, batch=len(tiles), batch_stats=True))
    return (
        f"| {name}, batch stats | same model, BatchNorm with the statistics of the 20 "
        f"music tiles instead of its running (noise) ones | | | | {m['mse']:.4f} | "
        f"{m['nlpd']:.2f} | {m['msssim']:.3f} | - |"
    )


def table(batch_stats: list[str], out_root: Path) -> str:
    runs = [json.loads(line) for line in LOG.read_text().splitlines()] if LOG.exists() else []
    rows = list({r["variant"]: r for r in runs}.values())  # a rerun replaces its row
    for r in rows:  # the card's wall time counts the steps before a resume too
        path = out_root / r["variant"] / "model.pt"
        if path.exists():
            r["wall_s"] = load_model(path).card["wall_time_s"]
    tiles = evaluate.tiles_of(music_dev())
    base = evaluate.mean_baseline(tiles)
    lines = [
        "| variant | change | loss | steps | batch x crop | MSE | NLPD | MS-SSIM | wall |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| mean | each clip's own mean, no model | - | - | - | {base['mse']:.4f} | "
        f"{base['nlpd']:.2f} | {base['msssim']:.3f} | - |",
    ]
    for r in rows:
        m, rc = r["music_dev"], r["recipe"]
        what = VARIANTS.get(r["variant"], (r["what"],))[0]
        lines.append(
            f"| {r['variant']} | {what} | {r['loss']} | {rc['steps']} | "
            f"{rc['batch_size']} x {rc['crop']} | {m['mse']:.4f} | {m['nlpd']:.2f} | "
            f"{m['msssim']:.3f} | {r['wall_s'] / 60:.0f} min |"
        )
    lines += [batch_stats_row(name, out_root, tiles) for name in batch_stats]
    return "\n".join(lines) + "\n\n" + curves(rows)


def curves(rows: list[dict]) -> str:
    """Learning curves: music-dev NLPD / MS-SSIM at each validation step."""
    steps = sorted({c["step"] for r in rows for c in r["curve"]})
    lines = [
        "| variant | " + " | ".join(f"step {s}" for s in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for r in rows:
        at = {c["step"]: c for c in r["curve"]}
        cells = [f"{at[s]['nlpd']:.1f} / {at[s]['msssim']:.2f}" if s in at else "" for s in steps]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    return "Music-dev NLPD / MS-SSIM during training:\n\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", nargs="*", help=f"any of: {', '.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument(
        "--music",
        type=Path,
        default=Path("/work/data/train-music"),
        help="training music for the music-* variants (bin/fetch-music train DEST)",
    )
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--batch-stats", default="", help="variants to re-score with batch stats")
    args = ap.parse_args()
    unknown = set(args.variant) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants: {', '.join(sorted(unknown))}")
    for name in args.variant:
        r = run(name, args.steps, args.val_every, args.out, args.music)
        print(json.dumps({"variant": name, **r["music_dev"], "wall_s": r["wall_s"]}))
    if args.table:
        text = table([n for n in args.batch_stats.split(",") if n], args.out)
        (RESULTS / "ablation.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
