"""Waveform-side measures of what a listener gets: level, clipping, spectral convergence.

The mel metrics compare spectrograms scaled to [0, 1] and cannot see a file
that is 10 dB too loud or clipped; these compare the decoded audio, as
written, with the input audio.
"""

from __future__ import annotations

import math

import torch

from .mel import MEL, MelConfig

# A 16-bit sample at either end of the range: the writer clipped it, or it sits
# exactly at full scale.
PCM16_FULL_SCALE = 32767 / 32768


def rms_db(wave: torch.Tensor) -> float:
    rms = float(wave.double().pow(2).mean().sqrt()) if wave.numel() else 0.0
    return 20 * math.log10(rms) if rms > 0 else float("-inf")


def level_error_db(decoded: torch.Tensor, original: torch.Tensor) -> float:
    """RMS level of the decoded audio relative to the original's, in dB."""
    return rms_db(decoded) - rms_db(original)


def clipped_share(wave: torch.Tensor) -> float:
    """Share of samples at or beyond 16-bit full scale."""
    if not wave.numel():
        return 0.0
    return float((wave.abs() >= PCM16_FULL_SCALE).double().mean())


def peak(wave: torch.Tensor) -> float:
    return float(wave.abs().max()) if wave.numel() else 0.0


def spectral_convergence(
    decoded: torch.Tensor, original: torch.Tensor, cfg: MelConfig = MEL
) -> float:
    """``|| |S(y)| - |S(x)| || / || |S(x)| ||`` on the linear STFT (the codec's own
    window and hop, uncentred); 0 is perfect, and it sees phase errors the mel
    metrics average away."""
    n = min(decoded.numel(), original.numel())
    if n < cfg.n_fft:
        raise ValueError(f"spectral convergence needs at least {cfg.n_fft} samples, got {n}")
    window = torch.hann_window(cfg.n_fft, dtype=torch.float64)

    def mag(w: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            w[:n].double(),
            cfg.n_fft,
            cfg.hop_length,
            window=window,
            center=False,
            return_complex=True,
        ).abs()

    reference = mag(original)
    norm = float(reference.norm())
    return float((mag(decoded) - reference).norm()) / norm if norm > 0 else float("nan")
