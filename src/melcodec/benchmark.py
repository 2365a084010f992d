"""``melcodec eval``: systems measured on a folder of audio, the paper's way and end to end.

Per file and system: the spectrogram-domain metrics (the model's input tiles
against its output tiles), the same metrics end to end (the original audio and
the decoded audio, both through the front end, the decoded one scaled with the
original's min and max), the real bitrate from the bytes, and the encode and
decode times. Metrics are per tile, then averaged (a batch-level NLPD p-norm
would grow with the batch).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from . import audio, data, frontend, mel, metrics, tiles
from .atomic import atomic_write
from .codec import Codec, DecodeOptions
from .errors import UsageError
from .mel import MEL

METRIC_NAMES = tuple(metrics.METRICS)


class System(Protocol):
    name: str

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes: ...

    def decode(self, data: bytes) -> torch.Tensor: ...

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor: ...


@dataclass
class CodecSystem:
    """A melcodec model as a system under test."""

    codec: Codec
    options: DecodeOptions

    @property
    def name(self) -> str:
        return self.codec.model.name

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes:
        return self.codec.encode_16k(wave, rate, length)

    def decode(self, data: bytes) -> torch.Tensor:
        return self.codec.decode(data, self.options)[0]

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor:
        bits = self.codec.tile_bits(scaled[:, 0])
        return self.codec.decode_tiles(bits).unsqueeze(1)


class IdentitySystem:
    """Returns its input: the check that a perfect system scores 0 / 0 / 1."""

    name = "identity"

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes:
        return wave.numpy().astype("<f4").tobytes()

    def decode(self, data: bytes) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(data, dtype="<f4").copy())

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled


def _scores(y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: fn(y, x) for k, fn in metrics.METRICS.items()}


@torch.no_grad()
def measure(system: System, path: Path) -> dict:
    """One file through one system -> a row of per-file means and counts."""
    wave, rate, length = frontend.load(path)
    original = frontend.analyse(wave)
    x = original.scaled.unsqueeze(1)
    t0 = time.perf_counter()
    data = system.encode(wave, rate, length)
    t1 = time.perf_counter()
    decoded = system.decode(data)
    t2 = time.perf_counter()
    count = len(x)
    padded = audio.fit_length(decoded, mel.padded_length(count * tiles.TILE_FRAMES))
    again = tiles.scale_with(tiles.split(mel.log_mel(padded)), original.lo, original.hi)
    spectro = _scores(system.reconstruct(x), x)
    end_to_end = _scores(again.unsqueeze(1), x)
    seconds = wave.numel() / MEL.sample_rate
    row = {
        "system": system.name,
        "file": path.name,
        "tiles": count,
        "seconds": round(seconds, 4),
        "bytes": len(data),
        "kbit_per_s": len(data) * 8 / seconds / 1000,
        "bits_per_pixel": len(data) * 8 / (count * MEL.n_mels * tiles.TILE_FRAMES),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
    }
    row |= {f"spec_{k}": float(v.mean()) for k, v in spectro.items()}
    row |= {f"e2e_{k}": float(v.mean()) for k, v in end_to_end.items()}
    return row


def run(
    systems: list[System], files: list[Path], progress: Callable[[int, int], None] | None = None
) -> list[dict]:
    rows = []
    for n, (system, path) in enumerate(((s, f) for s in systems for f in files), 1):
        rows.append(measure(system, path))
        if progress:
            progress(n, len(systems) * len(files))
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per system: metrics averaged over tiles, bitrate over total bytes and seconds."""
    out = []
    for name in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == name]
        count = sum(r["tiles"] for r in mine)
        seconds = sum(r["seconds"] for r in mine)
        size = sum(r["bytes"] for r in mine)
        summary = {"system": name, "files": len(mine), "tiles": count, "seconds": seconds}
        summary["kbit_per_s"] = size * 8 / seconds / 1000
        summary["bits_per_pixel"] = size * 8 / (count * MEL.n_mels * tiles.TILE_FRAMES)
        for key in (f"{d}_{m}" for d in ("spec", "e2e") for m in METRIC_NAMES):
            summary[key] = sum(r[key] * r["tiles"] for r in mine) / count
        summary["encode_x_realtime"] = seconds / sum(r["encode_s"] for r in mine)
        summary["decode_x_realtime"] = seconds / sum(r["decode_s"] for r in mine)
        out.append(summary)
    return out


def table(summary: list[dict]) -> str:
    head = (
        "| system | kbit/s | bit/px | MSE | NLPD | MS-SSIM | e2e MSE | e2e NLPD | e2e MS-SSIM "
        "| enc x RT | dec x RT |"
    )
    lines = [head, "|" + "---|" * 11]
    for s in summary:
        lines.append(
            f"| {s['system']} | {s['kbit_per_s']:.2f} | {s['bits_per_pixel']:.3f} | "
            f"{s['spec_mse']:.4f} | {s['spec_nlpd']:.2f} | {s['spec_msssim']:.3f} | "
            f"{s['e2e_mse']:.4f} | {s['e2e_nlpd']:.2f} | {s['e2e_msssim']:.3f} | "
            f"{s['encode_x_realtime']:.0f} | {s['decode_x_realtime']:.0f} |"
        )
    return "\n".join(lines)


def find_inputs(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    files = [path] if path.is_file() else data.find_audio(path)
    if not files:
        raise UsageError(f"no audio files in {path}")
    return files


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda fh: fh.write(text.getvalue().encode()))


def write_json(rows: list[dict], summary: list[dict], path: str | os.PathLike) -> None:
    blob = json.dumps({"summary": summary, "files": rows}, indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(blob.encode()))
