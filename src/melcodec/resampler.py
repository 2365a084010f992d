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
# Output samples per block of a :class:`Stream` (about a minute at 16 kHz, 4 MiB).
STREAM_BLOCK = 1 << 20
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
    """Resample 1-D float32 audio, ``old`` to ``new`` Hz, to ``ceil(n * new / old)`` samples.

    In blocks of about a minute of output (:class:`Stream`): a shorter signal is
    resampled in one call, and a longer one gives what :class:`Stream` gives.
    """
    if old == new:
        return wave
    stream = Stream(old, new)
    return torch.cat([stream.push(wave), stream.finish()])


def _whole(wave: torch.Tensor, old: int, new: int) -> torch.Tensor:
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


class Stream:
    """Resampling of audio that arrives in pieces, in memory bounded by one block.

    Output is made on a fixed grid of blocks of ``STREAM_BLOCK`` samples (rounded
    to whole filter periods), each from exactly the input it needs plus a margin
    wider than the filter. Every output sample is the whole-signal sum over the
    same taps, and how the input was cut into pieces changes nothing: a file read
    in blocks and the same audio passed as one array give the same samples.
    """

    def __init__(self, old: int, new: int):
        self.old, self.new = old, new
        g = math.gcd(old, new)
        # One filter period: ``self.frame`` inputs make ``self.phases`` outputs.
        self.frame, self.phases = old // g, new // g
        self.block = self.phases * max(1, STREAM_BLOCK // self.phases)
        periods = math.ceil((_half_width(self.frame, self.phases) + 2) / self.frame) + 1
        self.margin = periods * self.frame
        self.pending: list[torch.Tensor] = []
        self.start = 0  # input index of the first sample held
        self.received = 0  # input samples pushed so far
        self.made = 0  # output samples returned so far

    def push(self, wave: torch.Tensor) -> torch.Tensor:
        """Add input samples; return the output samples they complete (maybe none)."""
        if wave.numel():
            self.pending.append(wave.to(torch.float32))
            self.received += wave.numel()
        return self._make(final=False)

    def finish(self) -> torch.Tensor:
        """The rest of the output, ``ceil(n * new / old)`` samples in all."""
        return self._make(final=True)

    def _make(self, final: bool) -> torch.Tensor:
        if self.old == self.new:
            out = torch.cat(self.pending) if self.pending else torch.zeros(0)
            self.pending = []
            self.made += out.numel()
            return out
        total = -(-self.received * self.phases // self.frame)
        pieces = []
        while not final or self.made < total:
            first, last = self.made, self.made + self.block
            begin = max(0, first // self.phases * self.frame - self.margin)
            end = last // self.phases * self.frame + self.margin
            if end > self.received:
                if not final:
                    break
                end, last = self.received, min(last, total)
            held = torch.cat(self.pending) if len(self.pending) > 1 else self.pending[0]
            out = _whole(held[begin - self.start : end - self.start], self.old, self.new)
            offset = begin // self.frame * self.phases
            pieces.append(out[first - offset : last - offset])
            self.made = last
            # Keep only the input the next block needs.
            keep = max(0, last // self.phases * self.frame - self.margin)
            self.pending = [held[keep - self.start :]]
            self.start = keep
        return torch.cat(pieces) if pieces else torch.zeros(0)


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
