"""Fitting a model's probability tables on training data, and storing them.

Bits are counted in eval mode, as the codec produces them; the table goes into
the model file (which therefore gets a new SHA-256: streams made before the
table was added refer to the old file and are refused, as they should be).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from . import entropy, zoo


@torch.no_grad()
def count_ones(
    net, tiles: torch.Tensor, batch: int = 16, progress: Callable | None = None
) -> torch.Tensor:
    """Per-position counts of 1 bits over ``tiles`` ``[n, 1, 256, 256]``."""
    net.eval()
    ones = None
    for i in range(0, len(tiles), batch):
        bits = net.encode_bits(tiles[i : i + batch].float()).sum(0, dtype=torch.int64)
        ones = bits if ones is None else ones + bits
        if progress:
            progress(min(i + batch, len(tiles)), len(tiles))
    return ones


def fit_static_table(
    model_path: str | os.PathLike,
    tiles: torch.Tensor,
    out: str | os.PathLike | None = None,
    progress: Callable | None = None,
) -> dict:
    """Add a static-bernoulli table fitted on ``tiles`` to a model file."""
    model = zoo.load_model(model_path)
    ones = count_ones(model.net, tiles, progress=progress)
    table = entropy.table_from_counts(ones, len(tiles))
    p = table.double() / entropy.PROB_ONE
    bits_per_tile = float((-(p * p.log2() + (1 - p) * (1 - p).log2())).sum())
    card = dict(model.card)
    card["probability"] = {
        "static_bernoulli": {"fit_tiles": len(tiles), "entropy_bits_per_tile": bits_per_tile}
    }
    probability = dict(model.probability or {})
    probability["static_bernoulli"] = table
    target = Path(out) if out else model.path
    half = model.card.get("weights") == "float16"
    zoo.save_model(target, model.net, card, model.recipe, probability, half=half)
    return card["probability"]["static_bernoulli"]
