"""Reviving dead latent channels during training.

A latent channel whose encoder output keeps one sign is dead: the Tanh before
the quantiser saturates, its gradient vanishes, and the channel stays constant
for good: one channel fewer for the decoder. MSE training on music leaves many
(the first shipped MSE-on-music model: 25 to 28 of 128 on a training batch,
bench/dead_channels.py), MS-SSIM training none. Like a vector quantiser's dead-code
restart, a dead channel gets fresh encoder weights with its bias set so that
half of the current batch's codes are +1, and zero decoder weights, so that
the revival does not disturb the output and the decoder learns to use it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from .model import Autoencoder

# A channel is called dead only on this many codes or more: a live channel with
# one code in 200 of the other sign then looks dead in under 1 % of checks.
MIN_CODES = 1024


def _final_conv(net: Autoencoder) -> nn.Conv2d:
    layers = list(net.encoder.net)
    if not isinstance(layers[-2], nn.Conv2d):
        raise ValueError("revival needs the encoder's last conv right before its Tanh")
    return layers[-2]


def revived_parameters(net: Autoencoder) -> tuple[torch.Tensor, ...]:
    """The parameters a revival writes (what DDP ranks must then share)."""
    conv = _final_conv(net)
    return conv.weight, conv.bias, net.decoder.net[0].weight


@contextlib.contextmanager
def _training_mode_kept_stats(net: Autoencoder) -> Iterator[None]:
    """Train mode (BatchNorm on batch statistics, as the gradient sees the encoder)
    without moving BatchNorm's running averages. Eval mode would not do: before the
    averages settle, it shows live channels as constant."""
    was_training = net.training
    stats = ("running_mean", "running_var", "num_batches_tracked")
    kept = {k: v.clone() for k, v in net.encoder.state_dict().items() if k.endswith(stats)}
    net.train()
    try:
        yield
    finally:
        net.encoder.load_state_dict(kept, strict=False)
        net.train(was_training)


@torch.no_grad()
def dead_channels(net: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """Indexes of the latent channels with one sign over every position of ``x``."""
    with _training_mode_kept_stats(net):
        positive = (net.encoder(x) >= 0).float().mean(dim=(0, 2, 3))
    return torch.nonzero((positive == 0) | (positive == 1)).flatten()


@torch.no_grad()
def revive(
    net: Autoencoder,
    optim: torch.optim.Optimizer,
    x: torch.Tensor,
    channels: torch.Tensor,
    gen: torch.Generator,
) -> None:
    """Give ``channels`` fresh encoder weights, a balanced bias and silent decoder weights."""
    if channels.numel() == 0:
        return
    conv = _final_conv(net)
    first = net.decoder.net[0]
    fresh = torch.empty(len(channels), *conv.weight.shape[1:])
    # PyTorch's own Conv2d initialisation, drawn from ``gen`` for reproducible runs.
    nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=gen)
    conv.weight[channels] = fresh.to(conv.weight)
    conv.bias[channels] = 0
    with _training_mode_kept_stats(net):
        before_tanh = net.encoder.net[:-1](x)[:, channels]
    conv.bias[channels] = -before_tanh.transpose(0, 1).flatten(1).median(dim=1).values
    first.weight[channels] = 0
    for param in revived_parameters(net):
        for moment in ("exp_avg", "exp_avg_sq"):
            state = optim.state.get(param, {})
            if moment in state:
                state[moment][channels] = 0
