"""Dead latent channels of the shipped models: channels with one sign on a whole batch.

What revive.py looks for during training (docs/training.md, "Dead latent
channels"): on training batches of the `cpu` recipe's shape (16 random crops of
128 x 128 from the corpus of `bin/fetch-music train`, 1,024 codes per channel),
in train mode as the training loop sees them, and over 300 whole training clips
in eval mode as the codec sees them (channels whose bits carry under 0.1 bit).

    python bench/dead_channels.py [--corpus data/train] [--models a,b]
"""

from __future__ import annotations

import argparse

import torch
from common import ROOT, machine, save

from melcodec import data, revive, tables, zoo
from melcodec.modelfiles import available

STEPS = (100, 500, 900)
CLIPS = 300


def measure(name: str, source: data.ClipTiles, clips: torch.Tensor) -> dict:
    net = zoo.load_model(name).net.float()
    per_batch = [len(revive.dead_channels(net, source.batch(s, 0, 16, 128))) for s in STEPS]
    p = torch.from_numpy(tables.tile_bits(net, clips)).double().mean(dim=(0, 2, 3))
    entropy = (torch.special.entr(p) + torch.special.entr(1 - p)) / torch.log(torch.tensor(2.0))
    return {
        "model": name,
        "dead_per_batch": per_batch,
        "below_0.1_bit": int((entropy < 0.1).sum()),
        "mean_bit_entropy": float(entropy.mean()),
        "channels": int(p.numel()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "data" / "train"))
    ap.add_argument("--models", default=",".join(available()))
    args = ap.parse_args()
    corpus = data.load_clips(args.corpus)[0]
    source = data.ClipTiles(corpus, 0, torch.device("cpu"))
    clips = tables.spread(corpus, CLIPS)
    rows = [measure(name, source, clips) for name in args.models.split(",")]
    host = machine()
    lines = [
        "# Dead latent channels of the shipped models",
        "",
        f"`python bench/dead_channels.py` ({host['cpu']}). Dead on a batch: channels with one sign "
        f"over 16 training crops of 128 x 128 (training steps {', '.join(map(str, STEPS))} of "
        f"seed 0), train mode. Below 0.1 bit: over {CLIPS} whole training clips, eval mode.",
        "",
        "| model | dead on a batch | below 0.1 bit | mean entropy per bit | channels |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        dead = " / ".join(map(str, r["dead_per_batch"]))
        lines.append(
            f"| {r['model']} | {dead} | {r['below_0.1_bit']} | {r['mean_bit_entropy']:.3f} "
            f"| {r['channels']} |"
        )
    save("dead_channels", {"machine": host, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
