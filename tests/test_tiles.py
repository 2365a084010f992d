"""Cutting a log-mel into tiles and scaling each to [0, 1] (melcodec.tiles)."""

from __future__ import annotations

import pytest
import torch

from melcodec import tiles


def test_split_and_join_are_inverse_and_refuse_partial_tiles():
    logmel = torch.arange(4 * 512, dtype=torch.float32).reshape(4, 512)
    split = tiles.split(logmel)
    assert split.shape == (2, 4, 256)
    assert torch.equal(split[1], logmel[:, 256:])
    assert torch.equal(tiles.join(split), logmel)
    with pytest.raises(ValueError, match="300 frames is not a multiple of 256"):
        tiles.split(torch.zeros(4, 300))


def test_scaling_with_another_range_is_clipped_to_the_unit_interval():
    # Re-scaling a tile with the range the file stored (benchmark's analysis check):
    # values outside it must clip, as the network never saw them.
    t = torch.tensor([[[-1.0, 0.0, 2.0, 4.0, 5.0]]])
    scaled = tiles.scale_with(t, torch.tensor([0.0]), torch.tensor([4.0]))
    assert scaled.tolist() == [[[0.0, 0.0, 0.5, 1.0, 1.0]]]
    flat = tiles.scale_with(torch.full((1, 2, 2), 3.0), torch.tensor([3.0]), torch.tensor([3.0]))
    assert torch.equal(flat, torch.zeros(1, 2, 2))  # a silent tile: no division by zero
    back = tiles.unscale(scaled, torch.tensor([0.0]), torch.tensor([4.0]))
    assert back.tolist() == [[[0.0, 0.0, 2.0, 4.0, 4.0]]]
    narrow = tiles.unscale(
        torch.tensor([[[0.0, 0.5, 1.0]]]), torch.tensor([1.0]), torch.tensor([1.5])
    )
    assert narrow.tolist() == [[[1.0, 1.25, 1.5]]]
