"""The learning-rate schedule and the validation hold-out the training loop uses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from melcodec import trainstep
from melcodec.recipes import RECIPES


def test_cosine_schedule_falls_from_one_to_zero():
    recipe = dataclasses.replace(RECIPES["cpu"], steps=1000)
    assert recipe.schedule == "cosine"
    factors = [trainstep.lr_factor(recipe, s) for s in range(1000)]
    assert factors[0] == 1.0
    assert factors[500] == pytest.approx(0.5)
    assert factors[250] == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert 0 < factors[-1] < 1e-4
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))


def test_constant_schedule_and_set_lr():
    recipe = dataclasses.replace(RECIPES["cpu"], schedule="constant", steps=10, lr=3e-3)
    net = torch.nn.Linear(2, 2)
    optim = torch.optim.AdamW([{"params": [net.weight]}, {"params": [net.bias]}], lr=1.0)
    for s in (0, 5, 9):
        assert trainstep.set_lr(optim, recipe, s) == 3e-3
        assert [g["lr"] for g in optim.param_groups] == [3e-3, 3e-3]
    cosine = dataclasses.replace(recipe, schedule="cosine")
    assert trainstep.set_lr(optim, cosine, 5) == pytest.approx(1.5e-3)
    assert [g["lr"] for g in optim.param_groups] == pytest.approx([1.5e-3, 1.5e-3])


@pytest.mark.parametrize(
    ("count", "held"),
    [(1, []), (2, [0]), (20, [0]), (21, [0, 20]), (41, [0, 20, 40])],
)
def test_hold_out_every_twentieth_clip(count, held):
    mask = trainstep.hold_out(count)
    assert mask.dtype == torch.bool and mask.shape == (count,)
    assert torch.nonzero(mask).flatten().tolist() == held


def test_step_updates_and_returns_the_loss():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 4)
    optim = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.rand(8, 4)
    before = net.weight.detach().clone()

    def loss_fn(y, target):
        return ((y - target) ** 2).mean(dim=1)

    with torch.no_grad():
        expected = float(loss_fn(net(x), x).mean())
    value = trainstep.step(net, optim, loss_fn, x)
    assert not value.requires_grad and float(value) == pytest.approx(expected)
    assert not torch.equal(before, net.weight)
    with torch.no_grad():
        assert float(loss_fn(net(x), x).mean()) < expected
