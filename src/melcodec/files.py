"""File-level encode/decode, single files or folder trees, as the CLI offers them."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from . import audio
from .api import named_model
from .atomic import atomic_write
from .codec import Codec, DecodeOptions
from .errors import MelcodecError, UsageError
from .zoo import DEFAULT_MODEL, load_model

MLC_SUFFIX = ".mlc"


@dataclass
class Outcome:
    source: Path
    target: Path
    error: str | None = None


def check_target(target: Path, force: bool, parent: Path | None = None) -> None:
    """Refuse an existing output without ``force``, and an output folder that is missing.

    ``parent`` is the folder that must exist when it differs from the target's
    (a report writes into a folder it creates).
    """
    if target.exists() and not force:
        raise UsageError(f"output exists: {target} (use --force to overwrite)")
    folder = parent if parent is not None else target.parent
    if not folder.resolve().is_dir():
        raise UsageError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"output folder is not writable: {folder}")


def check_not_input(source: Path, target: Path) -> None:
    """Refuse an output that is the input (the same file, through links too), even with --force."""
    if target.exists() and source.exists() and os.path.samefile(source, target):
        raise UsageError(f"output is the input: {target}")


def encode_file(
    source: str | os.PathLike,
    target: str | os.PathLike,
    model: str | Codec = DEFAULT_MODEL,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode one audio file to an .mlc file; returns the path written."""
    source, target = Path(source), Path(target)
    if target.is_dir():
        target = target / (source.stem + MLC_SUFFIX)
    if not _stdio(target):
        check_not_input(source, target)
        check_target(target, force)
    codec = model if isinstance(model, Codec) else Codec.load(model)
    with audio.open_audio(source) as (rate, frames, blocks):
        payload = codec.encode_blocks(blocks, rate, frames, progress)
    _write(target, payload)
    return target


def _stdio(path: Path) -> bool:
    """``-``: standard input or output (``melcodec encode - out.mlc < in.wav``)."""
    return str(path) == audio.STDIO


def _write(target: Path, payload: bytes) -> None:
    if _stdio(target):
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
    else:
        atomic_write(target, lambda fh: fh.write(payload))


def decode_file(
    source: str | os.PathLike,
    target: str | os.PathLike,
    model: str | Codec | None = None,
    options: DecodeOptions | None = None,
    float32: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    pipe_format: str = "wav",
) -> Path:
    """Decode an .mlc file to WAV or FLAC; the model defaults to the one named inside.

    ``-`` as source or target is standard input or output; ``pipe_format``
    ("wav" or "flac") is the format written to standard output.

    Integer output goes through the limiter; when it acts, ``notify`` gets its
    one-line report (peak, share of samples).
    """
    source, target = Path(source), Path(target)
    if target.is_dir():
        target = target / (source.stem + ".wav")
    if _stdio(target):
        fmt = {"wav": "WAV", "flac": "FLAC"}[pipe_format]
        if float32 and fmt != "WAV":
            raise UsageError("32-bit float output needs WAV; FLAC stores integers only")
    else:
        check_not_input(source, target)
        check_target(target, force)
        fmt = audio.check_output_path(target, float32)
    data = read_mlc(source)
    options = options or DecodeOptions()
    if model is None:
        model = named_model(data, options)
    codec = model if isinstance(model, Codec) else Codec(load_model(model))
    decoded = codec.decode_blocks(data, options, progress)
    reports = []

    def write(fh: BinaryIO) -> None:
        reports.append(audio.write_blocks(fh, decoded.blocks, decoded.rate, fmt, float32))

    if _stdio(target):
        # WAV and FLAC headers are finished last, by seeking: spool, then copy.
        with tempfile.TemporaryFile() as spool:
            write(spool)
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        atomic_write(target, write)
    report = reports[0]
    if report is not None and report.acted and notify:
        notify(report.message())
    return target


def read_mlc(path: Path) -> bytes:
    if _stdio(path):
        return sys.stdin.buffer.read()
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    return path.read_bytes()


def plan_tree(source: Path, target: Path, suffix: str, find: Callable[[Path], list[Path]]):
    """Pairs (input, output) that mirror ``source``'s tree under ``target``."""
    if not target.parent.is_dir():
        raise UsageError(f"output folder does not exist: {target.parent}")
    return [(p, (target / p.relative_to(source)).with_suffix(suffix)) for p in find(source)]


def run_tree(
    pairs: list[tuple[Path, Path]],
    work: Callable[[Path, Path], object],
    progress: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``work`` on each pair, collecting per-file errors instead of stopping."""
    outcomes = []
    for n, (src, dst) in enumerate(pairs, 1):
        outcome = Outcome(src, dst)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            work(src, dst)
        except (MelcodecError, OSError) as exc:
            outcome.error = str(exc)
        outcomes.append(outcome)
        if progress:
            progress(n, outcome)
    return outcomes
