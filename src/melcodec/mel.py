"""The frozen mel front end of the paper and its inverse (inverse mel + Griffin-Lim).

Analysis: 16 kHz mono, n_fft 1024 (Hann), hop 260, 256 HTK mel bands, magnitude,
``center=False``, then ``log(S + 0.001)``. The paper's 4.208 s clip (67,328
samples) gives exactly 256 frames, one tile.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

from .melconfig import MEL, MelConfig


@lru_cache(maxsize=8)
def _mel_transform(cfg: MelConfig, device: torch.device) -> T.MelSpectrogram:
    # One per device: Module.to moves in place, so a shared one would bounce
    # between the CPU and a training GPU (or be stranded on the meta device).
    # With 256 bands over 513 bins one filter is empty; torchaudio warns about it,
    # and that band is expected (it pins every spectrogram's minimum at log(eps)).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        transform = T.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.n_fft,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=1.0,
            center=False,
            norm=None,
            mel_scale="htk",
        )
    return transform.to(device)


def filterbank(cfg: MelConfig = MEL) -> torch.Tensor:
    """The mel filterbank as ``[n_mels, n_freqs]`` float64 (band 0 is empty here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fb = AF.melscale_fbanks(
            cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, None, "htk"
        )
    return fb.T.double()


@lru_cache(maxsize=16)
def inverse_matrix(method: str, strength: float = 0.0, cfg: MelConfig = MEL) -> torch.Tensor:
    """A linear inverse of the filterbank, ``[n_freqs, n_mels]`` float32.

    - ``pinv``: the Moore-Penrose pseudo-inverse. Exact on the filterbank's row
      space, but the condition number is ~1e21 and its entries reach ~3,600, so a
      small error in one band becomes loud broadband energy.
    - ``tsvd``: pseudo-inverse with singular values below ``strength`` x the
      largest dropped.
    - ``tikhonov``: ``F^T (F F^T + strength s_max^2 I)^-1``.
    - ``interp``: each band's mean magnitude per bin, spread back over the bins
      it covers with the filter's own weights and normalised per bin: no
      inversion at all, so nothing is amplified.
    """
    fb = filterbank(cfg)
    if method == "pinv":
        inv = torch.linalg.pinv(fb)
    elif method == "tsvd":
        inv = torch.linalg.pinv(fb, rtol=strength)
    elif method == "tikhonov":
        gram = fb @ fb.T
        ridge = strength * torch.linalg.matrix_norm(fb, ord=2) ** 2
        inv = fb.T @ torch.linalg.inv(gram + ridge * torch.eye(len(gram), dtype=fb.dtype))
    elif method == "interp":
        inv = (fb.T / fb.sum(0).clamp_min(1e-12)[:, None]) / fb.sum(1).clamp_min(1e-12)[None, :]
    else:
        raise ValueError(f"unknown inverse mel method {method!r}")
    return inv.float()


def padded_length(frames: int, cfg: MelConfig = MEL) -> int:
    """Samples an uncentred STFT needs for exactly ``frames`` frames."""
    return (frames - 1) * cfg.hop_length + cfg.n_fft


def log_mel(wave: torch.Tensor, cfg: MelConfig = MEL) -> torch.Tensor:
    """``[..., samples]`` waveform -> ``[..., n_mels, frames]`` log-magnitude mel."""
    mel = _mel_transform(cfg, wave.device)(wave)
    return torch.log(mel + cfg.log_eps)


def nnls(mel: torch.Tensor, start: torch.Tensor, steps: int, cfg: MelConfig = MEL) -> torch.Tensor:
    """``steps`` of projected gradient for min ||F s - mel||^2 over s >= 0."""
    fb = filterbank(cfg).float()
    rate = 1 / float(torch.linalg.matrix_norm(fb, ord=2)) ** 2
    fb = fb.to(mel.device)
    s = start.clamp_min(0)
    for _ in range(steps):
        s = (s - rate * (fb.T @ (fb @ s - mel))).clamp_min(0)
    return s


# The decoder's inverse (bench/results/inverse_mel.md): "METHOD" or "METHOD:STRENGTH".
DEFAULT_INVERSE = "tsvd:0.01"


def parse_inverse(spec: str) -> tuple[str, float]:
    """``"tsvd:0.01"`` -> ("tsvd", 0.01); checked, so a bad name fails before any work."""
    method, _, strength = spec.partition(":")
    try:
        value = float(strength or 0)
    except ValueError:
        raise ValueError(f"bad inverse mel strength in {spec!r}") from None
    if method != "nnls":
        try:
            inverse_matrix(method, value)
        except torch.linalg.LinAlgError:
            raise ValueError(f"inverse mel {spec!r} is singular: give it a strength > 0") from None
    return method, value


def inverse_log_mel(
    logmel: torch.Tensor,
    cfg: MelConfig = MEL,
    method: str | None = None,
    strength: float = 0.0,
) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel -> ``[n_freqs, frames]`` linear magnitude (>= 0).

    ``method`` None is :data:`DEFAULT_INVERSE` (its strength too).
    """
    if method is None:
        method, strength = parse_inverse(DEFAULT_INVERSE)
    mel = (torch.exp(logmel) - cfg.log_eps).clamp_min(0)
    if method == "nnls":
        start = inverse_matrix("interp", 0.0, cfg).to(logmel.device) @ mel
        return nnls(mel, start, int(strength), cfg)
    return (inverse_matrix(method, strength, cfg).to(logmel.device) @ mel).clamp_min(0)
