"""Training throughput of the paper-size model, and the projected paper recipe.

Times full optimiser steps (forward, loss, backward, AdamW) on uniform noise at
256x256 with batch 16 and 64, after a warm-up step, and reports the median;
and, at 16 x 128, the memory layout and torch.compile side by side. The
paper's recipe is 425 steps of batch 64 at 256x256.

    python bench/train_speed.py [--device cpu|cuda] [--steps 3] [--loss nlpd]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, median, save

from melcodec import metrics, trainstep
from melcodec.model import Autoencoder
from melcodec.recipes import RECIPES

PAPER_STEPS = RECIPES["paper"].steps


def time_steps(
    device: torch.device,
    batch: int,
    crop: int,
    loss: str,
    steps: int,
    layout: torch.memory_format = torch.channels_last,
    compiled: bool = False,
) -> list[float]:
    torch.manual_seed(0)
    net = Autoencoder().to(device).to(memory_format=layout)
    optim = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, crop, crop, device=device).contiguous(memory_format=layout)
    model = torch.compile(net) if compiled else net
    times = []
    for i in range(steps + 1):  # the first step warms up and is dropped
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        trainstep.step(model, optim, metrics.LOSSES[loss], x, trainstep.autocast_for(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--loss", default="nlpd")
    args = ap.parse_args()
    device = torch.device(args.device)
    m = machine()
    if device.type == "cuda":
        m["gpu"] = torch.cuda.get_device_name(device)
    rows = []
    configs = [
        (16, 128, "contiguous", False),
        (16, 128, "channels_last", False),
        (16, 128, "channels_last", True),
        (16, 256, "channels_last", False),
        (64, 256, "channels_last", False),
    ]
    for batch, crop, layout, compiled in configs:
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        t = median(time_steps(device, batch, crop, args.loss, args.steps, fmt, compiled))
        rows.append(
            {
                "batch": batch,
                "crop": crop,
                "layout": layout,
                "compiled": compiled,
                "seconds_per_step": t,
                "images_per_s": batch / t,
            }
        )
        print(rows[-1], flush=True)
    paper = next(r for r in rows if r["batch"] == 64)
    hours = paper["seconds_per_step"] * PAPER_STEPS / 3600
    where = m.get("gpu") or f"{m['cpu']}, {m['torch_threads']} threads"
    lines = [
        f"Training step, paper-size model, {args.loss} loss, median of {args.steps} steps after "
        f"warm-up; {where}, torch {m['torch']}, {m['date']}.",
        "",
        "| batch x crop | memory | torch.compile | s per step | images/s |",
        "|---|---|---|---|---|",
        *(
            f"| {r['batch']} x {r['crop']} | {r['layout']} | {'yes' if r['compiled'] else 'no'} "
            f"| {r['seconds_per_step']:.2f} | {r['images_per_s']:.1f} |"
            for r in rows
        ),
        "",
        f"Projected paper recipe ({PAPER_STEPS} steps, batch 64 at 256x256): {hours:.1f} h.",
    ]
    name = "train_speed_" + ("gpu" if device.type == "cuda" else "cpu")
    save(
        name,
        {"machine": m, "loss": args.loss, "rows": rows, "paper_hours": hours},
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
