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
    # What encode and decode do before they touch audio: import the codec, load the model.
    "encode/decode start: `Codec.load()`": [
        "-c",
        "from melcodec.codec import Codec; Codec.load()",
    ],
    "melcodec info --decode FILE": ["-m", "melcodec", "info", str(GOLDEN), "--decode"],
}


# The same start split into its parts inside one fresh process: separate processes
# vary by more than the codec adds to torch's import.
SPLIT = """
import time
t0 = time.perf_counter(); import torch
t1 = time.perf_counter(); import torchaudio.transforms
t2 = time.perf_counter(); from melcodec.codec import Codec
t3 = time.perf_counter(); Codec.load()
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""
PARTS = ["import torch", "import torchaudio", "import melcodec.codec", "load the default model"]


def split(runs: int) -> list[dict]:
    """Median seconds of each part of the encode/decode start, in fresh processes."""
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", SPLIT], check=True, capture_output=True, cwd=ROOT, text=True
        ).stdout.split()
        times.append([float(v) for v in out])
    return [
        {"part": name, "median_s": median([t[i] for t in times])} for i, name in enumerate(PARTS)
    ]


def _code(label: str) -> str:
    return label if "`" in label else f"`{label}`"


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
        *(f"| {_code(r['command'])} | {r['median_s']:.3f} |" for r in rows),
    ]
    parts = split(args.runs)
    lines += [
        "",
        "The encode/decode start inside one process (medians): "
        + ", ".join(f"{p['part']} {p['median_s']:.3f} s" for p in parts)
        + f"; melcodec adds {sum(p['median_s'] for p in parts[1:]):.3f} s to torch's import.",
    ]
    save("startup", {"machine": m, "rows": rows, "start_parts": parts}, "\n".join(lines))


if __name__ == "__main__":
    main()
