"""Reviving dead latent channels: detection, the revival, and the training loop's use of it."""

from __future__ import annotations

import copy
import dataclasses
import textwrap

import pytest
import torch
from test_train import SMALL, options, read_log, run_two_ranks

from melcodec import data, revive, train
from melcodec.errors import UsageError
from melcodec.model import Autoencoder
from melcodec.recipes import RECIPES

PLANTED = [5, 9]


def _final_conv(net: Autoencoder) -> torch.nn.Conv2d:
    return net.encoder.net[-2]


@pytest.fixture
def planted() -> tuple[Autoencoder, torch.Tensor]:
    """A small net (train mode) whose channels 5 and 9 are constant, and 1,024 codes of noise."""
    torch.manual_seed(0)
    net = Autoencoder(SMALL).train()
    x = data.NoiseImages(0, 0, torch.device("cpu"), "octaves").batch(0, 0, 4, 256)
    conv = _final_conv(net)
    with torch.no_grad():
        conv.weight[PLANTED] = 0
        conv.bias[5], conv.bias[9] = 3.0, -3.0
    return net, x


def _adam_with_state(net: Autoencoder, x: torch.Tensor) -> torch.optim.Optimizer:
    optim = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ((net(x) - x) ** 2).mean().backward()
    optim.step()
    return optim


def test_dead_channels_are_exactly_the_constant_ones(planted):
    net, x = planted
    assert revive.dead_channels(net, x).tolist() == PLANTED


def test_detection_sees_batch_statistics_and_keeps_running_ones(planted):
    net, x = planted
    net.eval()
    before = copy.deepcopy(net.state_dict())
    # At initialisation BatchNorm's running averages are 0 and 1: in eval mode most
    # of the small net's channels would look constant (7 of 16 measured).
    assert revive.dead_channels(net, x).tolist() == PLANTED
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not net.training


def test_revival_balances_the_channel_and_silences_its_decoder_weights(planted):
    net, x = planted
    optim = _adam_with_state(net, x)
    conv, first = _final_conv(net), net.decoder.net[0]
    before = copy.deepcopy(net.state_dict())
    moments = {id(p): dict(optim.state[p]) for p in (conv.weight, first.weight)}
    moments = {i: {k: v.clone() for k, v in state.items()} for i, state in moments.items()}
    revive.revive(net, optim, x, torch.tensor(PLANTED), torch.Generator().manual_seed(1))
    after = copy.deepcopy(net.state_dict())

    assert revive.dead_channels(net, x).tolist() == []
    with torch.no_grad():
        # (Train mode moves the running averages: ``after`` was taken before.)
        share = (net.encoder(x)[:, PLANTED] >= 0).float().mean(dim=(0, 2, 3))
    assert share.tolist() == pytest.approx([0.5, 0.5], abs=0.01)
    assert conv.weight[PLANTED].abs().amin(dim=(1, 2, 3)).gt(0).all()
    assert first.weight[PLANTED].eq(0).all()
    # Nothing else moves: other channels, other layers.
    live = [c for c in range(SMALL.latent_channels) if c not in PLANTED]
    written = {id(p) for p in (conv.weight, conv.bias, first.weight)}
    per_channel = {name for name, p in net.named_parameters() if id(p) in written}
    assert len(per_channel) == 3
    for key in before:
        if key in per_channel:
            assert torch.equal(before[key][live], after[key][live]), key
        else:
            assert torch.equal(before[key], after[key]), key
    # Adam's moments are cleared for the revived channels only.
    for param in (conv.weight, first.weight):
        for name in ("exp_avg", "exp_avg_sq"):
            state = optim.state[param][name]
            assert state[PLANTED].eq(0).all()
            assert torch.equal(state[live], moments[id(param)][name][live])
            assert state[live].ne(0).any()


def test_revival_is_reproducible_from_its_generator(planted):
    net, x = planted
    twin = copy.deepcopy(net)
    for n in (net, twin):
        gen = torch.Generator().manual_seed(7)
        revive.revive(n, _adam_with_state(n, x), x, torch.tensor(PLANTED), gen)
    assert torch.equal(_final_conv(net).weight, _final_conv(twin).weight)


def _fake_dead(monkeypatch, channels: list[int]) -> list[int]:
    """Make every check report ``channels`` dead; returns the steps' record of calls."""
    calls: list[int] = []

    def dead(net, x):
        calls.append(len(x))
        return torch.tensor(channels, dtype=torch.long)

    monkeypatch.setattr(revive, "dead_channels", dead)
    return calls


def test_training_revives_every_n_steps_until_the_last_quarter(tmp_path, monkeypatch):
    calls = _fake_dead(monkeypatch, [2, 3])
    out = tmp_path / "run"
    train.train(options(out, steps=8, batch_size=4, crop=256, revive_every=2))
    revived = {r["step"]: r.get("revived") for r in read_log(out)}
    # Checks at steps 2 and 4 (< 0.75 x 8); none at 6 and 8.
    assert revived == {1: None, 2: [2, 3], 3: None, 4: [2, 3], 5: None, 6: None, 7: None, 8: None}
    assert calls == [4, 4]


def test_no_revival_when_off_or_when_a_batch_has_too_few_codes(tmp_path, monkeypatch):
    calls = _fake_dead(monkeypatch, [2])
    # 4 x (256 / 16)^2 = 1,024 codes per channel would be enough; 4 x (128 / 16)^2 is not.
    train.train(options(tmp_path / "small", steps=2, batch_size=4, crop=128, revive_every=1))
    train.train(options(tmp_path / "off", steps=2, batch_size=4, crop=256, revive_every=0))
    assert calls == []
    for run in ("small", "off"):
        assert all("revived" not in r for r in read_log(tmp_path / run))


def test_zoo_recipes_revive_and_the_papers_cannot(tmp_path):
    assert RECIPES["cpu"].revive_every == RECIPES["gpu"].revive_every == 100
    assert RECIPES["paper"].revive_every == 0
    # The paper's architecture, small (a missing check must not start a paper run).
    arch = dataclasses.replace(SMALL, final_norm=True)
    paper = dataclasses.replace(
        RECIPES["paper"], arch=arch, steps=1, batch_size=2, crop=64, revive_every=100
    )
    opts = dataclasses.replace(options(tmp_path / "run"), recipe=paper)
    with pytest.raises(UsageError, match="normalises before the encoder's Tanh"):
        train.train(opts)
    with pytest.raises(UsageError, match="revive-every"):
        train.train(options(tmp_path / "run", revive_every=-1))
    assert not (tmp_path / "run").exists()


REVIVE_HELPER = textwrap.dedent(
    """
    import dataclasses, json, sys
    import torch
    import torch.distributed as dist
    from melcodec import revive, train
    from melcodec.model import ArchConfig
    from melcodec.recipes import RECIPES

    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    train.VALIDATION_TILES = 4
    # Each rank sees other dead channels; rank 0's decision must hold on both.
    revive.dead_channels = lambda net, x: torch.tensor(spec["dead"][dist.get_rank()])
    original = train._revive

    def recorded(net, optim, *args):
        channels = original(net, optim, *args)
        params = [p.detach().clone() for p in revive.revived_parameters(net)]
        params += [optim.state[p]["exp_avg"].clone() for p in revive.revived_parameters(net)]
        torch.save(params, f"{spec['out']}/rank{dist.get_rank()}.pt")
        return channels

    train._revive = recorded
    recipe = dataclasses.replace(
        RECIPES["cpu"], arch=ArchConfig(**spec["arch"]), steps=2, batch_size=8, crop=256,
        revive_every=1,
    )
    train.train(train.RunOptions(
        loss="mse", data="noise", recipe=recipe, out=spec["out"], device="cpu", quiet=True,
    ))
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_ddp_ranks_revive_rank_zeros_channels_with_the_same_weights(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    spec = {"arch": SMALL.to_dict(), "out": str(out), "dead": [[1, 2], [3]]}
    run_two_ranks(tmp_path, REVIVE_HELPER, spec)
    assert [r.get("revived") for r in read_log(out)] == [[1, 2], None]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    # Each rank's batch gives another median bias; rank 0's weights must win, and
    # both ranks clear Adam's moments of the same channels.
    for a, b in zip(rank0, rank1, strict=True):
        assert torch.equal(a, b)
    assert rank0[1][[1, 2]].ne(0).all()
    assert rank0[3][[1, 2]].eq(0).all() and rank0[3][3].ne(0).any()
