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

from . import audio, bitstream, data, frontend, mel, metrics, peers, tiles
from .atomic import atomic_write
from .codec import Codec, DecodeOptions
from .errors import UsageError
from .mel import MEL

METRIC_NAMES = tuple(metrics.METRICS)


class System(Protocol):
    """What eval measures. ``reconstruct`` may return None: no spectrogram of its own."""

    name: str

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes: ...

    def decode(self, data: bytes) -> torch.Tensor: ...

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor | None: ...

    def overhead(self, data: bytes) -> int: ...


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

    def overhead(self, data: bytes) -> int:
        reader = bitstream.Reader(io.BytesIO(data))
        return len(data) - sum(len(reader.chunk(i).payload) for i in range(len(reader)))


class IdentitySystem:
    """Returns its input: the check that a perfect system scores 0 / 0 / 1."""

    name = "identity"

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes:
        return wave.numpy().astype("<f4").tobytes()

    def decode(self, data: bytes) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(data, dtype="<f4").copy())

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled

    def overhead(self, data: bytes) -> int:
        return 0


def _scores(y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: fn(y, x) for k, fn in metrics.METRICS.items()}


def measure(system: System, path: Path) -> dict:
    """One file through one system -> a row of per-file means and counts."""
    return measure_with_outputs(system, path)[0]


@torch.no_grad()
def measure_with_outputs(system: System, path: Path):
    """As :func:`measure`, also returning what a listener gets: (row, original
    16 kHz audio, decoded 16 kHz audio, original tiles, decoded audio's tiles scaled
    with the original's min and max)."""
    wave, rate, length = frontend.load(path)
    original = frontend.analyse(wave)
    x = original.scaled.unsqueeze(1)
    t0 = time.perf_counter()
    data = system.encode(wave, rate, length)
    t1 = time.perf_counter()
    decoded = system.decode(data)
    t2 = time.perf_counter()
    lag = 0
    if getattr(system, "align", False):
        decoded, lag = peers.align(decoded, wave)
    count = len(x)
    padded = audio.fit_length(decoded, mel.padded_length(count * tiles.TILE_FRAMES))
    again = tiles.scale_with(tiles.split(mel.log_mel(padded)), original.lo, original.hi)
    reconstructed = system.reconstruct(x)
    end_to_end = _scores(again.unsqueeze(1), x)
    seconds = wave.numel() / MEL.sample_rate
    coded = getattr(system, "has_bitstream", True)
    row = {
        "system": system.name,
        "file": path.name,
        "tiles": count,
        "seconds": round(seconds, 4),
        "bytes": len(data) if coded else None,
        "overhead_bytes": system.overhead(data) if coded else None,
        "kbit_per_s": len(data) * 8 / seconds / 1000 if coded else None,
        "bits_per_pixel": (
            len(data) * 8 / (count * MEL.n_mels * tiles.TILE_FRAMES) if coded else None
        ),
        "encode_s": t1 - t0,
        "decode_s": t2 - t1,
        "lag_samples": lag,
    }
    for k, fn in metrics.METRICS.items():
        value = float("nan") if reconstructed is None else float(fn(reconstructed, x).mean())
        row[f"spec_{k}"] = value
    row |= {f"e2e_{k}": float(v.mean()) for k, v in end_to_end.items()}
    return row, wave, decoded, x, again.unsqueeze(1)


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
        size = sum(r["bytes"] or 0 for r in mine)
        summary = {"system": name, "files": len(mine), "tiles": count, "seconds": seconds}
        coded = mine[0]["bytes"] is not None
        summary["kbit_per_s"] = size * 8 / seconds / 1000 if coded else None
        summary["bits_per_pixel"] = (
            size * 8 / (count * MEL.n_mels * tiles.TILE_FRAMES) if coded else None
        )
        summary["overhead_bytes_per_file"] = (
            sum(r["overhead_bytes"] for r in mine) / len(mine) if coded else None
        )
        for key in (f"{d}_{m}" for d in ("spec", "e2e") for m in METRIC_NAMES):
            summary[key] = sum(r[key] * r["tiles"] for r in mine) / count
        summary["encode_x_realtime"] = seconds / sum(r["encode_s"] for r in mine) if coded else None
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
        cells = [s["system"], _fmt(s["kbit_per_s"], ".2f"), _fmt(s["bits_per_pixel"], ".3f")]
        for domain in ("spec", "e2e"):
            cells += [_fmt(s[f"{domain}_mse"], ".4f"), _fmt(s[f"{domain}_nlpd"], ".2f")]
            cells.append(_fmt(s[f"{domain}_msssim"], ".3f"))
        cells += [_fmt(s["encode_x_realtime"], ".0f"), _fmt(s["decode_x_realtime"], ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


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
