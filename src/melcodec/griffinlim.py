"""Seeded Griffin-Lim phase reconstruction aligned with the uncentred analysis.

Written here rather than taken from ``torchaudio.transforms.GriffinLim`` for three
reasons: its random start cannot take a generator (a decode must be repeatable
without touching the global RNG); its centred inverse STFT shifts the output by
n_fft/2 against our uncentred analysis; and long files need block processing
with phases carried across blocks, which needs a chosen starting phase.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .audio import fit_length
from .defaults import DEFAULT_GL_ITERS, DEFAULT_GL_MOMENTUM
from .mel import MEL, MelConfig
from .pghi import phase_start

# Replicated edge frames on each side: enough that the first and last samples get
# full window overlap and that the half hop past the last window is covered.
_EDGE = 3
# Frames per block for long files, and the overlap that carries phase and crossfades.
BLOCK_FRAMES = 4096
OVERLAP_FRAMES = 64


def griffin_lim(mag: torch.Tensor, num_samples: int, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Magnitude ``[n_freqs, frames]`` of an uncentred STFT -> ``num_samples`` of audio.

    The settings are :func:`blocks`' (iterations, momentum, seed, config,
    ``progress(frames_done, frames)`` after each block, phase start).
    """
    pieces = blocks(lambda a, b: mag[:, a:b], mag.shape[1], *args, **kwargs)
    return fit_length(torch.cat(list(pieces)), num_samples)


def blocks(
    mag_at: Callable[[int, int], torch.Tensor],
    frames: int,
    n_iter: int = DEFAULT_GL_ITERS,
    momentum: float = DEFAULT_GL_MOMENTUM,
    seed: int = 0,
    cfg: MelConfig = MEL,
    progress: Callable[[int, int], None] | None = None,
    start: str = "pghi",
) -> Iterator[torch.Tensor]:
    """:func:`griffin_lim` block by block, in memory bounded by one block.

    ``mag_at(begin, stop)`` gives the magnitude of frames ``begin..stop-1``; the
    samples come out in order as each block settles them, ``(frames + 2) * hop
    + n_fft / 2`` in all (more than the analysis covers; the caller cuts).
    """
    hop = cfg.hop_length
    gen = torch.Generator().manual_seed(seed)
    if frames <= BLOCK_FRAMES:
        wave, _ = _run(mag_at(0, frames), None, n_iter, momentum, gen, cfg, start)
        if progress:
            progress(frames, frames)
        yield wave
        return
    carried = None
    held = torch.zeros(0)  # the previous block's samples from this block's start on
    begin = 0
    while True:
        stop = min(begin + BLOCK_FRAMES, frames)
        wave, angles = _run(mag_at(begin, stop), carried, n_iter, momentum, gen, cfg, start)
        fade = OVERLAP_FRAMES * hop if begin else 0
        if fade:
            ramp = torch.linspace(0, 1, fade, dtype=wave.dtype)
            wave[:fade] = held[:fade] * (1 - ramp) + wave[:fade] * ramp
        if progress:
            progress(stop, frames)
        if stop == frames:
            yield wave
            return
        next_begin = stop - OVERLAP_FRAMES
        yield wave[: (next_begin - begin) * hop]
        held = wave[(next_begin - begin) * hop :]
        begin = next_begin
        carried = angles[:, -OVERLAP_FRAMES:]


def _run(
    mag: torch.Tensor,
    start_angles: torch.Tensor | None,
    n_iter: int,
    momentum: float,
    gen: torch.Generator,
    cfg: MelConfig,
    start: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Griffin-Lim with fast momentum (Perraudin et al. 2013) on one block.

    Returns the waveform aligned so that sample 0 is the first sample of the
    block's first analysis window, and the final unit phases of the block's frames.
    """
    hop, n_fft = cfg.hop_length, cfg.n_fft
    padded = torch.cat([mag[:, :1].expand(-1, _EDGE), mag, mag[:, -1:].expand(-1, _EDGE)], 1)
    window = torch.hann_window(n_fft, dtype=mag.dtype, device=mag.device)
    stft = dict(n_fft=n_fft, hop_length=hop, window=window, center=True)
    length = (padded.shape[1] - 1) * hop
    if start == "pghi":
        lead = None
        if start_angles is not None:
            lead = torch.cat([start_angles[:, :1].expand(-1, _EDGE), start_angles], 1)
        angles = phase_start(padded, hop, n_fft, gen, lead)
    elif start == "random":
        phase = torch.rand(padded.shape, generator=gen).to(mag.device) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(padded), phase)
        if start_angles is not None:
            angles[:, _EDGE : _EDGE + start_angles.shape[1]] = start_angles
    else:
        raise ValueError(f"unknown phase start {start!r}")
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        wave = torch.istft(padded * angles, length=length, **stft)
        rebuilt = torch.stft(wave, return_complex=True, **stft)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    wave = torch.istft(padded * angles, length=length, **stft)
    # Centred frame _EDGE sits at output sample _EDGE*hop; its window starts n_fft/2 earlier.
    offset = _EDGE * hop - n_fft // 2
    return wave[offset:], angles[:, _EDGE:-_EDGE]
