"""The frozen mel front end of the paper and its inverse (inverse mel + Griffin-Lim).

Analysis: 16 kHz mono, n_fft 1024 (Hann), hop 260, 256 HTK mel bands, magnitude,
``center=False``, then ``log(S + 0.001)``. The paper's 4.208 s clip (67,328
samples) gives exactly 256 frames, one tile.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 260
    n_mels: int = 256
    f_min: float = 0.0
    f_max: float = 8000.0
    log_eps: float = 0.001

    def to_dict(self) -> dict:
        return asdict(self)


MEL = MelConfig()


@lru_cache(maxsize=4)
def _mel_transform(cfg: MelConfig) -> T.MelSpectrogram:
    # With 256 bands over 513 bins one filter is empty; torchaudio warns about it,
    # and that band is expected (it pins every spectrogram's minimum at log(eps)).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return T.MelSpectrogram(
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


@lru_cache(maxsize=4)
def _mel_pinv(cfg: MelConfig) -> torch.Tensor:
    """Pseudo-inverse of the filterbank, ``[n_freqs, n_mels]``.

    A fixed matrix product is exact on the filterbank's row space and about
    100x faster than torchaudio's per-call least squares (which also fails on the
    empty band unless driver="gelsd"); negative values are clamped afterwards.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fb = AF.melscale_fbanks(
            cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, None, "htk"
        )
    return torch.linalg.pinv(fb.T.double()).float()


def num_frames(num_samples: int, cfg: MelConfig = MEL) -> int:
    """Frames of an uncentred STFT over ``num_samples`` (0 when shorter than a window)."""
    if num_samples < cfg.n_fft:
        return 0
    return (num_samples - cfg.n_fft) // cfg.hop_length + 1


def frames_to_cover(num_samples: int, cfg: MelConfig = MEL) -> int:
    """Frames needed so that synthesis can rebuild every sample.

    A frame's synthesis reaches half a hop past its window's centre region, so
    samples up to ``hop/2`` beyond the last window are still reconstructed (from the
    edge frame). This keeps the paper's 67,328-sample clip at exactly 256 frames.
    """
    uncovered = num_samples - cfg.n_fft - cfg.hop_length // 2
    return 1 if uncovered <= 0 else math.ceil(uncovered / cfg.hop_length) + 1


def padded_length(frames: int, cfg: MelConfig = MEL) -> int:
    """Samples an uncentred STFT needs for exactly ``frames`` frames."""
    return (frames - 1) * cfg.hop_length + cfg.n_fft


def log_mel(wave: torch.Tensor, cfg: MelConfig = MEL) -> torch.Tensor:
    """``[..., samples]`` waveform -> ``[..., n_mels, frames]`` log-magnitude mel."""
    mel = _mel_transform(cfg).to(wave.device)(wave)
    return torch.log(mel + cfg.log_eps)


def inverse_log_mel(logmel: torch.Tensor, cfg: MelConfig = MEL) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel -> ``[n_freqs, frames]`` linear magnitude (>= 0)."""
    mel = torch.exp(logmel) - cfg.log_eps
    return (_mel_pinv(cfg).to(logmel.device) @ mel.clamp_min(0)).clamp_min(0)
