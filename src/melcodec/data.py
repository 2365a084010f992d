"""Training data: uniform noise images, or music clips through the codec's front end.

Both are addressed by (step, row of the global batch): a run is reproducible, a
resumed run draws the same batches as an uninterrupted one, and DDP ranks each
draw their own rows of the same global batch that one process would draw.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import torch

from . import frontend, mel, tiles
from .atomic import atomic_write
from .errors import AudioError, UsageError
from .recipes import NOISE_KINDS

# 67,324 samples (4.208 s at 16 kHz): the fewest that make 256 frames; the paper's
# 67,328-sample clips make 256 too (4 samples past the last window are unused).
CLIP_SAMPLES = mel.padded_length(tiles.TILE_FRAMES)
# A clip whose log-mel range is below this (about 30 dB) is silence or near it.
MIN_CLIP_RANGE = 3.5
CACHE_VERSION = 1
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"}


class NoiseImages:
    """The paper's noise set: ``size`` i.i.d. U[0, 1] images, or fresh ones (size 0).

    Image i is generated from its own seed, so no set is stored, and every
    process on the same kind of device draws the same images (DDP ranks draw
    their rows of exactly what one process draws). A CUDA generator given the
    same seed draws other numbers than the CPU one, so a GPU run trains on
    other (equally distributed) noise than a CPU run with the same seed: the
    images are drawn on the training device because drawing them on the CPU
    would cost a GPU step several times over. ``kind="octaves"`` is not the
    paper's: see :func:`octave_noise`.
    """

    def __init__(self, size: int, seed: int, device: torch.device, kind: str = "uniform"):
        if kind not in NOISE_KINDS:
            raise ValueError(f"unknown noise kind {kind!r}")
        self.size, self.seed, self.device, self.kind = size, seed, device, kind

    def batch(self, step: int, start: int, count: int, crop: int) -> torch.Tensor:
        """Rows ``start:start+count`` of the global batch of ``step``."""
        if self.size:
            ids = _indexes(self.size, self.seed, step, start + count)[start:].tolist()
            seeds = [mix_seed(self.seed, -1, i) for i in ids]
        else:
            seeds = [mix_seed(self.seed, step, start + row) for row in range(count)]
        gen = torch.Generator(device=self.device)
        out = torch.empty(count, 1, crop, crop, device=self.device)
        for row, s in enumerate(seeds):
            gen.manual_seed(s)
            if self.kind == "uniform":
                out[row] = torch.rand(1, crop, crop, generator=gen, device=self.device)
            else:
                out[row] = octave_noise(crop, gen, self.device, self.kind == "aniso")
        return out


def octave_noise(
    crop: int, gen: torch.Generator, device: torch.device, aniso: bool = False
) -> torch.Tensor:
    """Uniform noise at every scale from 1 to 32 pixels, randomly weighted, in [0, 1].

    i.i.d. pixels put all of an image's energy at the finest scale, where music
    spectrograms have little of theirs (docs/training.md). Each octave here is
    U[0, 1] noise drawn at 1/2^k of the size and bilinearly upsampled; the
    weights are U[0, 1] per image, and the sum is min/max scaled as the codec
    scales a tile.

    ``aniso``: octave k is drawn at 1/2^k of the size along one axis (which one
    at random) and at a random octave of the six along the other, so images
    hold streaks in both directions as well as blobs. Isotropic octave noise has
    none, while a spectrogram's partials run along time and its onsets across
    the bands. The two axes are treated alike: nothing here is fitted to music.
    """
    total = torch.zeros(1, 1, crop, crop, device=device)
    # The shapes must be known on the host: on a GPU they come from a CPU
    # generator of the same seed, as reading device draws would sync every octave.
    picker = gen if gen.device.type == "cpu" else torch.Generator().manual_seed(gen.initial_seed())
    for k in range(6):
        rows = cols = k
        if aniso:
            other = int(torch.randint(0, 6, (), generator=picker))
            flip = bool(torch.rand((), generator=picker) < 0.5)
            rows, cols = (other, k) if flip else (k, other)
        u = torch.rand(1, 1, crop >> rows, crop >> cols, generator=gen, device=device) - 0.5
        if rows or cols:
            u = torch.nn.functional.interpolate(u, size=(crop, crop), mode="bilinear")
        total += torch.rand((), generator=gen, device=device) * u
    lo, hi = total.min(), total.max()
    return ((total - lo) / (hi - lo).clamp_min(1e-12))[0]


class ClipTiles:
    """Scaled 256x256 log-mel tiles of music clips, with random crops per batch."""

    def __init__(self, tiles_: torch.Tensor, seed: int, device: torch.device):
        self.tiles, self.seed, self.device = tiles_, seed, device

    def batch(self, step: int, start: int, count: int, crop: int) -> torch.Tensor:
        """Rows ``start:start+count`` of the global batch of ``step``."""
        index = _indexes(len(self.tiles), self.seed, step, start + count)[start:]
        gen = torch.Generator().manual_seed(mix_seed(self.seed, step, "crop"))
        size = self.tiles.shape[-1]
        offs = torch.randint(0, size - crop + 1, (start + count, 2), generator=gen)[start:]
        rows = [
            self.tiles[i, :, a : a + crop, b : b + crop]
            for i, (a, b) in zip(index.tolist(), offs.tolist(), strict=True)
        ]
        return torch.stack(rows).float().to(self.device)


def mix_seed(*parts: int | str) -> int:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _indexes(size: int, seed: int, step: int, count: int) -> torch.Tensor:
    """The first ``count`` indexes of step ``step``'s global batch (a prefix is stable)."""
    gen = torch.Generator().manual_seed(mix_seed(seed, step))
    return torch.randint(0, size, (count,), generator=gen)


def find_audio(folder: Path, bare: bool = False) -> list[Path]:
    """Audio files under ``folder`` by extension, hidden paths skipped.

    ``bare`` also takes files without an extension (some game packages ship
    music so); those that libsndfile cannot read are counted, not fatal.
    """
    suffixes = AUDIO_SUFFIXES | {""} if bare else AUDIO_SUFFIXES
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_clips(
    folder: str | os.PathLike,
    cache: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, dict]:
    """Cut every audio file of ``folder`` into 4.208 s clips -> ``[n, 1, 256, 256]`` fp16.

    The result is cached in one tensor file (under :func:`cache_dir`) keyed by the
    file list and the front end, so later epochs and runs decode no audio.
    Returns (tiles, stats).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"data folder does not exist: {folder}")
    files = find_audio(folder, bare=True)
    if not files:
        raise UsageError(f"no audio files in {folder}")
    key = _cache_key(files)
    cache_path = Path(cache) if cache else cache_dir() / f"clips-{key[:16]}.pt"
    saved = _read_cache(cache_path)
    if saved is not None and saved.get("key") == key:
        return saved["tiles"], saved["stats"]
    kept: list[torch.Tensor] = []
    stats = {"files_found": len(files), "files_used": 0, "files_unreadable": 0}
    stats |= {"clips_used": 0, "clips_silent": 0}
    for n, path in enumerate(files):
        if progress:
            progress(n, len(files))
        try:
            wave, _, _ = frontend.load(path)
        except AudioError:
            stats["files_unreadable"] += 1
            continue
        count = wave.numel() // CLIP_SAMPLES
        if count == 0:
            continue
        clips = wave[: count * CLIP_SAMPLES].reshape(count, CLIP_SAMPLES)
        logmel = mel.log_mel(clips)
        loud = (logmel.amax(dim=(1, 2)) - logmel.amin(dim=(1, 2))) >= MIN_CLIP_RANGE
        stats["clips_silent"] += int((~loud).sum())
        if loud.any():
            scaled, _, _ = tiles.scale(logmel[loud])
            kept.append(scaled.half().unsqueeze(1))
            stats["files_used"] += 1
    if not kept:
        raise UsageError(f"no usable audio in {folder} ({len(files)} candidate files)")
    result = torch.cat(kept)
    stats["clips_used"] = len(result)
    stats["hours"] = round(len(result) * CLIP_SAMPLES / mel.MEL.sample_rate / 3600, 3)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"key": key, "tiles": result, "stats": stats}
    atomic_write(cache_path, lambda fh: torch.save(blob, fh))
    return result, stats


def _read_cache(path: Path) -> dict | None:
    """A cache file's contents, or None where it is missing or not a clip cache.

    Tensors and plain containers only (``weights_only``): a cache folder may be
    shared, and a planted pickle must not run code. Whatever cannot be read is
    rebuilt and replaced.
    """
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
        return None
    return saved if isinstance(saved, dict) else None


def cache_dir() -> Path:
    """$MELCODEC_CACHE, else $XDG_CACHE_HOME/melcodec: data folders may be read-only."""
    if os.environ.get("MELCODEC_CACHE"):
        return Path(os.environ["MELCODEC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "melcodec"


def _cache_key(files: list[Path]) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION} {mel.MEL.to_dict()} {CLIP_SAMPLES}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
