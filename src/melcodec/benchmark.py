"""``melcodec eval``: systems measured on a folder of audio, the paper's way and end to end.

Per file and system: the spectrogram-domain metrics (the model's input tiles
against its output tiles), the same metrics end to end (the original audio and
the decoded audio as a listener gets it, both through the front end, the
decoded one scaled with the original's min and max), what a listener hears
besides (RMS level error, share of clipped samples, the peak before the
limiter, spectral convergence on the linear STFT), the real bitrate from the
bytes, and the encode and decode times. "As a listener gets it" is the file
``melcodec decode`` writes: 16-bit PCM through the limiter by default, or
32-bit float. Metrics are per tile, then averaged (a batch-level NLPD p-norm
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

from . import audio, bitstream, data, frontend, listening, mel, metrics, peers, tiles
from .atomic import atomic_write
from .codec import Codec, DecodeOptions
from .errors import UsageError
from .mel import MEL

METRIC_NAMES = tuple(metrics.METRICS)
# What eval scores: the bytes of a 16-bit WAV (decode's default) or a float WAV.
OUTPUT_FORMATS = ("pcm16", "float")


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
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.codec.model.name

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


def measure(system: System, path: Path, output: str = "pcm16") -> dict:
    """One file through one system -> a row of per-file means and counts."""
    return measure_with_outputs(system, path, output)[0]


@torch.no_grad()
def measure_with_outputs(system: System, path: Path, output: str = "pcm16"):
    """As :func:`measure`, also returning what a listener gets: (row, original
    16 kHz audio, decoded 16 kHz audio as written, original tiles, decoded audio's
    tiles scaled with the original's min and max)."""
    if output not in OUTPUT_FORMATS:
        raise UsageError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}")
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
    blob, limiter = audio.render(decoded, MEL.sample_rate, float32=output == "float")
    decoded_peak = listening.peak(decoded)
    decoded = audio.read_rendered(blob)
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
        "peak": decoded_peak,
        "limited_share": limiter.changed_share if limiter else 0.0,
        "over_share": limiter.over_share if limiter else 0.0,
        "clipped_share": listening.clipped_share(decoded),
        "level_db": listening.level_error_db(decoded, wave),
        "sc": listening.spectral_convergence(
            audio.fit_length(decoded, max(wave.numel(), MEL.n_fft)),
            audio.fit_length(wave, max(wave.numel(), MEL.n_fft)),
        ),
    }
    for k, fn in metrics.METRICS.items():
        value = float("nan") if reconstructed is None else float(fn(reconstructed, x).mean())
        row[f"spec_{k}"] = value
    row |= {f"e2e_{k}": float(v.mean()) for k, v in end_to_end.items()}
    return row, wave, decoded, x, again.unsqueeze(1)


def run(
    systems: list[System],
    files: list[Path],
    progress: Callable[[int, int], None] | None = None,
    output: str = "pcm16",
) -> list[dict]:
    rows = []
    for n, (system, path) in enumerate(((s, f) for s in systems for f in files), 1):
        rows.append(measure(system, path, output))
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
        summary["level_abs_db"] = sum(abs(r["level_db"]) for r in mine) / len(mine)
        summary["level_worst_db"] = max((r["level_db"] for r in mine), key=abs)
        summary["clipped_worst"] = max(r["clipped_share"] for r in mine)
        summary["over_worst"] = max(r["over_share"] for r in mine)
        summary["peak_worst"] = max(r["peak"] for r in mine)
        summary["sc"] = sum(r["sc"] for r in mine) / len(mine)
        out.append(summary)
    return out


def table(summary: list[dict]) -> str:
    head = (
        "| system | kbit/s | bit/px | MSE | NLPD | MS-SSIM | e2e MSE | e2e NLPD | e2e MS-SSIM "
        "| SC | level dB (worst) | clipped (worst) | peak (worst) | enc x RT | dec x RT |"
    )
    lines = [head, "|" + "---|" * 15]
    for s in summary:
        cells = [s["system"], _fmt(s["kbit_per_s"], ".2f"), _fmt(s["bits_per_pixel"], ".3f")]
        for domain in ("spec", "e2e"):
            cells += [_fmt(s[f"{domain}_mse"], ".4f"), _fmt(s[f"{domain}_nlpd"], ".2f")]
            cells.append(_fmt(s[f"{domain}_msssim"], ".3f"))
        cells += [
            _fmt(s["sc"], ".3f"),
            f"{s['level_worst_db']:+.2f}",
            f"{100 * s['clipped_worst']:.3f} %",
            _fmt(s["peak_worst"], ".2f"),
        ]
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
