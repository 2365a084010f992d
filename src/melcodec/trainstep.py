"""One optimiser step, the learning-rate schedule and the validation hold-out.

Shared by the training loop (``train.py``), ``bench/train_speed.py`` and the
tests, so that what is timed and tested is what trains the shipped models.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch

from .recipes import Recipe

# Every HOLD_OUT_EVERY-th clip of a music folder is held out for validation.
HOLD_OUT_EVERY = 20


def lr_factor(recipe: Recipe, step: int) -> float:
    """The learning rate at ``step`` (0-based) as a share of ``recipe.lr``."""
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
    return 1.0


def set_lr(optim: torch.optim.Optimizer, recipe: Recipe, step: int) -> float:
    lr = recipe.lr * lr_factor(recipe, step)
    for group in optim.param_groups:
        group["lr"] = lr
    return lr


def step(
    model: Callable[[torch.Tensor], torch.Tensor],
    optim: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """Forward, loss (in float32), backward and update on ``x``; returns the loss, detached."""
    with autocast or contextlib.nullcontext():
        y = model(x)
    loss = loss_fn(y.float(), x).mean()
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return loss.detach()


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (what the GPU recipe trains with); nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def hold_out(count: int) -> torch.Tensor:
    """Boolean mask of the clips held out for validation: every 20th, first included.

    A single clip is never held out (it is both trained on and validated on).
    """
    held = torch.zeros(count, dtype=torch.bool)
    if count > 1:
        held[::HOLD_OUT_EVERY] = True
    return held
