"""The resampler: torchaudio's filter bank where small, the same filter per sample elsewhere."""

import math

import pytest
import torch
import torchaudio.functional as AF
import torchaudio.functional.functional as AFF

from melcodec import resampler


def _reference(x: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """torchaudio's filter bank evaluated in float64 (its own float32 phases err by 1e-4)."""
    g = math.gcd(old, new)
    bank, width = AFF._get_sinc_resample_kernel(
        old, new, g, 6, 0.99, "sinc_interp_hann", dtype=torch.float64
    )
    return AFF._apply_sinc_resample_kernel(x.double(), old, new, g, bank, width).float()


@pytest.mark.parametrize(
    "old,new", [(11025, 16000), (16000, 11025), (44100, 16000), (8000, 16000), (16000, 48000)]
)
def test_direct_path_computes_torchaudios_filter(old, new):
    x = torch.randn(20000, generator=torch.Generator().manual_seed(old + new))
    want = _reference(x, old, new)
    got = resampler.direct(x, old, new)
    assert got.shape == want.shape == (-(-20000 * new // old),)
    assert (got - want).abs().max() < 1e-5


def test_common_rates_keep_torchaudios_samples_bit_for_bit():
    x = torch.randn(30000, generator=torch.Generator().manual_seed(1))
    for old, new in [(44100, 16000), (48000, 16000), (16000, 22050)]:
        want = AF.resample(
            x, old, new, lowpass_filter_width=6, rolloff=0.99, resampling_method="sinc_interp_hann"
        )
        assert torch.equal(resampler.resample(x, old, new), want)


@pytest.mark.parametrize("old,new", [(44101, 16000), (16000, 191999)])
def test_rates_sharing_few_factors_never_build_the_filter_bank(monkeypatch, old, new):
    # torchaudio's bank for these is 2.8 and 12 GB; the direct path must be taken.
    assert resampler.bank_taps(old, new) > 100 * resampler.MAX_BANK_TAPS

    def refuse(*args, **kwargs):
        raise AssertionError("filter bank built")

    monkeypatch.setattr(resampler.AF, "resample", refuse)
    t = torch.arange(old // 4) / old
    y = resampler.resample(torch.sin(2 * math.pi * 1000 * t), old, new)
    assert y.numel() == -(-(old // 4) * new // old)
    # A 1 kHz tone stays a 1 kHz tone at the new rate (away from the edges).
    want = torch.sin(2 * math.pi * 1000 * torch.arange(y.numel()) / new)
    middle = slice(y.numel() // 4, 3 * y.numel() // 4)
    assert (y[middle] - want[middle]).abs().max() < 1e-3
