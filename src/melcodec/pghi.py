"""A phase start for Griffin-Lim from the magnitude alone: phase-gradient integration.

For a Gaussian window the STFT's log-magnitude and phase are tied (Portnoff;
Prusa, Balazs and Sondergaard 2017, "PGHI"). With frame time x (samples),
frequency xi (cycles per sample) and the phase taken at the window's centre:

    d phase / dx  = 2 pi xi + (1 / lam) d log|X| / d xi       (instantaneous frequency)
    d phase / dxi = -lam d log|X| / dx                        (local group delay)

and a Hann window of length N behaves like a Gaussian with lam = 0.25645 N^2.

PGHI integrates these gradients outward from the largest coefficients with a
heap, one coefficient at a time; in Python that is ~0.5 s per tile. This module
keeps the idea and drops the heap: in each frame, every spectral peak takes
its phase from the same bin one frame earlier (time direction), and the bins
of the peak's lobe take theirs from the peak (frequency direction). That is
the order in which a heap reaches them, as long as magnitudes fall away from
each peak (the "peak-locked" variant of real-time PGHI). All the bookkeeping is
vectorised; the only loop is one gather per frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Gaussian equivalent of a Hann window, in units of the window length squared.
HANN_LAMBDA = 0.25645
# Coefficients this far below the loudest carry no usable gradient: random phase.
TOLERANCE_DB = -100.0


def phase_start(
    mag: torch.Tensor,
    hop: int,
    n_fft: int,
    gen: torch.Generator,
    start_angles: torch.Tensor | None = None,
) -> torch.Tensor:
    """Unit phasors ``[n_freqs, frames]`` for ``torch.stft(center=True)``'s convention.

    ``start_angles`` (unit phasors for the first frames) are kept as they are and
    the integration continues from them, so consecutive blocks join up.
    """
    # Work frame-major, [frames, bins], so that each frame is one contiguous row.
    s = np.ascontiguousarray(mag.detach().double().cpu().numpy().T)
    frames, bins = s.shape
    noise = torch.rand((frames, bins), generator=gen, dtype=torch.float64).numpy()
    noise *= 2 * math.pi
    top = s.max() if s.size else 0.0
    floor = top * 10 ** (TOLERANCE_DB / 20)
    logs = np.log(np.maximum(s, floor if top > 0 else 1.0))
    lam = HANN_LAMBDA * n_fft**2
    centre = np.arange(bins)
    # Phase advance per hop at each bin, trapezoid over the two frames.
    if_rate = 2 * math.pi * centre / n_fft + (n_fft / lam) * _diff(logs, axis=1)
    advance = np.zeros_like(s)
    advance[1:] = hop * 0.5 * (if_rate[1:] + if_rate[:-1])
    # Phase step from bin m-1 to bin m within a frame, trapezoid over the two bins.
    group = -(lam / (hop * n_fft)) * _diff(logs, axis=0)
    step = np.zeros_like(s)
    step[:, 1:] = 0.5 * (group[:, 1:] + group[:, :-1])
    across = np.cumsum(step, axis=1)

    peak_of = _lobe_peaks(s)
    rows = np.arange(frames)[:, None]
    base = advance[rows, peak_of] + across - across[rows, peak_of]

    phase = np.empty_like(s)
    first = 1
    if start_angles is not None and start_angles.shape[1]:
        first = start_angles.shape[1]
        known = torch.angle(start_angles.T).double().cpu().numpy()
        # The stored phasors are in torch's convention; integrate in the centred one.
        phase[:first] = known + math.pi * centre
    else:
        phase[0] = base[0] - advance[0, peak_of[0]]
    for n in range(first, frames):
        phase[n] = phase[n - 1][peak_of[n]] + base[n]
    quiet = s < floor
    phase[quiet] = noise[quiet]
    # torch.stft references phase to the window's first sample, N/2 before its centre.
    phase -= math.pi * centre
    wrapped = torch.from_numpy(np.remainder(phase, 2 * math.pi).T.astype(np.float32))
    angles = torch.polar(torch.ones_like(wrapped), wrapped)
    if start_angles is not None and start_angles.shape[1]:
        angles[:, :first] = start_angles.to(angles.dtype)
    return angles.to(mag.device)


def _diff(x: np.ndarray, axis: int) -> np.ndarray:
    """Central differences (one-sided at the ends); zero along an axis of length 1."""
    if x.shape[axis] < 2:
        return np.zeros_like(x)
    return np.gradient(x, axis=axis)


def _lobe_peaks(s: np.ndarray) -> np.ndarray:
    """``[frames, bins]`` magnitudes -> for every bin, the bin index of its lobe's peak.

    Each bin points to its larger neighbour (when one is strictly larger), and
    pointer jumping follows the chain uphill to a local maximum in log2(bins)
    gathers.
    """
    t = s  # [frames, bins]
    frames, bins = t.shape
    index = np.arange(t.size).reshape(frames, bins)
    left = np.full_like(t, -np.inf)
    left[:, 1:] = t[:, :-1]
    right = np.full_like(t, -np.inf)
    right[:, :-1] = t[:, 1:]
    up = np.where(right > left, index + 1, index - 1)
    pointer = np.where(np.maximum(left, right) > t, up, index).ravel()
    while True:
        jumped = pointer[pointer]
        if np.array_equal(jumped, pointer):
            break
        pointer = jumped
    return pointer.reshape(frames, bins) % bins
