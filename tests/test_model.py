"""The autoencoder's shapes and its quantiser."""

from __future__ import annotations

import pytest
import torch

from melcodec.model import ArchConfig, Autoencoder, quantise


def test_tile_maps_to_the_papers_latent_and_back():
    net = Autoencoder(ArchConfig(channels=8)).eval()
    x = torch.rand(2, 1, 256, 256)
    bits = net.encode_bits(x)
    assert bits.shape == (2, 128, 16, 16) and bits.dtype == torch.uint8
    y = net.decode_bits(bits)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    # Eval mode runs the hard quantiser: the forward pass equals decode(encode(x)).
    torch.testing.assert_close(net(x), y)


def test_soft_quantiser_is_tanh_of_2sz_and_hard_is_the_sign():
    z = torch.linspace(-1, 1, 101)
    torch.testing.assert_close(quantise(z, "soft", 10.0, hard=False), torch.tanh(20 * z))
    hard = quantise(z, "soft", 10.0, hard=True)
    assert set(hard.tolist()) == {-1.0, 1.0} and torch.equal(hard, torch.where(z >= 0, 1.0, -1.0))


def test_straight_through_is_hard_forward_identity_backward():
    z = torch.tensor([-0.9, -0.2, 0.05, 0.8], requires_grad=True)
    q = quantise(z, "ste", 10.0, hard=False)
    assert torch.equal(q.detach(), torch.tensor([-1.0, -1.0, 1.0, 1.0]))
    q.sum().backward()
    # tanh(20 z) would pass ~0 gradient at |z| = 0.8 or 0.9; the identity passes 1.
    assert torch.equal(z.grad, torch.ones(4))


def test_unknown_quantiser_is_refused():
    with pytest.raises(ValueError):
        quantise(torch.zeros(1), "nearest", 10.0, hard=False)
    with pytest.raises(ValueError):
        ArchConfig.from_dict({"channels": 8, "colour": "blue"})
