"""Figure 2 of the paper: input spectrograms and each model's reconstruction.

matplotlib is imported lazily (with the file-only Agg backend), so the codec
never pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import frontend, metrics
from .atomic import atomic_write
from .mel import MEL


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrogram_png(tile: torch.Tensor, path: str | os.PathLike, title: str = "") -> None:
    """A scaled spectrogram ``[256, frames]`` as a small PNG (for the report)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 2.4), dpi=100)
    _draw(ax, tile, title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def figure2(
    inputs: torch.Tensor,
    outputs: dict[str, torch.Tensor],
    path: str | os.PathLike,
    row_labels: list[str] | None = None,
) -> None:
    """Rows of clips; columns: the input tile, then each model's output with its scores.

    ``inputs`` is ``[n, 1, 256, 256]``; ``outputs`` maps a model name to the same shape.
    """
    plt = _pyplot()
    n, cols = len(inputs), 1 + len(outputs)
    fig, axes = plt.subplots(n, cols, figsize=(3.2 * cols, 2.8 * n), dpi=100, squeeze=False)
    for row in range(n):
        x = inputs[row : row + 1]
        label = row_labels[row] if row_labels else f"clip {row + 1}"
        _draw(axes[row][0], x[0, 0], f"input: {label}")
        for col, (name, y) in enumerate(outputs.items(), 1):
            score = {k: float(fn(y[row : row + 1], x)) for k, fn in metrics.METRICS.items()}
            title = f"{name}\nNLPD {score['nlpd']:.2f}  MS-SSIM {score['msssim']:.3f}"
            _draw(axes[row][col], y[row, 0], title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def figure2_of_files(paths: list[Path], codecs: list, path: str | os.PathLike) -> None:
    """Figure 2 for the first tile of each file, one column per (name, codec)."""
    inputs = torch.cat([frontend.analyse(frontend.load(p)[0]).scaled[:1] for p in paths])
    inputs = inputs.unsqueeze(1)
    outputs = {}
    for name, codec in codecs:
        label = codec.model.name if codec.model.name not in outputs else name  # two of a name
        outputs[label] = codec.decode_tiles(codec.tile_bits(inputs[:, 0])).unsqueeze(1)
    figure2(inputs, outputs, path, [p.stem for p in paths])


def _draw(ax, tile: torch.Tensor, title: str) -> None:
    seconds = tile.shape[-1] * MEL.hop_length / MEL.sample_rate
    ax.imshow(
        tile.detach().float().cpu().numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=0,
        vmax=1,
        extent=(0, seconds, 0, MEL.n_mels),
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("mel band", fontsize=8)
    ax.tick_params(labelsize=7)


def _save(fig, path: str | os.PathLike) -> None:
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png"))
