"""The level envelope: the encoder's record of how loud the input was, and the
decoder's gain that restores it.

A decoder network is free to drift in level (NLPD ignores a uniform offset),
and any inverse of a mel filterbank amplifies its errors; only side
information fixes the level whatever the model does. The envelope is the RMS
of the 16 kHz input over fixed spans of ``SEGMENT_FRAMES`` hops (4 per
256-frame tile: 1.04 s each, 4 bytes per 4.16 s tile, 7.7 bit/s), one byte
each on a 0.5 dB grid. The decoder measures its own output over the same
spans and applies a smooth gain (linear between span centres) that matches it.

Why 1.04 s (bench/results/level_spans.md, music-dev, default model): every
span length from 0.13 s to a whole tile puts each file within 0.5 dB of its
input, but a finer gain curve adds level movement that the input does not
have, and the mel metrics see it (e2e NLPD 7.15 for one span per tile, 7.38 for
four, 8.18 for sixteen, 8.67 for thirty-two; the same order at the Griffin-Lim
ceiling). Four spans keep a fade or a loud entry within a tile at about the
right level for 3 bytes more than one.
"""

from __future__ import annotations

import numpy as np
import torch

SEGMENT_FRAMES = 64
STEP_DB = 0.5
FLOOR_DB = -120.0
# Code 0 means digital silence; codes 1..255 cover FLOOR_DB + STEP_DB * code.
MAX_CODE = 255
# The most the decoder boosts a span: a decoder that outputs near silence where the
# input was loud gets louder, but its noise floor is not raised without bound.
MAX_GAIN_DB = 40.0
_PASSES = 3


def _rms(wave: np.ndarray, span: int, count: int) -> np.ndarray:
    """RMS of ``wave`` over ``count`` consecutive spans (missing samples are not counted)."""
    padded = np.zeros(count * span, dtype=np.float64)
    n = min(wave.size, padded.size)
    padded[:n] = wave[:n]
    filled = np.clip(n - np.arange(count) * span, 0, span)
    energy = (padded.reshape(count, span) ** 2).sum(axis=1)
    return np.sqrt(energy / np.maximum(filled, 1))


def envelope(wave: torch.Tensor, count: int, span: int) -> np.ndarray:
    """Level codes (uint8) of ``count`` consecutive spans of ``span`` samples."""
    rms = _rms(wave.detach().double().cpu().numpy(), span, count)
    with np.errstate(divide="ignore"):
        db = 20 * np.log10(rms)
    codes = np.clip(np.round((db - FLOOR_DB) / STEP_DB), 1, MAX_CODE)
    codes[~(db >= FLOOR_DB + STEP_DB / 2)] = 0
    return codes.astype(np.uint8)


def levels(codes: np.ndarray) -> np.ndarray:
    """Level codes -> target RMS (0 for silence)."""
    codes = np.asarray(codes, dtype=np.float64)
    rms = 10 ** ((FLOOR_DB + STEP_DB * codes) / 20)
    return np.where(codes > 0, rms, 0.0)


def match(wave: torch.Tensor, codes: np.ndarray, span: int) -> torch.Tensor:
    """Scale a decoded waveform so that each span of ``span`` samples meets its code."""
    target = levels(codes)
    x = wave.detach().double().cpu().numpy()
    if x.size == 0:
        return wave
    centres = (np.arange(target.size) + 0.5) * span
    positions = np.arange(x.size)
    max_gain = 10 ** (MAX_GAIN_DB / 20)
    # Interpolated gains move each span's RMS a little off its own value; a few
    # passes of the same correction settle it. The gain is a total, capped once.
    gain = np.ones(target.size)
    for _ in range(_PASSES):
        rms = _rms(x * np.interp(positions, centres, gain), span, target.size)
        gain = np.where(rms > 0, gain * target / np.maximum(rms, 1e-12), gain)
        gain = np.minimum(gain, max_gain)
    return torch.from_numpy(x * np.interp(positions, centres, gain)).to(wave.dtype)
