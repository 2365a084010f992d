"""Audio file I/O (soundfile), downmix and resampling (torchaudio).

One resampler with fixed parameters (``resampler.py``) is used everywhere (encode,
training data, evaluation): the top mel bands sit in its transition band, so a
different resampler moves them measurably (DESIGN.md section 2).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import resampler
from .atomic import atomic_write
from .errors import AudioError
from .limiter import LimiterReport, limit
from .limits import MAX_RATE, MIN_RATE

OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


# A path of "-" is standard input or output (as opusenc and ffmpeg take it).
STDIO = "-"


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile understands as float32 ``[frames, channels]``.

    ``-`` reads standard input (a format with a header: WAV, FLAC, Ogg, ...).
    """
    stdin = str(path) == STDIO
    path = Path("standard input") if stdin else Path(path)
    if not stdin and not path.exists():
        raise AudioError(f"no such file: {path}")
    if path.is_dir():
        raise AudioError(f"is a directory, not an audio file: {path}")
    try:
        source = io.BytesIO(sys.stdin.buffer.read()) if stdin else str(path)
        data, rate = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot read audio from {path}: {_short(exc)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file has no samples: {path}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"sample rate {rate} Hz of {path} is outside {MIN_RATE}-{MAX_RATE} Hz")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file contains NaN or infinite samples: {path}")
    return data, int(rate)


def to_mono(data: np.ndarray) -> torch.Tensor:
    """Average all channels of ``[frames, channels]`` into one 1-D float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample a 1-D waveform with the project's one fixed resampler."""
    return resampler.resample(wave, orig_rate, new_rate)


def fit_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Trim or zero-pad a 1-D waveform to exactly ``length`` samples."""
    if wave.numel() >= length:
        return wave[:length]
    return torch.nn.functional.pad(wave, (0, length - wave.numel()))


def check_output_path(path: str | os.PathLike, float32: bool = False) -> str:
    """Validate an output audio path before any work; return the soundfile format."""
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"cannot choose an audio format for {path}: use .wav or .flac")
    if float32 and fmt != "WAV":
        raise AudioError("32-bit float output needs a .wav file; FLAC stores integers only")
    if not path.parent.resolve().is_dir():
        raise AudioError(f"output folder does not exist: {path.parent}")
    return fmt


def render(
    wave: torch.Tensor, rate: int, fmt: str = "WAV", float32: bool = False
) -> tuple[bytes, LimiterReport | None]:
    """A 1-D waveform as the bytes of a 16-bit PCM (or 32-bit float WAV) file.

    Float output is kept as synthesised; integer output goes through the
    limiter first (its report is returned), so nothing is clipped silently.
    """
    samples = wave.detach().cpu().numpy().astype(np.float32)
    report = None
    if not float32:
        samples, report = limit(samples, rate)
    buffer = io.BytesIO()
    subtype = "FLOAT" if float32 else "PCM_16"
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue(), report


def write_audio(
    path: str | os.PathLike, wave: torch.Tensor, rate: int, float32: bool = False
) -> LimiterReport | None:
    """Write a 1-D waveform as :func:`render` makes it, format by extension.

    The file appears whole or not at all. Returns the limiter's report (None for float).
    """
    fmt = check_output_path(path, float32)
    blob, report = render(wave, rate, fmt, float32)
    atomic_write(path, lambda fh: fh.write(blob))
    return report


def read_rendered(blob: bytes) -> torch.Tensor:
    """The samples of :func:`render`'s bytes, as a reader of the file gets them."""
    data, _ = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data[:, 0]))


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
