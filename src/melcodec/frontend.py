"""The codec's front end: audio file -> 16 kHz mono -> scaled log-mel tiles.

Training data and evaluation call these same functions, so every model sees
spectrograms made exactly as ``melcodec encode`` makes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import audio, limits, loudness, mel, tiles
from .griffinlim import griffin_lim
from .mel import MEL

# Level envelope values per tile (loudness.py): 4 spans of 64 hops, 1.04 s each.
LEVEL_SPANS = tiles.TILE_FRAMES // loudness.SEGMENT_FRAMES


@dataclass
class Analysis:
    scaled: torch.Tensor  # [tiles, n_mels, 256] in [0, 1]
    lo: torch.Tensor  # [tiles] per-tile minimum of the log-mel
    hi: torch.Tensor  # [tiles] per-tile maximum
    num_samples: int  # at 16 kHz, before padding


def load(path: str | os.PathLike) -> tuple[torch.Tensor, int, int]:
    """Read a file -> (16 kHz mono waveform, source rate, source length in samples)."""
    data, rate = audio.read_audio(path)
    wave = audio.resample(audio.to_mono(data), rate, MEL.sample_rate)
    return wave, rate, data.shape[0]


def num_tiles(num_samples: int) -> int:
    return limits.num_tiles(num_samples, MEL.n_fft, MEL.hop_length, tiles.TILE_FRAMES)


def analyse(wave: torch.Tensor) -> Analysis:
    """16 kHz waveform -> per-tile scaled log-mel; the last tile is zero-padded."""
    count = num_tiles(wave.numel())
    padded = audio.fit_length(wave, mel.padded_length(count * tiles.TILE_FRAMES))
    scaled, lo, hi = tiles.scale(tiles.split(mel.log_mel(padded)))
    return Analysis(scaled, lo, hi, wave.numel())


def level_span(spans_per_tile: int) -> int:
    """Samples per level span when a tile has ``spans_per_tile`` of them."""
    return tiles.TILE_FRAMES // spans_per_tile * MEL.hop_length


def level_envelope(wave: torch.Tensor, count: int) -> np.ndarray:
    """The level codes of ``count`` tiles of a 16 kHz waveform, ``[count, LEVEL_SPANS]``."""
    codes = loudness.envelope(wave, count * LEVEL_SPANS, level_span(LEVEL_SPANS))
    return codes.reshape(count, LEVEL_SPANS)


def synthesise(
    logmel: torch.Tensor,
    num_samples: int,
    n_iter: int,
    momentum: float,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    phase_start: str = "pghi",
    levels: np.ndarray | None = None,
    inverse: str = mel.DEFAULT_INVERSE,
) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel -> ``num_samples`` of 16 kHz audio.

    ``levels`` (``[tiles, spans]`` level codes) restores the input's level;
    ``inverse`` names the inverse mel (:func:`mel.parse_inverse`).
    """
    method, strength = mel.parse_inverse(inverse)
    mag = mel.inverse_log_mel(logmel, method=method, strength=strength)
    wave = griffin_lim(
        mag, num_samples, n_iter, momentum, seed, progress=progress, start=phase_start
    )
    if levels is not None and levels.size:
        wave = loudness.match(wave, levels.reshape(-1), level_span(levels.shape[1]))
    return wave
