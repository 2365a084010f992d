"""The paper's compressive autoencoder: 4 stride-2 conv encoder, binary
quantiser, 4 stride-2 transposed-conv decoder (Namgyal et al. 2023, sec. 3).

A 256x256 tile maps to a 128x16x16 latent, one bit per element (0.5 bit per
spectrogram pixel). Kernel sizes are not in the paper: encoder 5x5 with padding 2,
decoder 4x4 transposed convs with padding 1 (exact doubling, and ~1.6x faster to
train on CPU than 3x3 with output_padding), final 3x3 conv to one channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .arch import ArchConfig

DOWNSAMPLING = 16


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


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX tiles).

    Elsewhere bfloat16 convolutions are emulated and slower than float32.
    """
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe and probe())
    except (RuntimeError, AttributeError):
        return False


class FastDecoder(nn.Module):
    """An eval-mode decoder for the codec: each BatchNorm folded into the transposed
    conv before it, channels_last memory, in-place activations, and bfloat16
    arithmetic where the CPU has it in hardware.

    Same function as ``Decoder`` in eval mode: to float rounding (~1e-6) in
    float32, within ~1e-3 of the [0, 1] tile (0.07 dB of the mel, far below any
    model's error) in bfloat16. On the 2-core development machine (Xeon with
    AMX) a tile takes 172 ms unfused, ~65 ms fused in float32, ~21 ms in
    bfloat16. The decoder's output is not entropy coded, so neither rounding can
    break a file; ``precision`` is "auto" (bfloat16 when native), "float32" or
    "bfloat16".
    """

    def __init__(self, decoder: Decoder, precision: str = "auto"):
        super().__init__()
        if precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"unknown decoder precision {precision!r}")
        if precision == "auto":
            precision = "bfloat16" if native_bfloat16() else "float32"
        self.precision = precision
        mods = list(decoder.net)
        layers: list[nn.Module] = []
        i = 0
        while i < len(mods):
            m = mods[i]
            following = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(m, nn.ConvTranspose2d) and isinstance(following, nn.BatchNorm2d):
                layers.append(_fold(m, following))
                i += 2
                continue
            if isinstance(m, nn.LeakyReLU):
                m = nn.LeakyReLU(m.negative_slope, inplace=True)
            if isinstance(m, nn.Conv2d) and m.out_channels == 1 and m.kernel_size == (3, 3):
                m = _ToOneChannel(m)
            layers.append(m)
            i += 1
        self.net = nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def decode_bits(self, bits: torch.Tensor) -> torch.Tensor:
        x = (bits.float() * 2 - 1).contiguous(memory_format=torch.channels_last)
        low = self.precision == "bfloat16"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            return self.net(x).float().contiguous()


class _ToOneChannel(nn.Module):
    """A 3x3, padding-1 conv to one channel as one matrix product and nine shifted
    sums: 2.5x faster than the conv on channels_last input on 2 CPU cores."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError("expected a stride-1, padding-1 3x3 conv")
        self.register_buffer("taps", conv.weight.detach()[0].reshape(conv.in_channels, 9))
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(1)
        self.register_buffer("bias", bias.reshape(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        per_tap = (x.permute(0, 2, 3, 1).reshape(-1, c) @ self.taps).reshape(b, h, w, 9)
        padded = F.pad(per_tap.permute(0, 3, 1, 2), (1, 1, 1, 1))
        out = self.bias.expand(b, h, w).clone()
        for k in range(9):
            i, j = divmod(k, 3)
            # Tap (i, j) reads input pixel (y + i - 1, x + j - 1).
            out += padded[:, k, i : i + h, j : j + w]
        return out.unsqueeze(1)


def _fold(conv: nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.ConvTranspose2d:
    """A transposed conv computing ``bn(conv(x))`` with BatchNorm's running statistics."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.ConvTranspose2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        output_padding=conv.output_padding,
        bias=True,
    )
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        # ConvTranspose2d weights are [in, out, kH, kW]: scale per output channel.
        fused.weight.copy_(conv.weight.detach() * scale[None, :, None, None])
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused
