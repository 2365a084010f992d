"""Cutting a log-mel spectrogram into 256-frame tiles and scaling each to [0, 1].

Shared by the codec and the training data, so a model sees in training exactly
what it sees in a file.
"""

from __future__ import annotations

import torch

from .melconfig import TILE_FRAMES

# Below this range a tile is silence: scaling would divide by ~0.
MIN_RANGE = 1e-6


def split(logmel: torch.Tensor) -> torch.Tensor:
    """``[n_mels, frames]`` with frames a multiple of 256 -> ``[tiles, n_mels, 256]``."""
    n_mels, frames = logmel.shape
    if frames % TILE_FRAMES:
        raise ValueError(f"{frames} frames is not a multiple of {TILE_FRAMES}")
    return logmel.reshape(n_mels, -1, TILE_FRAMES).permute(1, 0, 2).contiguous()


def join(tiles: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split`."""
    count, n_mels, width = tiles.shape
    return tiles.permute(1, 0, 2).reshape(n_mels, count * width)


def scale(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-tile min/max scaling to [0, 1]; returns (scaled, mins, maxs) as float32."""
    lo = tiles.amin(dim=(-2, -1))
    hi = tiles.amax(dim=(-2, -1))
    return scale_with(tiles, lo, hi), lo, hi


def scale_with(tiles: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Scale ``[tiles, n_mels, 256]`` with given per-tile min/max, clipped to [0, 1]."""
    span = (hi - lo).clamp_min(MIN_RANGE)[:, None, None]
    return ((tiles - lo[:, None, None]) / span).clamp(0, 1)


def unscale(scaled: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`scale` for ``[tiles, n_mels, 256]``."""
    span = (hi - lo).clamp_min(0)[:, None, None]
    return scaled * span + lo[:, None, None]
