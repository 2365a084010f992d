"""Peak memory and speed of `melcodec encode` / `decode` as fresh processes.

Two tables: sample rates that share few factors with 16 kHz (where torchaudio's
resampler alone would build a filter bank of gigabytes) and common ones; and
long files (minutes of real music, the music-dev clips played one after the
other). Each row is one `python -m melcodec` process, its peak resident memory
(the child's ru_maxrss) and wall time; medians of --runs.

    python bench/memory.py [--runs 3] [--minutes 10,30,60] [--rates 44100,44101,...]
                           [--env NAME=VALUE ...] [--out memory]

``--env`` sets a variable for the measured processes (e.g. glibc's
MALLOC_MMAP_THRESHOLD_, to tell the allocator's share from the codec's);
``--out`` names the result files.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from common import ROOT, machine, median, music_dev, save

from melcodec import audio

ODD = "44101,96001,191999"
COMMON = "8000,44100,48000,192000"


def peak_run(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of one fresh `python -m melcodec ARGS` process."""
    script = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "wall = time.perf_counter() - t\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, sys.executable, "-m", "melcodec", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    ).stdout.split()
    return float(out[0]), float(out[1])


@lru_cache(maxsize=1)
def _music_16k() -> np.ndarray:
    """The music-dev clips at 16 kHz, one after the other (read and resampled once)."""
    parts = []
    for clip in music_dev():
        x, r = audio.read_audio(clip)
        parts.append(audio.resample(audio.to_mono(x), r, 16000).numpy())
    return np.concatenate(parts)


def music(seconds: float, rate: int) -> np.ndarray:
    """Real music of ``seconds`` at ``rate``: the music-dev clips, repeated as needed."""
    import torch

    # np.resize repeats the clips in order to fill the length.
    wave = np.resize(_music_16k(), int(seconds * 16000))
    return audio.resample(torch.from_numpy(wave), 16000, rate).numpy()


def measure(
    rows: list[dict], label: str, args: list[str], runs: int, audio_s: float, env: dict
) -> None:
    walls, peaks = zip(*(peak_run(args, env) for _ in range(runs)), strict=True)
    row = {
        "case": label,
        "peak_mib": median(list(peaks)),
        "wall_s": median(list(walls)),
        "x_real_time": audio_s / median(list(walls)),
    }
    rows.append(row)
    print(f"{label}: {row['peak_mib']:.0f} MiB, {row['wall_s']:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rates", default=f"{COMMON},{ODD}")
    ap.add_argument("--rate-seconds", type=float, default=30.0)
    ap.add_argument("--minutes", default="10,30,60")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the processes")
    ap.add_argument("--out", default="memory", help="name of the result files")
    args = ap.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    rate_rows, long_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seconds = args.rate_seconds
        for rate in [int(r) for r in args.rates.split(",") if r]:
            wav = tmp / f"{rate}.wav"
            sf.write(wav, music(seconds, rate), rate, subtype="PCM_16")
            mlc = tmp / f"{rate}.mlc"
            measure(
                rate_rows,
                f"encode {seconds:g} s at {rate} Hz",
                ["encode", str(wav), str(mlc), "--force"],
                args.runs,
                seconds,
                env,
            )
            measure(
                rate_rows,
                f"decode {seconds:g} s to {rate} Hz",
                ["decode", str(mlc), str(tmp / "out.wav"), "--sample-rate", str(rate), "--force"],
                args.runs,
                seconds,
                env,
            )
            os.remove(wav)
        for minutes in [float(m) for m in args.minutes.split(",") if m]:
            wav = tmp / "long.wav"
            sf.write(wav, music(minutes * 60, 44100), 44100, subtype="PCM_16")
            mlc = tmp / "long.mlc"
            measure(
                long_rows,
                f"encode {minutes:g} min at 44.1 kHz",
                ["encode", str(wav), str(mlc), "--force"],
                args.runs,
                minutes * 60,
                env,
            )
            measure(
                long_rows,
                f"decode {minutes:g} min",
                ["decode", str(mlc), str(tmp / "out.wav"), "--force"],
                args.runs,
                minutes * 60,
                env,
            )
    m = machine()
    lines = [
        f"Peak resident memory and wall time of fresh `python -m melcodec` processes, medians of "
        f"{args.runs}; {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}. "
        "Real music (the music-dev clips in a row), default model."
        + (f" Environment: {', '.join(args.env)}." if args.env else ""),
        "",
        "| case | peak MiB | wall s | x real time |",
        "|---|---|---|---|",
    ]
    for r in rate_rows + long_rows:
        lines.append(
            f"| {r['case']} | {r['peak_mib']:.0f} | {r['wall_s']:.1f} | {r['x_real_time']:.1f} |"
        )
    payload = {"machine": m, "env": env, "rates": rate_rows, "long": long_rows}
    save(args.out, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
