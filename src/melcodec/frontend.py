"""The codec's front end: audio file -> 16 kHz mono -> scaled log-mel tiles.

Training data and evaluation call these same functions, so every model sees
spectrograms made exactly as ``melcodec encode`` makes them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import audio, mel, tiles
from .griffinlim import griffin_lim
from .mel import MEL


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
    return math.ceil(mel.frames_to_cover(num_samples) / tiles.TILE_FRAMES)


def analyse(wave: torch.Tensor) -> Analysis:
    """16 kHz waveform -> per-tile scaled log-mel; the last tile is zero-padded."""
    count = num_tiles(wave.numel())
    padded = audio.fit_length(wave, mel.padded_length(count * tiles.TILE_FRAMES))
    scaled, lo, hi = tiles.scale(tiles.split(mel.log_mel(padded)))
    return Analysis(scaled, lo, hi, wave.numel())


def synthesise(
    logmel: torch.Tensor,
    num_samples: int,
    n_iter: int,
    momentum: float,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    phase_start: str = "pghi",
) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel -> ``num_samples`` of 16 kHz audio."""
    mag = mel.inverse_log_mel(logmel)
    return griffin_lim(
        mag, num_samples, n_iter, momentum, seed, progress=progress, start=phase_start
    )
