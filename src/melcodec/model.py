"""The paper's compressive autoencoder: 4 stride-2 conv encoder, binary
quantiser, 4 stride-2 transposed-conv decoder (Namgyal et al. 2023, sec. 3).

A 256x256 tile maps to a 128x16x16 latent, one bit per element (0.5 bit per
spectrogram pixel). Kernel sizes are not in the paper: encoder 5x5 with padding 2,
decoder 4x4 transposed convs with padding 1 (exact doubling, and ~1.6x faster to
train on CPU than 3x3 with output_padding), final 3x3 conv to one channel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

DOWNSAMPLING = 16


@dataclass(frozen=True)
class ArchConfig:
    channels: int = 128
    latent_channels: int = 128
    layers: int = 4
    encoder_kernel: int = 5
    negative_slope: float = 0.2
    # The paper puts BatchNorm before the encoder's final Tanh; see docs/training.md.
    final_norm: bool = True
    # "soft": tanh(2 s z), the paper's soft assignment to {-1, +1};
    # "ste": hard sign forward, identity gradient backward (straight-through).
    quantiser: str = "soft"
    softness: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ArchConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown architecture fields: {sorted(unknown)}")
        return cls(**data)


def _block(conv: nn.Module, channels: int, slope: float) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.LeakyReLU(slope)]


class Encoder(nn.Module):
    def __init__(self, cfg: ArchConfig):
        super().__init__()
        k, c = cfg.encoder_kernel, cfg.channels
        layers: list[nn.Module] = []
        in_ch = 1
        for i in range(cfg.layers):
            last = i == cfg.layers - 1
            out_ch = cfg.latent_channels if last else c
            conv = nn.Conv2d(in_ch, out_ch, k, stride=2, padding=k // 2)
            if last:
                layers += [conv, nn.BatchNorm2d(out_ch)] if cfg.final_norm else [conv]
                layers.append(nn.Tanh())
            else:
                layers += _block(conv, out_ch, cfg.negative_slope)
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ArchConfig):
        super().__init__()
        c = cfg.channels
        layers: list[nn.Module] = []
        in_ch = cfg.latent_channels
        for _ in range(cfg.layers):
            conv = nn.ConvTranspose2d(in_ch, c, 4, stride=2, padding=1)
            layers += _block(conv, c, cfg.negative_slope)
            in_ch = c
        layers += [nn.Conv2d(c, 1, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def quantise(z: torch.Tensor, mode: str, softness: float, hard: bool) -> torch.Tensor:
    """Map encoder outputs to centres {-1, +1}.

    The soft assignment with weights exp(-s (z - c)^2) over c in {-1, +1} is
    exactly tanh(2 s z); the hard one is the nearest centre.
    """
    soft = torch.tanh(2 * softness * z)
    sign = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    if hard:
        return sign
    if mode == "soft":
        return soft
    if mode == "ste":
        # Identity, not tanh(2 s z)'s gradient: that one vanishes where z saturates.
        return z + (sign - z).detach()
    raise ValueError(f"unknown quantiser {mode!r}")


class Autoencoder(nn.Module):
    def __init__(self, cfg: ArchConfig | None = None):
        super().__init__()
        self.cfg = cfg or ArchConfig()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training path in train mode (soft or STE); the codec's hard path in eval mode."""
        z = self.encoder(x)
        q = quantise(z, self.cfg.quantiser, self.cfg.softness, hard=not self.training)
        return self.decoder(q)

    @torch.no_grad()
    def encode_bits(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` in [0, 1] -> bits ``[B, C, H/16, W/16]`` as uint8."""
        return (self.encoder(x) >= 0).to(torch.uint8)

    @torch.no_grad()
    def decode_bits(self, bits: torch.Tensor) -> torch.Tensor:
        """Bits from :meth:`encode_bits` -> ``[B, 1, H, W]`` in [0, 1]."""
        return self.decoder(bits.float() * 2 - 1)
