"""Why i.i.d. noise teaches the wrong scales: fixed, untrained codes as yardsticks.

Three measurements, no model trained:

1. Where an image's variance sits: the share held by its f x f block means,
   for music-dev tiles, the paper's i.i.d. uniform noise, octave noise
   (data.octave_noise) and octave noise with streaks both ways (aniso).
2. What a plain down-sampling code scores: f x f block means, each quantised
   to b bits, bilinearly upsampled. A 4x4 mean at 8 bits is exactly the
   autoencoder's 32,768 bits per 256 x 256 tile. Scored on music-dev and on
   the noises (spectrogram domain, the evaluation's metrics).
3. Which way an image's detail runs: log10 of its step energy down the bands
   over that along time (0 for no preferred direction), its spread over images.

    python bench/scale_reference.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from common import machine, music_dev, save

from melcodec import data, evaluate, metrics

FACTORS = (2, 4, 8, 16, 32)
CODES = ((2, 2), (4, 8), (4, 4), (8, 8), (16, 8))  # (block side, bits per block mean)


def coarse_share(x: torch.Tensor, f: int) -> float:
    blocks = F.avg_pool2d(x, f)
    return float((blocks.var(dim=(2, 3)) / x.var(dim=(2, 3))).mean())


def tilt(x: torch.Tensor) -> torch.Tensor:
    bands = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
    frames = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean(dim=(1, 2, 3))
    return (bands / frames).log10()


def block_code(x: torch.Tensor, f: int, bits: int) -> torch.Tensor:
    levels = 2**bits - 1
    means = torch.round(F.avg_pool2d(x, f) * levels) / levels
    return F.interpolate(means, scale_factor=f, mode="bilinear")


def main() -> None:
    cpu = torch.device("cpu")
    images = {
        "music-dev": evaluate.tiles_of(music_dev()),
        "uniform noise": data.NoiseImages(0, 0, cpu, "uniform").batch(0, 0, 32, 256),
        "octave noise": data.NoiseImages(0, 0, cpu, "octaves").batch(0, 0, 32, 256),
        "streaked octave noise": data.NoiseImages(0, 0, cpu, "aniso").batch(0, 0, 32, 256),
    }
    shares = {k: {f: coarse_share(x, f) for f in FACTORS} for k, x in images.items()}
    tilts = {k: tilt(x) for k, x in images.items()}
    tilts = {
        k: {"mean": float(t.mean()), "sd": float(t.std()), "max_abs": float(t.abs().max())}
        for k, t in tilts.items()
    }
    codes = {
        k: {
            f"{f}x{f} at {b} bits": {
                name: float(fn(block_code(x, f, b), x).mean())
                for name, fn in metrics.METRICS.items()
            }
            for f, b in CODES
        }
        for k, x in images.items()
    }
    lines = [
        "Share of variance held by f x f block means:",
        "",
        "| images | " + " | ".join(f"f = {f}" for f in FACTORS) + " |",
        "|---|" + "---|" * len(FACTORS),
        *(
            f"| {k} | " + " | ".join(f"{v[f]:.3f}" for f in FACTORS) + " |"
            for k, v in shares.items()
        ),
        "",
        "Block-mean codes (MSE / NLPD / MS-SSIM); bits per 256 x 256 tile in brackets:",
        "",
        "| code | " + " | ".join(images) + " |",
        "|---|" + "---|" * len(images),
    ]
    for f, b in CODES:
        label = f"{f}x{f} at {b} bits"
        bits = (256 // f) ** 2 * b
        cells = [
            f"{c['mse']:.4f} / {c['nlpd']:.2f} / {c['msssim']:.3f}"
            for c in (codes[k][label] for k in images)
        ]
        lines.append(f"| {label} ({bits:,}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Which way detail runs: log10(step energy across bands / along time) per image:",
        "",
        "| images | mean | sd over images | largest magnitude |",
        "|---|---|---|---|",
        *(
            f"| {k} | {t['mean']:.2f} | {t['sd']:.2f} | {t['max_abs']:.2f} |"
            for k, t in tilts.items()
        ),
    ]
    save(
        "scale_reference",
        {"machine": machine(), "shares": shares, "codes": codes, "tilts": tilts},
        "\n".join(lines),
    )


if __name__ == "__main__":
    main()
