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
    x = np.asarray(wave, dtype=np.float32)
    size = max(x.size, 1)
    magnitude = np.abs(x)
    peak = float(magnitude.max()) if x.size else 0.0
    over = magnitude > FULL_SCALE
    if not over.any():
        return x, LimiterReport(peak, 0.0, 0.0)
    need = np.ones_like(x)
    need[over] = CEILING / magnitude[over]
    hold = max(1, round(HOLD_SECONDS * rate))
    t = torch.from_numpy(need)[None, None]
    # Minimum over +-hold samples, then a mean over hold+1: each output gain is an
    # average of values no larger than the required gain at the centre.
    held = -F.max_pool1d(-t, 2 * hold + 1, stride=1, padding=hold)
    smooth = hold // 2
    kernel = torch.full((1, 1, 2 * smooth + 1), 1 / (2 * smooth + 1))
    # Averaging the dip (1 - gain), not the gain, keeps an untouched stretch at exactly 1.
    dip = F.conv1d(F.pad(1 - held, (smooth, smooth), mode="replicate"), kernel)[0, 0].numpy()
    gain = 1 - np.maximum(dip, 0)
    out = x * gain
    changed = float((gain < 1).sum()) / size
    return out, LimiterReport(peak, float(over.sum()) / size, changed)
