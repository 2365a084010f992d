"""Perceptual distances between spectrogram tiles: MSE, NLPD and MS-SSIM.

NLPD is the Normalised Laplacian Pyramid Distance of Laparra, Ballé, Berardino and
Simoncelli, "Perceptual image quality assessment using a normalized Laplacian pyramid"
(Electronic Imaging, 2016), in the PyTorch form used as a training loss for
mel-spectrogram codecs by Namgyal et al. (2023), "Data is Overrated: Perceptual Metrics
Can Lead Learning in the Absence of Training Data".

Every function takes ``[B, C, H, W]`` tensors in ``[0, 1]`` and returns one value per
example, shape ``[B]``; a batch figure is the ``.mean()`` of that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor

__all__ = ["LOSSES", "METRICS", "mse", "msssim", "nlpd"]

_LOWPASS_1D = (0.05, 0.25, 0.4, 0.25, 0.05)
_SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# (top, left, right, bottom) neighbour weights of each level's 3x3 divisive-normalisation
# kernel; the centre and the corners are zero.
_DN_WEIGHTS = (
    (0.1011, 0.1493, 0.1460, 0.1015),
    (0.0757, 0.1986, 0.1846, 0.0837),
    (0.0477, 0.2138, 0.2243, 0.0467),
    (0.0, 0.2503, 0.2616, 0.0),
    (0.0, 0.2598, 0.2552, 0.0),
    (0.0, 0.2215, 0.0717, 0.0),
)
_NLPD_P = 0.6

# MS-SSIM defaults (Wang et al. 2003) as in pytorch_msssim.
_MSSSIM_WIN = 11
_MSSSIM_SCALES = 5


def _compute_dtype(x: Tensor, y: Tensor) -> torch.dtype:
    # At least float32 (bf16/fp16 lose the small band-pass differences NLPD measures),
    # but float64 stays float64.
    return torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)


def _in_float(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Run ``fn`` outside autocast on inputs cast to >= float32.

    Casting alone is not enough: an enclosing bf16 autocast would cast again, inside
    conv2d, back to bf16.
    """

    @functools.wraps(fn)
    def wrapper(x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape or x.dim() != 4:
            raise ValueError(f"expected two [B, C, H, W] tensors, got {x.shape} and {y.shape}")
        dtype = _compute_dtype(x, y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return fn(x.to(dtype), y.to(dtype))

    return wrapper


@_in_float
def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per example, shape ``[B]``."""
    return (x - y).square().flatten(1).mean(1)


@functools.cache
def _nlpd_constants(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Low-pass filter ``[1,1,5,5]``, DN kernels ``[6,1,3,3]`` and sigmas ``[6]``."""
    # Built outside inference mode even if first asked for inside it: cached inference
    # tensors could never be saved for a later backward pass.
    with torch.inference_mode(False):
        g = torch.tensor(_LOWPASS_1D, dtype=dtype, device=device)
        lowpass = torch.outer(g, g).view(1, 1, 5, 5)
        dn = torch.zeros(len(_DN_WEIGHTS), 1, 3, 3, dtype=dtype, device=device)
        w = torch.tensor(_DN_WEIGHTS, dtype=dtype, device=device)
        dn[:, 0, 0, 1], dn[:, 0, 1, 0], dn[:, 0, 1, 2], dn[:, 0, 2, 1] = w.unbind(1)
        sigmas = torch.tensor(_SIGMAS, dtype=dtype, device=device)
    return lowpass, dn, sigmas


def _pad(x: Tensor, p: int) -> Tensor:
    # Reflection needs p < side. A 64-px input reaches 2x2 at the sixth level, where
    # reflect-padding by 2 is undefined, so only there the edge is replicated instead.
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def _normalised_pyramid(img: Tensor) -> list[Tensor]:
    channels = img.shape[1]
    lowpass, dn, sigmas = _nlpd_constants(img.device, img.dtype)
    lowpass = lowpass.expand(channels, 1, 5, 5)
    levels = []
    j = img
    for k in range(len(_SIGMAS)):
        i = F.conv2d(_pad(j, 2), lowpass, stride=2, groups=channels)
        # align_corners=True as in the group's PyTorch NLPD (Hepburn et al.).
        up = F.interpolate(i, size=j.shape[-2:], mode="bilinear", align_corners=True)
        z = j - F.conv2d(_pad(up, 2), lowpass, groups=channels)
        energy = F.conv2d(
            _pad(z.abs(), 1), dn[k : k + 1].expand(channels, 1, 3, 3), groups=channels
        )
        levels.append(z / (sigmas[k] + energy))
        j = i
    return levels


@_in_float
def nlpd(x: Tensor, y: Tensor) -> Tensor:
    """Normalised Laplacian Pyramid Distance per example, shape ``[B]``.

    Needs ``H, W >= 33`` (64 and up in practice). Only the six band-pass levels are
    compared, not the low-pass residual, so a uniform offset (a global gain change of a
    log-spectrogram) scores ~0.
    """
    if min(x.shape[-2:]) < 33:
        raise ValueError(f"NLPD needs H, W >= 33, got {tuple(x.shape[-2:])}")
    total = x.new_zeros(x.shape[0])
    for zx, zy in zip(_normalised_pyramid(x), _normalised_pyramid(y), strict=True):
        m = (zx - zy).square().flatten(1).mean(1)
        # r_k ** p with r_k = sqrt(m) is m ** (p / 2): a single power, whose gradient is
        # infinite at m == 0 (x == y) and would turn into NaN. Feeding the power a dummy 1
        # there (the "double where") keeps that gradient at exactly 0 and the value exact;
        # an additive eps would bias every value and vanish under flush-to-zero.
        nonzero = m > 0
        safe_m = torch.where(nonzero, m, torch.ones_like(m))
        total = total + torch.where(nonzero, safe_m.pow(_NLPD_P / 2), torch.zeros_like(m))
    # Exponent 1/p > 1, so this pow has a zero (finite) gradient at 0.
    return total.pow(1 / _NLPD_P)


def _msssim_win_size(height: int, width: int) -> int:
    # pytorch_msssim asserts side > (win_size - 1) * 2**4 whatever the number of weights,
    # i.e. the coarsest of its 5 scales must still hold a whole window. So fewer weights
    # would not help small crops; a smaller window does. We keep the standard 5 scales
    # and weights (comparable values across tile sizes) and shrink the Gaussian window
    # to the largest odd size that fits: 11 for side > 160 (the standard MS-SSIM,
    # e.g. 256), 7 for 128, 3 for 64.
    side = min(height, width)
    win = _MSSSIM_WIN
    while win > 3 and (win - 1) * 2 ** (_MSSSIM_SCALES - 1) >= side:
        win -= 2
    if (win - 1) * 2 ** (_MSSSIM_SCALES - 1) >= side:
        raise ValueError(f"MS-SSIM needs H, W >= 33, got {(height, width)}")
    return win


@_in_float
def msssim(x: Tensor, y: Tensor) -> Tensor:
    """MS-SSIM per example (1 = identical), shape ``[B]``, for data in ``[0, 1]``.

    Standard 11-px window for sides > 160, smaller below (see ``_msssim_win_size``).
    """
    win = _msssim_win_size(*x.shape[-2:])
    return ms_ssim(x, y, data_range=1.0, size_average=False, win_size=win)


def _msssim_loss(x: Tensor, y: Tensor) -> Tensor:
    return 1.0 - msssim(x, y)


METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": mse,
    "nlpd": nlpd,
    "msssim": msssim,
}

# Per-example losses (lower is better), shape [B].
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": mse,
    "nlpd": nlpd,
    "msssim": _msssim_loss,
}
