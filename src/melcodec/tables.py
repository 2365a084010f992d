"""Fitting a model's probability tables on training data, and storing them.

Bits are counted in eval mode, as the codec produces them; the table goes into
the model file, which therefore gets a new SHA-256. Files made with the old model
file stay decodable where nothing they depend on changed: the new card lists the
old hash under ``earlier_files`` with the probability-model ids whose tables are
unchanged (the weights never change here), and :meth:`zoo.LoadedModel.decodes`
accepts exactly those.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import context, entropy, zoo

# Tables of retired probability models (entropy.RETIRED), dropped at every refit.
RETIRED_KEYS = ("context_bernoulli", "context_mix")


@torch.no_grad()
def count_ones(
    net, tiles: torch.Tensor, batch: int = 16, progress: Callable | None = None
) -> torch.Tensor:
    """Per-position counts of 1 bits over ``tiles`` ``[n, 1, 256, 256]``."""
    return torch.from_numpy(tile_bits(net, tiles, batch, progress).sum(0, dtype=np.int64))


def spread(tiles: torch.Tensor, count: int) -> torch.Tensor:
    """At most ``count`` of ``tiles``, evenly spread over them (every len // count-th),
    so a fit sees every part of a corpus in file order."""
    return tiles[:: max(1, len(tiles) // count)][:count]


@torch.no_grad()
def tile_bits(
    net, tiles: torch.Tensor, batch: int = 16, progress: Callable | None = None
) -> np.ndarray:
    """The latent bits of ``tiles`` ``[n, 1, 256, 256]`` -> ``[n, C, 16, 16]`` uint8."""
    net.eval()
    out = []
    for i in range(0, len(tiles), batch):
        out.append(net.encode_bits(tiles[i : i + batch].float()).numpy())
        if progress:
            progress(min(i + batch, len(tiles)), len(tiles))
    return np.concatenate(out)


def fit_table(
    kind: str,
    model_path: str | os.PathLike,
    tiles: torch.Tensor,
    out: str | os.PathLike | None = None,
    progress: Callable | None = None,
    published: bool = False,
) -> dict:
    """Add a ``kind`` ("static" or "context") probability table fitted on ``tiles``
    ``[n, 1, 256, 256]`` to a model file (in place, or written to ``out``);
    ``published`` as in ``zoo.save_model``."""
    model = zoo.load_model(model_path)
    # Before the encoding pass, which takes minutes on a real corpus.
    zoo.check_writable(Path(out) if out else model.path, published)
    bits = tile_bits(model.net, tiles, progress=progress)
    model_id, key, table, bits_per_tile = _FITS[kind](bits)
    info = {"fit_tiles": len(tiles), "entropy_bits_per_tile": bits_per_tile}
    return _store(model, model_id, key, table, info, out, published)


def _fit_static(bits: np.ndarray) -> tuple:
    table = entropy.table_from_counts(torch.from_numpy(bits.sum(0, dtype=np.int64)), len(bits))
    p = table.double() / entropy.PROB_ONE
    bits_per_tile = float((-(p * p.log2() + (1 - p) * (1 - p).log2())).sum())
    return entropy.StaticBernoulli.id, "static_bernoulli", table, bits_per_tile


def _fit_context(bits: np.ndarray) -> tuple:
    tables = context.fit(bits)
    # In-sample, so a little below what unseen music costs (bench/contexts.py).
    return (
        context.CheckerboardMix.id,
        context.TABLE_KEY,
        tables,
        context.cross_entropy_bits(tables, bits),
    )


_FITS = {"static": _fit_static, "context": _fit_context}


def _store(model, model_id: int, key: str, table, info: dict, out, published: bool) -> dict:
    """Write ``model`` with one probability table replaced, keeping old files decodable."""
    card = dict(model.card)
    card["probability"] = dict(card.get("probability") or {}) | {key: info}
    probability = dict(model.probability or {})
    probability[key] = table
    for retired in RETIRED_KEYS:  # they decode nothing any more
        probability.pop(retired, None)
        card["probability"].pop(retired, None)
    card["earlier_files"] = earlier_files(model, model_id)
    target = Path(out) if out else model.path
    half = model.card.get("weights") == "float16"
    zoo.save_model(target, model.net, card, model.recipe, probability, half, published)
    return info


def earlier_files(model, replaced_id: int) -> list[dict]:
    """The card's ``earlier_files`` once the table of ``replaced_id`` is replaced.

    The model file itself joins the list with the ids its tables serve; every
    entry loses ``replaced_id``, whose table is no longer the one it used.
    """
    ids = [entropy.UniformBits.id] + [
        i
        for i, k in ((1, "static_bernoulli"), (context.CheckerboardMix.id, context.TABLE_KEY))
        if k in (model.probability or {})
    ]
    entries = [{"sha256": model.sha256.hex(), "probability_ids": ids}]
    entries += list(model.card.get("earlier_files", []))
    kept = []
    for entry in entries:
        left = [i for i in entry["probability_ids"] if i != replaced_id]
        if left:
            kept.append({"sha256": entry["sha256"], "probability_ids": left})
    return kept
