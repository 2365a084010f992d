"""Spectrogram-domain evaluation helpers."""

from __future__ import annotations

import torch

from melcodec import evaluate
from melcodec.model import ArchConfig, Autoencoder


def _net() -> Autoencoder:
    torch.manual_seed(0)
    net = Autoencoder(ArchConfig(channels=8))
    with torch.no_grad():  # running statistics far from any test batch's
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    return net


def test_per_tile_scores_every_tile_and_keeps_the_mode():
    net = _net().train()
    values = evaluate.per_tile(net, torch.rand(5, 1, 64, 64), batch=2)
    assert set(values) == {"mse", "nlpd", "msssim"}
    assert all(v.shape == (5,) for v in values.values())
    assert net.training


def test_batch_statistics_are_a_copy_that_changes_the_scores():
    net = _net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    tiles = torch.rand(4, 1, 64, 64)
    running = evaluate.per_tile(net, tiles, batch=4)
    batch = evaluate.per_tile(net, tiles, batch=4, batch_stats=True)
    assert not torch.allclose(running["mse"], batch["mse"])
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mean_baseline_is_grey():
    ramp = torch.linspace(0, 1, 64)[None, None, :, None].expand(2, 1, 64, 64).contiguous()
    scores = evaluate.mean_baseline(ramp)
    assert abs(scores["mse"] - float(ramp.var(unbiased=False))) < 1e-6
    assert scores["msssim"] < 0.5
    flat = torch.full((2, 1, 64, 64), 0.3)
    assert evaluate.mean_baseline(flat)["mse"] < 1e-12
