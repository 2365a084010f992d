"""What context modelling can gain: held-out conditional entropy of each model's latents.

    python bench/contexts.py --data data/train [--models a,b] [--variants] [--merge]

On training clips only (every 2nd clip of ``bin/fetch-music train``, never
music-dev): each model's latent bits, a table of counts fitted on the first 75 %
of the clips and scored on the last 25 % (whole files apart, as the clips are in
file order), for candidate integer contexts. The figure is the held-out
cross-entropy in bits per tile, so an over-large table pays for what it
memorised. The last rows are checkerboard-mix (id 4) as shipped and, with
``--variants``, other group counts and offsets for the first model, each with its
entropy coding time (encode + decode, one tile alone and 8 tiles together) as a
multiple of the static table's on the same held-out tiles. Latents are
cached in runs/contexts/NAME.npy (packed bits).
Writes bench/results/contexts.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, ROOT, coding_ms, machine, median, save

from melcodec import context, data, entropy, load_model, tables
from melcodec.modelfiles import available
from melcodec.progress import Progress

CACHE = ROOT / "runs" / "contexts"
FIT_CLIPS = 1000  # as bin/train-zoo fits the shipped tables
C, H, W = 128, 16, 16


def latents(name: str, clips: torch.Tensor) -> np.ndarray:
    path = CACHE / f"{name}.npy"
    if path.is_file():
        packed = np.load(path)
        if len(packed) == len(clips):
            return np.unpackbits(packed, axis=-1)
    bar = Progress(len(clips), f"{name}: latents")
    bits = tables.tile_bits(load_model(name).net, clips, progress=bar.callback())
    bar.close()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, np.packbits(bits, axis=-1))
    return bits


def held_out(keys: np.ndarray, bits: np.ndarray, cells: int, split: int) -> float:
    """Bits per tile of the last clips under counts (add-one) of the first ``split``."""
    kf, bf = keys[:split].ravel(), bits[:split].ravel()
    ones = np.bincount(kf, weights=bf, minlength=cells)
    total = np.bincount(kf, minlength=cells)
    k = np.clip(np.round((ones + 1) * 65536 / (total + 2)), 1, 65535)
    p = k[keys[split:]] / 65536
    test = bits[split:]
    return float(-np.where(test == 1, np.log2(p), np.log2(1 - p)).sum() / len(test))


def neighbour_keys(bits: np.ndarray, offsets) -> np.ndarray:
    """Per-channel key of each bit from its neighbours at ``offsets`` (0, 1, or outside)."""
    n = len(bits)
    padded = np.full((n, C, H + 4, W + 4), 2, dtype=np.int32)
    padded[:, :, 2 : 2 + H, 2 : 2 + W] = bits
    key = np.zeros((n, C, H, W), np.int64)
    for dy, dx in offsets:
        key = key * 3 + padded[:, :, 2 + dy : 2 + dy + H, 2 + dx : 2 + dx + W]
    return np.arange(C)[None, :, None, None] * 3 ** len(offsets) + key


def candidates(bits: np.ndarray, split: int) -> list[dict]:
    b = bits.astype(np.int64)
    rows = []

    def add(label: str, keys: np.ndarray, cells: int, fit_bits=None):
        fit_bits = b if fit_bits is None else fit_bits
        rows.append(
            {
                "context": label,
                "table_entries": int(cells),
                "bits_per_tile": held_out(keys, fit_bits, cells, split),
            }
        )

    position = np.broadcast_to(np.arange(C * H * W).reshape(1, C, H, W), b.shape)
    add("none: one probability per position (static-bernoulli)", position, C * H * W)
    for label, offsets in (
        ("left neighbour", [(0, -1)]),
        ("left and lower-band neighbours", [(0, -1), (-1, 0)]),
        (
            "four causal neighbours (left, lower, lower-left, lower-right)",
            [(0, -1), (-1, 0), (-1, -1), (-1, 1)],
        ),
        (
            "six causal neighbours (context-mix's own-channel context)",  # id 3, retired
            [(0, -1), (0, -2), (-1, 0), (-1, -1), (-2, 0), (-1, -2)],
        ),
    ):
        add(f"channel + {label}", neighbour_keys(b, offsets), C * 3 ** len(offsets))
    # Two-pass checkerboard: the first half per position, the second from 4 neighbours.
    anchor = ((np.arange(H)[:, None] + np.arange(W)[None]) % 2 == 0)[None, None]
    four = neighbour_keys(b, [(0, -1), (0, 1), (-1, 0), (1, 0)])
    add(
        "checkerboard: half per position, half from 4 neighbours (2 passes)",
        np.where(anchor, position, C * H * W + four),
        C * H * W + C * 81,
    )
    return rows


NINE = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


@contextlib.contextmanager
def offsets(chosen, near):
    """A study-only switch of checkerboard-mix's offsets (the format fixes them)."""
    kept = context.OFFSETS, context.NEAR
    context.OFFSETS, context.NEAR = chosen, near
    try:
        yield
    finally:
        context.OFFSETS, context.NEAR = kept


def time_ratios(prob, static, test: np.ndarray) -> tuple[float, float]:
    """``prob``'s coding time as a multiple of ``static``'s, timed side by side: one
    tile alone, and 8 tiles together (as longer files are)."""
    both = {"model": prob, "static": static}
    one = [coding_ms(both, tile[None], 5) for tile in test[:24]]
    eight = [coding_ms(both, test[i : i + 8], 5) for i in range(0, 96, 8)]
    return tuple(
        median([t["model"] for t in ts]) / median([t["static"] for t in ts]) for ts in (one, eight)
    )


def mix_rows(bits: np.ndarray, split: int, variants: bool) -> list[dict]:
    """checkerboard-mix fitted on (at most FIT_CLIPS of) the first clips, scored on the
    rest; its coding time beside the static table's, on the same held-out tiles."""
    fit_bits = bits[:split][:: max(1, split // FIT_CLIPS)]
    five = (context.OFFSETS, context.NEAR)
    nine = (NINE, tuple(NINE.index(o) for o in context.OFFSETS[1:]))
    chosen = [(4, five, "checkerboard-mix: 4 groups, 5 offsets (id 4, 8 steps)")]
    if variants:
        chosen += [
            (2, five, "checkerboard-mix: 2 groups, 5 offsets (4 steps)"),
            (8, five, "checkerboard-mix: 8 groups, 5 offsets (16 steps)"),
            (4, nine, "checkerboard-mix: 4 groups, 3x3 offsets (8 steps)"),
            (8, nine, "checkerboard-mix: 8 groups, 3x3 offsets (16 steps)"),
        ]
    test = bits[split:]
    ones = torch.from_numpy(fit_bits.sum(0, dtype=np.int64))
    static = entropy.StaticBernoulli(entropy.table_from_counts(ones, len(fit_bits)))
    rows = []
    for groups, (chosen_offsets, near), label in chosen:
        with offsets(chosen_offsets, near):
            tables_ = context.fit(fit_bits, groups=groups)
            held = context.cross_entropy_bits(tables_, test)
            one, eight = time_ratios(context.CheckerboardMix(tables_), static, test)
        entries = 128 * 2 * H + int(np.count_nonzero(np.asarray(tables_["weight"])))
        rows.append(
            {
                "context": label,
                "table_entries": entries,
                "bits_per_tile": held,
                "time_vs_static": one,
                "time_vs_static_8": eight,
            }
        )
        print(f"  {label}: {held:,.0f}, {one:.2f}x, {eight:.2f}x", flush=True)
    return rows


def table(results: dict, host: dict, clips: int) -> str:
    names = list(results)
    lines = [
        "# Held-out conditional entropy of the latents, by context",
        "",
        f"`python bench/contexts.py`, {host['date']}, {host['cpu']}. {clips} training clips "
        "(every 2nd of the training corpus; never music-dev), tables fitted on the first 75 %, "
        "bits per tile (of 32,768) on the last 25 %. Table entries are 16-bit. checkerboard-mix "
        f"rows: fitted by logistic regression on at most {FIT_CLIPS} of the first 75 %; its "
        "entries are the row biases and the non-zero weights of the first model; time: its "
        "entropy coding (encode + decode) of one tile alone / 8 tiles together, as a "
        "multiple of the static table's on the same tiles.",
        "",
        "| context | table entries | " + " | ".join(names) + " | time vs static |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    by_label = {n: {r["context"]: r for r in results[n]} for n in names}
    for row in results[names[0]]:
        cells = [
            f"{by_label[n][row['context']]['bits_per_tile']:,.0f}"
            if row["context"] in by_label[n]
            else "-"
            for n in names
        ]
        first = by_label[names[0]][row["context"]]
        speed = (
            f"{first['time_vs_static']:.2f}x / {first['time_vs_static_8']:.2f}x"
            if "time_vs_static" in first
            else "-"
        )
        cells.append(speed)
        lines.append(f"| {row['context']} | {row['table_entries']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "train")
    parser.add_argument("--models", default=",".join(available()))
    parser.add_argument(
        "--variants", action="store_true", help="checkerboard-mix variants, for the first model"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other models' rows of the last results (same clips) and add these",
    )
    args = parser.parse_args()
    clips = data.load_clips(args.data)[0][::2]
    split = int(0.75 * len(clips))
    results = {}
    last = RESULTS / "contexts.json"
    if args.merge and last.is_file():
        saved = json.loads(last.read_text())
        if saved["clips"] != len(clips):
            raise SystemExit("--merge: the last results used other clips")
        results = saved["results"]
    for i, name in enumerate(args.models.split(",")):
        bits = latents(name, clips)
        results[name] = candidates(bits, split) + mix_rows(bits, split, args.variants and i == 0)
        print(f"{name} done", flush=True)
    host = machine()
    save(
        "contexts",
        {"machine": host, "clips": len(clips), "results": results},
        table(results, host, len(clips)),
    )


if __name__ == "__main__":
    main()
