"""The codec's front end: audio file -> 16 kHz mono -> scaled log-mel tiles.

Training data and evaluation call these same functions, so every model sees
spectrograms made exactly as ``melcodec encode`` makes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import audio, griffinlim, limits, loudness, mel, tiles
from .mel import MEL

# Level envelope values per tile (loudness.py): 4 spans of 64 hops, 1.04 s each.
LEVEL_SPANS = tiles.TILE_FRAMES // loudness.SEGMENT_FRAMES
# Tiles the encoder analyses and codes together (33 s): bounds memory on hour-long files.
GROUP_TILES = 8
# Samples from one tile's start to the next's; a tile's last frame reaches TILE_TAIL past it.
TILE_HOP = tiles.TILE_FRAMES * MEL.hop_length
TILE_TAIL = MEL.n_fft - MEL.hop_length


@dataclass
class Analysis:
    scaled: torch.Tensor  # [tiles, n_mels, 256] in [0, 1]
    lo: torch.Tensor  # [tiles] per-tile minimum of the log-mel
    hi: torch.Tensor  # [tiles] per-tile maximum
    num_samples: int  # at 16 kHz, before padding


def load(path: str | os.PathLike) -> tuple[torch.Tensor, int, int]:
    """Read a file -> (16 kHz mono waveform, source rate, source length in samples)."""
    data, rate = audio.read_audio(path)
    wave = audio.resample(audio.to_mono(data), rate, MEL.sample_rate)
    return wave, rate, data.shape[0]


def num_tiles(num_samples: int) -> int:
    return limits.num_tiles(num_samples, MEL.n_fft, MEL.hop_length, tiles.TILE_FRAMES)


def analyse(wave: torch.Tensor) -> Analysis:
    """16 kHz waveform -> per-tile scaled log-mel; the last tile is zero-padded.

    Made group by group as :class:`Cutter` makes it for the encoder.
    """
    groups = _all_groups(wave)
    return Analysis(
        torch.cat([g.analysis.scaled for g in groups]),
        torch.cat([g.analysis.lo for g in groups]),
        torch.cat([g.analysis.hi for g in groups]),
        wave.numel(),
    )


def _all_groups(wave: torch.Tensor) -> list[Group]:
    cutter = Cutter()
    return cutter.push(wave) + cutter.finish()


@dataclass
class Group:
    """Consecutive tiles of a signal, analysed: what the encoder codes together."""

    first: int  # index of the first tile
    analysis: Analysis  # num_samples: the real (unpadded) samples of these tiles
    levels: np.ndarray  # [tiles, LEVEL_SPANS] level codes


class Cutter:
    """16 kHz audio in pieces -> groups of ``GROUP_TILES`` analysed tiles, in bounded memory.

    A tile's frames reach ``TILE_TAIL`` samples into the next tile, so a group
    is analysed once those samples are in; every frame is computed from the same
    samples as in the whole signal, and the grid of groups is fixed, so how the
    audio was cut into pieces changes nothing.
    """

    def __init__(self) -> None:
        self.held = torch.zeros(0)
        self.start = 0  # sample index of held[0]
        self.received = 0
        self.next_tile = 0

    def push(self, wave: torch.Tensor) -> list[Group]:
        """Add samples; return the groups they complete (maybe none)."""
        self.held = torch.cat([self.held, wave.to(torch.float32)])
        self.received += wave.numel()
        groups = []
        while (self.next_tile + GROUP_TILES) * TILE_HOP + TILE_TAIL <= self.received:
            groups.append(self._group(GROUP_TILES))
        return groups

    def finish(self) -> list[Group]:
        """The remaining tiles, the last one zero-padded; an empty signal has none."""
        total = num_tiles(self.received) if self.received else 0
        groups = []
        while self.next_tile < total:
            groups.append(self._group(min(GROUP_TILES, total - self.next_tile)))
        return groups

    def _group(self, count: int) -> Group:
        first = self.next_tile
        begin = first * TILE_HOP - self.start
        samples = self.held[begin : begin + count * TILE_HOP + TILE_TAIL]
        padded = audio.fit_length(samples, mel.padded_length(count * tiles.TILE_FRAMES))
        scaled, lo, hi = tiles.scale(tiles.split(mel.log_mel(padded)))
        # The level spans count only real samples, as over the whole signal.
        real = samples[: count * TILE_HOP]
        levels = level_envelope(real, count)
        self.next_tile += count
        # The next group starts at the next tile.
        self.held = self.held[begin + count * TILE_HOP :]
        self.start += begin + count * TILE_HOP
        return Group(first, Analysis(scaled, lo, hi, real.numel()), levels)


def level_span(spans_per_tile: int) -> int:
    """Samples per level span when a tile has ``spans_per_tile`` of them."""
    return tiles.TILE_FRAMES // spans_per_tile * MEL.hop_length


def level_envelope(wave: torch.Tensor, count: int) -> np.ndarray:
    """The level codes of ``count`` tiles of a 16 kHz waveform, ``[count, LEVEL_SPANS]``."""
    codes = loudness.envelope(wave, count * LEVEL_SPANS, level_span(LEVEL_SPANS))
    return codes.reshape(count, LEVEL_SPANS)


def synthesise(logmel: torch.Tensor, num_samples: int, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel -> ``num_samples`` of 16 kHz audio, whole.

    The settings are :func:`synthesis_blocks`' (Griffin-Lim iterations and
    momentum, seed, progress, phase start, level codes, inverse mel).
    """
    pieces = synthesis_blocks(
        lambda a, b: logmel[:, a:b], logmel.shape[1], num_samples, *args, **kwargs
    )
    return torch.cat([torch.zeros(0), *pieces])


def synthesis_blocks(
    logmel_at: Callable[[int, int], torch.Tensor],
    frames: int,
    num_samples: int,
    n_iter: int,
    momentum: float,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    phase_start: str = "pghi",
    levels: np.ndarray | None = None,
    inverse: str = mel.DEFAULT_INVERSE,
) -> Iterator[torch.Tensor]:
    """Log-mel -> ``num_samples`` of 16 kHz audio, in pieces, in memory bounded by a
    Griffin-Lim block.

    ``logmel_at(begin, stop)`` gives frames ``begin..stop-1`` of the log-mel;
    ``levels`` (``[tiles, spans]`` level codes) restores the input's level;
    ``inverse`` names the inverse mel (:func:`mel.parse_inverse`).
    """
    method, strength = mel.parse_inverse(inverse)

    def mag_at(begin: int, stop: int) -> torch.Tensor:
        return mel.inverse_log_mel(logmel_at(begin, stop), method=method, strength=strength)

    pieces = griffinlim.blocks(mag_at, frames, n_iter, momentum, seed, MEL, progress, phase_start)
    pieces = exactly(pieces, num_samples)
    if levels is None or not levels.size:
        yield from pieces
        return
    matcher = loudness.Matcher(levels.reshape(-1), level_span(levels.shape[1]))
    for piece in pieces:
        yield torch.from_numpy(matcher.push(piece)).float()
    yield torch.from_numpy(matcher.finish()).float()


def exactly(pieces: Iterable[torch.Tensor], length: int) -> Iterator[torch.Tensor]:
    """Pieces of a signal cut or zero-padded to ``length`` samples in all."""
    done = 0
    for piece in pieces:
        piece = piece[: length - done]
        done += piece.numel()
        yield piece
    if done < length:
        yield torch.zeros(length - done)
