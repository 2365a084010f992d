"""Shared pieces of the benchmarks: the music-dev clips, the machine, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MUSIC_DEV = Path(os.environ.get("MELCODEC_MUSIC_DEV", ROOT.parent / "shared/data/music-dev"))


def music_dev() -> list[Path]:
    clips = sorted(MUSIC_DEV.glob("*.wav"))
    if not clips:
        raise SystemExit(f"no clips in {MUSIC_DEV}; set MELCODEC_MUSIC_DEV")
    return clips


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def coding_ms(probs: dict, tiles, runs: int) -> dict:
    """Entropy encode + decode of ``tiles`` ``[n, C, H, W]`` together (as a file's
    group of tiles is coded) under each probability model of ``probs``,
    milliseconds per tile, median of ``runs``; the models take turns within each
    run, so a slower spell of the machine falls on all of them alike."""
    from melcodec import entropy

    times = {key: [] for key in probs}
    for _ in range(runs):
        for key, prob in probs.items():
            t = time.perf_counter()
            chunks = entropy.encode_tiles(prob, tiles)
            entropy.decode_tiles(prob, chunks, tiles.shape[1:])
            times[key].append((time.perf_counter() - t) / len(tiles))
    return {key: 1000 * median(t) for key, t in times.items()}


def save(name: str, payload: dict, table: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)


def run_systems(systems: list, label: str) -> tuple[list[dict], list[dict]]:
    """Every system on every music-dev clip through eval's scoring: (rows, summary)."""
    from melcodec import benchmark
    from melcodec.progress import Progress

    files = music_dev()
    bar = Progress(len(systems) * len(files), label, every=5)
    rows = benchmark.run(systems, files, bar.callback())
    bar.close()
    return rows, benchmark.summarise(rows)
