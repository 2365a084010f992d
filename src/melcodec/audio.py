"""Audio file I/O (soundfile), downmix and resampling (torchaudio).

One resampler with fixed parameters (``resampler.py``) is used everywhere (encode,
training data, evaluation): the top mel bands sit in its transition band, so a
different resampler moves them measurably (DESIGN.md section 2).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

from . import resampler
from .atomic import atomic_write
from .errors import AudioError
from .limiter import Limiter, LimiterReport
from .limits import MAX_RATE, MIN_RATE

OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


# Frames read at a time when a file is encoded in blocks (1.5 s at 44.1 kHz).
READ_FRAMES = 1 << 16
# A path of "-" is standard input or output (as opusenc and ffmpeg take it).
STDIO = "-"


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any file libsndfile understands as float32 ``[frames, channels]``.

    ``-`` reads standard input (a format with a header: WAV, FLAC, Ogg, ...).
    The checks are :func:`open_audio`'s.
    """
    with open_audio(path) as (rate, _, blocks):
        return np.concatenate(list(blocks)), rate


@contextmanager
def open_audio(path: str | os.PathLike) -> Iterator[tuple[int, int, Iterator[np.ndarray]]]:
    """A file to read in blocks: ``(rate, frames, blocks)``, blocks float32 ``[n, channels]``.

    Memory stays bounded whatever the file's length. ``-`` is standard input,
    spooled to a temporary file first (libsndfile needs to seek in most formats).
    A missing, unreadable or empty file and a rate outside 8-192 kHz are refused
    here; non-finite samples as the blocks are read, with the first one's position.
    """
    stdin = str(path) == STDIO
    name = Path("standard input") if stdin else Path(path)
    if not stdin and not name.exists():
        raise AudioError(f"no such file: {name}")
    if name.is_dir():
        raise AudioError(f"is a directory, not an audio file: {name}")
    with ExitStack() as stack:
        if stdin:
            source = stack.enter_context(tempfile.TemporaryFile())
            shutil.copyfileobj(sys.stdin.buffer, source)
            source.seek(0)
        else:
            source = str(name)
        try:
            fh = stack.enter_context(sf.SoundFile(source))
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise AudioError(f"cannot read audio from {name}: {_short(exc)}") from None
        rate = int(fh.samplerate)
        if fh.frames == 0:
            raise AudioError(f"audio file has no samples: {name}")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"sample rate {rate} Hz of {name} is outside {MIN_RATE}-{MAX_RATE} Hz")
        yield rate, int(fh.frames), _blocks(fh, name)


def _blocks(fh: sf.SoundFile, name: Path) -> Iterator[np.ndarray]:
    done = 0
    while True:
        try:
            block = fh.read(READ_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"cannot read audio from {name}: {_short(exc)}") from None
        if not block.shape[0]:
            return
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            first = done + int(np.argmin(finite))
            raise AudioError(
                f"audio file contains NaN or infinite samples (first at sample {first}): {name}"
            )
        done += block.shape[0]
        yield block


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
    buffer = io.BytesIO()
    report = write_blocks(buffer, [wave], rate, fmt, float32)
    return buffer.getvalue(), report


def write_blocks(
    fh: BinaryIO, blocks: Iterable[torch.Tensor], rate: int, fmt: str, float32: bool = False
) -> LimiterReport | None:
    """Write consecutive 1-D pieces of a waveform to ``fh`` as :func:`render` makes them.

    Memory stays bounded by a piece and the limiter's window.
    """
    limiter = None if float32 else Limiter(rate)
    subtype = "FLOAT" if float32 else "PCM_16"
    with sf.SoundFile(fh, "w", rate, 1, subtype=subtype, format=fmt) as out:
        for block in blocks:
            samples = block.detach().cpu().numpy().astype(np.float32)
            out.write(limiter.push(samples) if limiter else samples)
        if limiter:
            out.write(limiter.finish())
    return limiter.report() if limiter else None


def write_audio(
    path: str | os.PathLike, wave: torch.Tensor, rate: int, float32: bool = False
) -> LimiterReport | None:
    """Write a 1-D waveform as :func:`render` makes it, format by extension.

    The file appears whole or not at all. Returns the limiter's report (None for float).
    """
    fmt = check_output_path(path, float32)
    reports = []
    atomic_write(path, lambda fh: reports.append(write_blocks(fh, [wave], rate, fmt, float32)))
    return reports[0]


def read_rendered(blob: bytes) -> torch.Tensor:
    """The samples of :func:`render`'s bytes, as a reader of the file gets them."""
    data, _ = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data[:, 0]))


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
