"""Start-up: whole-process wall time of quick commands.

Each command runs as a user runs it (``python -m melcodec ...``, a fresh
process), several times; the table gives medians, beside ``python -c "import
torch"`` for what torch alone costs. Run it on an idle machine.

    python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import ROOT, machine, median, save

GOLDEN = ROOT / "tests" / "golden" / "v2-default-static.mlc"
EXAMPLE = ROOT / "examples" / "chipdisko-excerpt.flac"
COMMANDS = {
    "melcodec --help": ["-m", "melcodec", "--help"],
    "melcodec --version": ["-m", "melcodec", "--version"],
    "melcodec info FILE": ["-m", "melcodec", "info", str(GOLDEN)],
    "melcodec models": ["-m", "melcodec", "models"],
    "python -c 'import torch'": ["-c", "import torch"],
    "melcodec info --decode FILE": ["-m", "melcodec", "info", str(GOLDEN), "--decode"],
}


def run_once(args: list[str]) -> float:
    """Wall seconds of one fresh process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    rows = []
    for label, command in COMMANDS.items():
        run_once(command)  # warm the file cache
        walls = [run_once(command) for _ in range(args.runs)]
        rows.append({"command": label, "median_s": median(walls), "runs": walls})
        print(f"{label}: {median(walls):.3f} s", flush=True)
    m = machine()
    lines = [
        f"Whole-process wall time, median of {args.runs} fresh processes after one warm-up; "
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}, {m['date']}.",
        "",
        "| command | median s |",
        "|---|---|",
        *(f"| `{r['command']}` | {r['median_s']:.3f} |" for r in rows),
    ]
    save("startup", {"machine": m, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
