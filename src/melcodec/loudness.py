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
# Spans on each side that a span's final gain depends on (:class:`Matcher`), and
# the spans matched at a time when audio arrives in pieces (66 s).
CONTEXT_SPANS = _PASSES
WINDOW_SPANS = 64


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
    if wave.numel() == 0:
        return wave
    matcher = Matcher(codes, span)
    out = [matcher.push(wave), matcher.finish()]
    return torch.from_numpy(np.concatenate(out)).to(wave.dtype)


class Matcher:
    """:func:`match` on audio that arrives in pieces, in memory bounded by a window.

    A span's first gain depends on its own samples; each later pass and the final
    interpolation between span centres reach one span further to each side, so a
    span's gain depends on ``CONTEXT_SPANS`` (the passes) spans each side and no
    further. Windows of ``WINDOW_SPANS`` spans are matched with that context on
    both sides and only their middle kept: the same gains as over the whole file.
    """

    def __init__(self, codes: np.ndarray, span: int):
        self.target = levels(np.asarray(codes).reshape(-1))
        self.span = span
        self.held = np.zeros(0)
        self.held_from = 0  # the span ``held`` starts at
        self.first = 0  # the first span not yet returned
        self.received = 0

    def push(self, wave: torch.Tensor) -> np.ndarray:
        """Add samples; return the matched samples they complete (maybe none)."""
        x = wave.detach().double().cpu().numpy()
        self.held = np.concatenate([self.held, x])
        self.received += x.size
        out = []
        while (self.first + WINDOW_SPANS + CONTEXT_SPANS) * self.span <= self.received:
            out.append(self._window())
        return np.concatenate(out) if out else np.zeros(0)

    def finish(self) -> np.ndarray:
        """The rest of the samples, matched."""
        out = []
        while self.first * self.span < self.received:
            out.append(self._window())
        return np.concatenate(out) if out else np.zeros(0)

    def _window(self) -> np.ndarray:
        span, first = self.span, self.first
        last = first + WINDOW_SPANS
        lo = max(0, first - CONTEXT_SPANS)
        hi = min(self.target.size, last + CONTEXT_SPANS)
        x = self.held[(lo - self.held_from) * span :]
        if hi < self.target.size:
            x = x[: (hi - lo) * span]
        target = self.target[lo:hi]
        centres = (np.arange(lo, hi) + 0.5) * span
        positions = np.arange(lo * span, lo * span + x.size)
        max_gain = 10 ** (MAX_GAIN_DB / 20)
        # Interpolated gains move each span's RMS a little off its own value; a few
        # passes of the same correction settle it. The gain is a total, capped once.
        gain = np.ones(target.size)
        for _ in range(_PASSES):
            rms = _rms(x * np.interp(positions, centres, gain), span, target.size)
            gain = np.where(rms > 0, gain * target / np.maximum(rms, 1e-12), gain)
            gain = np.minimum(gain, max_gain)
        keep = slice((first - lo) * span, None if hi == self.target.size else (last - lo) * span)
        self.first = last if hi < self.target.size else -(-self.received // span)
        drop = max(0, self.first - CONTEXT_SPANS)
        self.held = self.held[(drop - self.held_from) * span :]
        self.held_from = drop
        return x[keep] * np.interp(positions[keep], centres, gain)
