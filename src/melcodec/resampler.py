"""The project's one resampler: torchaudio's windowed sinc, in bounded memory for any rate.

torchaudio builds one filter per output phase, ``new/g`` phases of ``old/g + 2w``
taps for ``g = gcd(old, new)``: a few hundred kilobytes for the common rates, but
gigabytes when the rates share few factors (44,101 -> 16,000 Hz: 16,000 x 44,135
taps, 2.8 GB). For those rates the same filter is evaluated per output sample, in
blocks, over only the taps inside its support: the same sums (to float32 rounding),
memory independent of the rates. The common rates keep torchaudio's path, so every
model's input stays bit for bit what it was trained on.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF

# Fixed settings: changing them changes every model's input (DESIGN.md section 2).
# torchaudio's defaults, spelled out so that a torchaudio upgrade cannot move them.
LOWPASS_WIDTH = 6
ROLLOFF = 0.99
# torchaudio's filter bank is used while it stays below this many taps (4 MB in float32).
MAX_BANK_TAPS = 1 << 20
# Output samples computed per block on the direct path (times ~16-40 taps, a few MB).
BLOCK = 1 << 15


def bank_taps(old: int, new: int) -> int:
    """Taps in torchaudio's filter bank for ``old -> new`` Hz."""
    g = math.gcd(old, new)
    old, new = old // g, new // g
    return new * (old + 2 * _half_width(old, new))


def _half_width(old: int, new: int) -> int:
    return math.ceil(LOWPASS_WIDTH * old / (min(old, new) * ROLLOFF))


def resample(wave: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """Resample 1-D float32 audio, ``old`` to ``new`` Hz, to ``ceil(n * new / old)`` samples."""
    if old == new:
        return wave
    if bank_taps(old, new) <= MAX_BANK_TAPS:
        return AF.resample(
            wave,
            old,
            new,
            lowpass_filter_width=LOWPASS_WIDTH,
            rolloff=ROLLOFF,
            resampling_method="sinc_interp_hann",
        )
    return direct(wave, old, new)


def direct(wave: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """The windowed-sinc sum per output sample, blockwise: what torchaudio's filter bank computes.

    Output ``n`` sits at time ``n / new``; input ``m`` at ``m / old``. Their distance
    in units of the cut-off is ``(m * new - n * old) * min(old, new) * rolloff / (old * new)``,
    with ``m`` running over the filter's support around ``n * old / new``.
    """
    length = wave.numel()
    out_len = -(-length * new // old)
    half = _half_width(old, new)
    scale = min(old, new) * ROLLOFF / (old * new)  # cut-off units per (m * new - n * old)
    gain = min(old, new) * ROLLOFF / old  # torchaudio's kernel scale: unity passband gain
    offsets = torch.arange(-half, half + 2, dtype=torch.int64)
    columns = (offsets.to(torch.float64) * (new * scale)).to(torch.float32)
    padded = torch.nn.functional.pad(wave, (half + 2, half + 2))
    out = torch.empty(out_len, dtype=torch.float32)
    for start in range(0, out_len, BLOCK):
        n = torch.arange(start, min(start + BLOCK, out_len), dtype=torch.int64)
        nearest = n * old // new  # the input sample at or just before output n
        # Exact integers until here, so the phase cannot drift over hours of audio.
        rows = ((nearest * new - n * old).to(torch.float64) * scale).to(torch.float32)
        t = (rows[:, None] + columns).clamp_(-LOWPASS_WIDTH, LOWPASS_WIDTH)
        taps = torch.sinc(t) * torch.cos(t * (math.pi / LOWPASS_WIDTH / 2)).square_()
        samples = padded[nearest[:, None] + (offsets + half + 2)]
        out[start : start + n.numel()] = (samples * taps).sum(dim=1) * gain
    return out
