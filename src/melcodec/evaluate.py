"""Spectrogram-domain evaluation: a model's output tile against its input tile.

As the codec runs it: eval mode (BatchNorm running statistics) and the hard
quantiser. NLPD is computed per example and then averaged.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable

import torch

from . import frontend, metrics
from .model import Autoencoder


def tiles_of(paths: Iterable[str | os.PathLike]) -> torch.Tensor:
    """Every tile of every file through the codec's front end, ``[n, 1, 256, 256]``."""
    out = [frontend.analyse(frontend.load(p)[0]).scaled for p in paths]
    return torch.cat(out).unsqueeze(1)


@torch.no_grad()
def per_tile(
    net: Autoencoder, tiles: torch.Tensor, batch: int = 8, batch_stats: bool = False
) -> dict[str, torch.Tensor]:
    """Metric values per tile for ``net`` in eval mode (its train/eval state is restored).

    ``batch_stats`` is a diagnostic the codec cannot use: BatchNorm normalises
    with the statistics of each evaluation batch instead of its running ones
    (the quantiser stays hard), which shows how far those running statistics
    are from the test data's.
    """
    if batch_stats:
        net = copy.deepcopy(net).train()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.track_running_stats, m.running_mean, m.running_var = False, None, None
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    values: dict[str, list[torch.Tensor]] = {k: [] for k in metrics.METRICS}
    for i in range(0, len(tiles), batch):
        x = tiles[i : i + batch].to(device).float()
        y = net(x)
        for k, fn in metrics.METRICS.items():
            values[k].append(fn(y, x).cpu())
    net.train(was_training)
    return {k: torch.cat(v) for k, v in values.items()}


def summary(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in values.items()}


def mean_baseline(tiles: torch.Tensor) -> dict[str, float]:
    """Scores of a 'model' that outputs each tile's own mean: the floor for grey output."""
    x = tiles.float()
    y = x.mean(dim=(-2, -1), keepdim=True).expand_as(x).contiguous()
    return {k: float(fn(y, x).mean()) for k, fn in metrics.METRICS.items()}
