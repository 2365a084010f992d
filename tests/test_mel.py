"""The frozen mel analysis (melcodec.mel): the paper's settings, on any device."""

from __future__ import annotations

import math

import torch

from melcodec import mel
from melcodec.mel import MEL


def test_the_papers_clip_is_one_tile_and_silence_sits_at_the_floor():
    # 255 hops of 260 and one 1,024-sample window; the paper's 67,328 samples are 4 more.
    assert mel.padded_length(256) == 67_324
    assert mel.log_mel(torch.zeros(67_323)).shape == (256, 255)
    logmel = mel.log_mel(torch.zeros(67_328))
    assert logmel.shape == (256, 256)
    assert torch.allclose(logmel, torch.full_like(logmel, math.log(MEL.log_eps)))


def test_analysis_runs_where_its_input_lives():
    # The meta device computes shapes only: it checks that the transform follows
    # the input (a CUDA batch in training) without needing a GPU.
    out = mel.log_mel(torch.zeros(2, mel.padded_length(8), device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 256, 8)
    # ... and leaves the CPU's analysis where it was.
    assert torch.isfinite(mel.log_mel(torch.zeros(mel.padded_length(8)))).all()


def test_the_inverse_runs_where_its_input_lives():
    logmel = torch.zeros(256, 8, device="meta")
    for method, strength in [(None, 0.0), ("interp", 0.0), ("nnls", 3)]:
        out = mel.inverse_log_mel(logmel, method=method, strength=strength)
        assert out.device.type == "meta" and out.shape == (MEL.n_fft // 2 + 1, 8)
