"""Learning curves of training runs, from their log.jsonl, as one Markdown table.

Each run's validation records (``--val-data`` on music-dev, every ``--val-every``
steps) become rows: training loss and the music-dev NLPD, MS-SSIM and MSE.

    python bench/curve.py runs/noise-nlpd-octaves runs/noise-mse-octaves --name curves_octaves
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import machine, save


def validation_records(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "val" in r]


def table(run: Path, every: int) -> str:
    rows = [r for r in validation_records(run) if r["step"] % every == 0]
    head = "| step | " + " | ".join(str(r["step"]) for r in rows) + " |"
    lines = [f"`{run.name}`", "", head, "|---|" + "---|" * len(rows)]
    lines.append("| training loss | " + " | ".join(f"{r['loss']:.4g}" for r in rows) + " |")
    for key, label, fmt in (
        ("nlpd", "music-dev NLPD", ".2f"),
        ("msssim", "music-dev MS-SSIM", ".3f"),
        ("mse", "music-dev MSE", ".4f"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{r['val'][key]:{fmt}}" for r in rows) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--every", type=int, default=100, help="show every N-th step")
    ap.add_argument("--name", required=True, help="results file name")
    args = ap.parse_args()
    tables = [table(run, args.every) for run in args.runs]
    payload = {
        "machine": machine(),
        "runs": {str(run): validation_records(run) for run in args.runs},
    }
    save(args.name, payload, "\n\n".join(tables))


if __name__ == "__main__":
    main()
