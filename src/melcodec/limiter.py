"""A peak limiter for integer PCM output: it acts only where a sample would clip.

Float output is written as synthesised. Integer output cannot hold a sample
beyond full scale, and hard clipping is loud distortion, so wherever a sample
exceeds full scale the gain dips smoothly (about 10 ms around it) to bring
that peak to ``CEILING``; everywhere else the gain is exactly 1. The gain is
the required gain's minimum over a window, then a moving average no wider
than half that window, so no sample ends above the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# 16-bit PCM holds up to 32767/32768; anything above is clipped by the writer.
FULL_SCALE = 32767 / 32768
CEILING = 10 ** (-0.5 / 20)
HOLD_SECONDS = 0.005
# Samples limited at a time when audio arrives in pieces (16 s at 16 kHz).
WINDOW = 1 << 18


@dataclass(frozen=True)
class LimiterReport:
    peak: float  # largest |sample| before limiting
    over_share: float  # share of samples above full scale before limiting
    changed_share: float  # share of samples the limiter scaled down

    @property
    def acted(self) -> bool:
        return self.changed_share > 0

    def message(self) -> str:
        db = 20 * np.log10(self.peak) if self.peak > 0 else float("-inf")
        return (
            f"limiter: decoded peak {self.peak:.2f} ({db:+.1f} dBFS) would clip; "
            f"{100 * self.over_share:.3f} % of samples over full scale, "
            f"{100 * self.changed_share:.2f} % turned down"
        )


def limit(wave: np.ndarray, rate: int) -> tuple[np.ndarray, LimiterReport]:
    """Return ``wave`` (1-D float) with every overshoot brought under full scale."""
    stream = Limiter(rate)
    out = np.concatenate([stream.push(np.asarray(wave, dtype=np.float32)), stream.finish()])
    return out, stream.report()


class Limiter:
    """:func:`limit` on audio that arrives in pieces, in memory bounded by a window.

    A sample's gain depends on the samples within ``context`` of it (the hold, then
    the smoothing), so windows of ``WINDOW`` samples limited with that context on
    both sides and cut to their middle give the whole signal's gains.
    """

    def __init__(self, rate: int):
        self.hold = max(1, round(HOLD_SECONDS * rate))
        self.context = self.hold + self.hold // 2
        self.held = np.zeros(0, dtype=np.float32)
        self.held_from = 0  # sample index of held[0]
        self.first = 0  # the first sample not yet returned
        self.received = 0
        self.peak = 0.0
        self.over = 0
        self.changed = 0

    def push(self, wave: np.ndarray) -> np.ndarray:
        """Add samples; return the limited samples they complete (maybe none)."""
        x = np.asarray(wave, dtype=np.float32)
        self.held = np.concatenate([self.held, x])
        self.received += x.size
        out = []
        while self.first + WINDOW + self.context <= self.received:
            out.append(self._window(self.first + WINDOW))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def finish(self) -> np.ndarray:
        """The rest of the samples, limited."""
        return self._window(self.received)

    def report(self) -> LimiterReport:
        size = max(self.received, 1)
        return LimiterReport(self.peak, self.over / size, self.changed / size)

    def _window(self, stop: int) -> np.ndarray:
        start = self.first
        begin = max(0, start - self.context)
        x = self.held[begin - self.held_from : stop + self.context - self.held_from]
        keep = slice(start - begin, stop - begin)
        out = x[keep]
        magnitude = np.abs(x)
        self.peak = max(self.peak, float(magnitude[keep].max(initial=0.0)))
        over = magnitude > FULL_SCALE
        if over.any():
            gain = self._gain(magnitude, over)[keep]
            self.over += int(over[keep].sum())
            self.changed += int((gain < 1).sum())
            out = out * gain
        self.first = stop
        drop = max(0, stop - self.context)
        self.held = self.held[drop - self.held_from :]
        self.held_from = drop
        return out

    def _gain(self, magnitude: np.ndarray, over: np.ndarray) -> np.ndarray:
        hold = self.hold
        need = np.ones_like(magnitude)
        need[over] = CEILING / magnitude[over]
        t = torch.from_numpy(need)[None, None]
        # Minimum over +-hold samples, then a mean over hold+1: each output gain is an
        # average of values no larger than the required gain at the centre.
        held = -F.max_pool1d(-t, 2 * hold + 1, stride=1, padding=hold)
        smooth = hold // 2
        kernel = torch.full((1, 1, 2 * smooth + 1), 1 / (2 * smooth + 1))
        # Averaging the dip (1 - gain), not the gain, keeps an untouched stretch at exactly 1.
        dip = F.conv1d(F.pad(1 - held, (smooth, smooth), mode="replicate"), kernel)[0, 0].numpy()
        return 1 - np.maximum(dip, 0)
