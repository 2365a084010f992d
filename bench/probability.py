"""Bits per tile of every model under every probability model it has, on music-dev.

    python bench/probability.py [--models a,b] [--runs 5] [--merge]

``--merge`` keeps the last result's rows of the models not measured now (each
row says when it was measured: time ratios are only comparable within a run).

For each clip: the file ``melcodec encode`` writes under each probability model
(its bytes, the real bits of each tile's payload), the model's own cross-entropy
of the same latents (the ideal code length), a check that the decoded latents are
the encoded ones, and the time of entropy coding alone (encode plus decode per
tile, medians over clips of the median of ``--runs`` runs; one tile alone, and
groups of 8 tiles coded together as a longer file's are; every probability model
timed side by side on the same tiles, taking turns within each run).
Writes bench/results/probability.{md,json}.
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
from common import RESULTS, coding_ms, machine, median, music_dev, save

from melcodec import Codec, context, entropy, frontend, load_model
from melcodec.modelfiles import available

NAMES = {0: "uniform", 1: "static", 4: "checkerboard-mix"}


def ideal_bits(prob, bits: np.ndarray) -> float:
    """The probability model's own code length of ``bits`` [n, C, 16, 16], per tile."""
    if prob.id == 0:
        return float(bits[0].size)
    if prob.id == 1:
        p = prob.p_one.reshape(1, -1)
        b = bits.reshape(len(bits), -1)
        return float(-np.where(b == 1, np.log2(p), np.log2(1 - p)).sum() / len(bits))
    return context.cross_entropy_bits(prob, bits)


def measure(name: str, clips: list, runs: int) -> list[dict]:
    model = load_model(name)
    ids = entropy.available_ids(model.probability)
    codecs = {i: Codec(model, prob_model_id=i) for i in ids}
    rows = {i: {"bytes": [], "payload_bits": [], "ideal": [], "ms": [], "tiles": 0} for i in ids}
    every = []
    for path in clips:
        wave, rate, length = clips[path]
        bits = codecs[ids[0]].tile_bits(frontend.analyse(wave).scaled)
        for i, codec in codecs.items():
            data = codec.encode_16k(wave, rate, length)
            reader = codec.open(io.BytesIO(data))
            got = np.stack([codec.read_bits(reader, t)[0] for t in range(len(reader))])
            if not np.array_equal(got, bits):
                raise SystemExit(f"{name} {NAMES[i]}: decoded latents differ on {path.name}")
            row = rows[i]
            row["bytes"].append(len(data))
            row["payload_bits"] += [8 * len(reader.chunk(t).payload) for t in range(len(reader))]
            row["ideal"].append(ideal_bits(codec.prob, bits) * len(bits))
            row["tiles"] += len(bits)
        probs = {i: codec.prob for i, codec in codecs.items()}
        per_tile = [coding_ms(probs, tile[None], runs) for tile in bits]
        for i in ids:
            rows[i]["ms"].append(median([t[i] for t in per_tile]))
        every.append(bits)
    # Eight tiles at a time, as a file longer than 29 s is coded (codec.NETWORK_BATCH).
    every = np.concatenate(every)
    groups = [every[i : i + 8] for i in range(0, len(every) - 7, 8)]
    per_group = [coding_ms({i: c.prob for i, c in codecs.items()}, g, runs) for g in groups]
    for i in ids:
        rows[i]["ms8"] = median([t[i] for t in per_group])
    out = []
    for i, row in rows.items():
        real = float(np.mean(row["payload_bits"]))
        ideal = sum(row["ideal"]) / row["tiles"]
        seconds = sum(clips[p][2] / clips[p][1] for p in clips)
        out.append(
            {
                "model": name,
                "probability": NAMES[i],
                "tiles": row["tiles"],
                "bits_per_tile": real,
                "ideal_bits_per_tile": ideal,
                "bits_per_pixel": real / (256 * 256),
                "kbit_per_s": sum(row["bytes"]) * 8 / seconds / 1000,
                "coding_ms_per_tile": median(row["ms"]),
                "coding_ms_per_tile_8": row["ms8"],
            }
        )
    static = next((r for r in out if r["probability"] == "static"), None)
    for r in out:
        r["vs_static"] = r["bits_per_tile"] / static["bits_per_tile"] - 1 if static else None
        r["time_vs_static"] = (
            r["coding_ms_per_tile"] / static["coding_ms_per_tile"] if static else None
        )
        r["time_vs_static_8"] = (
            r["coding_ms_per_tile_8"] / static["coding_ms_per_tile_8"] if static else None
        )
    return out


def _dates(rows: list[dict], host: dict) -> str:
    """When the rows were measured: one date, or each model's where they differ."""
    by_model = {r["model"]: r.get("date", host["date"]) for r in rows}
    if len(set(by_model.values())) <= 1:
        return host["date"]
    return "; ".join(f"{m} {d}" for m, d in by_model.items())


def table(rows: list[dict], host: dict) -> str:
    lines = [
        "# Bits per tile on music-dev, by model and probability model",
        "",
        f"`python bench/probability.py`, {_dates(rows, host)}, {host['cpu']} "
        f"({host['cores']} cores), "
        f"torch {host['torch']}. Real: the payload bits of each tile in the file `encode` "
        "writes (every tile decoded back to its latents and compared); ideal: the "
        "probability model's own cross-entropy of the same latents; kbit/s: whole files, "
        "container included; coding: entropy encode + decode per tile, milliseconds, of one "
        "tile alone (a clip under 29 s) and of 8 tiles coded together (as longer files are).",
        "",
        "| model | probability model | bits/tile | ideal | real vs ideal | bit/px | kbit/s "
        "| vs static | coding ms/tile | time vs static | 8 tiles: ms/tile | time vs static |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs = "-" if r["vs_static"] is None else f"{100 * r['vs_static']:+.1f} %"
        tv = "-" if r["time_vs_static"] is None else f"{r['time_vs_static']:.2f}x"
        tv8 = "-" if r["time_vs_static_8"] is None else f"{r['time_vs_static_8']:.2f}x"
        lines.append(
            f"| {r['model']} | {r['probability']} | {r['bits_per_tile']:,.0f} "
            f"| {r['ideal_bits_per_tile']:,.0f} "
            f"| {100 * (r['bits_per_tile'] / r['ideal_bits_per_tile'] - 1):+.2f} % "
            f"| {r['bits_per_pixel']:.3f} | {r['kbit_per_s']:.2f} | {vs} "
            f"| {r['coding_ms_per_tile']:.2f} | {tv} | {r['coding_ms_per_tile_8']:.2f} | {tv8} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(available()))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--merge", action="store_true", help="keep other models' last rows")
    args = parser.parse_args()
    clips = {path: frontend.load(path) for path in music_dev()}
    host = machine()
    names = args.models.split(",")
    rows = []
    for name in names:
        rows += [dict(r, date=host["date"]) for r in measure(name, clips, args.runs)]
        print(f"{name} done", flush=True)
    if args.merge and (RESULTS / "probability.json").exists():
        last = json.loads((RESULTS / "probability.json").read_text())
        kept = [dict(r, date=r.get("date", last["machine"]["date"])) for r in last["rows"]]
        order = available()
        rows = [r for r in kept if r["model"] not in names] + rows
        rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    save("probability", {"machine": host, "rows": rows}, table(rows, host))


if __name__ == "__main__":
    main()
