"""Context probability model for the latent bits (id 4, checkerboard-mix).

A tile's latent ``[C, S, S]`` (channel, mel row, time column) is split into
channel groups ``0 .. G-1``, decoded one after the other, each in two passes:
pass 0 its *anchors* (positions with ``y + x`` even), pass 1 the rest; ``2 G``
steps in all. A bit of channel ``c`` at ``(y, x)`` decoded in pass ``p`` has logit

    z = bias[c, p, y] + sum over (o, c') of weight[c, p, o, c'] * s(c', (y, x) + o)

- ``s(c', q)``: +1 or -1 for the bit of channel ``c'`` at position ``q``, 0 outside
  the tile, over the five offsets ``o`` of :data:`OFFSETS` (the position itself and
  its four nearest neighbours);
- ``weight`` may be non-zero only where that bit is decoded before this one
  (:func:`allowed`): ``c'`` in an earlier group, at any offset; or, in pass 1, ``c'``
  in the same group (``c`` itself included) at the four nearest neighbours, which
  are anchors.

Then ``P(bit = 1) = squash[clip(z, -ZMAX, ZMAX) + ZMAX] / 65536``, from a table of
integers ``1..65535`` stored in the model file. ``bias`` and ``weight`` are integers
(the fitted logits times :data:`SCALE`) and every sum is a float32 matrix product
of small integers whose partial sums all stay below 2^24 (:data:`REACH_LIMIT`), so
it is exact whatever the order of its additions: the encoder sums a bit's terms in
one product, the decoder adds each group's share as soon as the group is decoded,
and both get the same integer. Nothing but integers lies between the decoded bits
and the probability constriction sees: a file decodes to the same latents on any
machine, BLAS and thread count. Encoding codes a whole tile in one call; decoding
is one call per step and tile, with the tiles of a file decoded side by side.
``docs/probability.md`` has the measurements behind the choices
(``bench/contexts.py``) and their cost.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .errors import FormatError, ModelError

OFFSETS = ((0, 0), (-1, 0), (0, -1), (0, 1), (1, 0))  # the position and its 4 nearest
NEAR = (1, 2, 3, 4)  # the offsets at which pass 1 reads its own group's anchors
PASSES = 2
SCALE = 256  # integer logit units per nat
ZMAX = 16 * SCALE  # logits clipped to +-16 nats: P within 1e-7 of 0 or 1
WEIGHT_LIMIT = 1 << 15  # int16 weights
# A channel's weights in one pass sum in absolute value to at most this: every
# partial sum of a (shifted) logit is then an integer that float32 holds exactly
# (< 2^24), in any order of addition, and the padded squash table stays small.
REACH_LIMIT = 1 << 18
MAX_GROUPS = 16
GROUPS = 4  # what a fit uses unless told: bench/contexts.py
PENALTY = 1e-6  # L2 on the fitted logits
TABLE_KEY = "checkerboard_mix"
SIGN = np.array([-1, 1], np.float32)


def allowed(groups: np.ndarray) -> np.ndarray:
    """``[C, PASSES, 5, C]``: where ``weight[c, p, o, c']`` may be non-zero."""
    c = len(groups)
    earlier = groups[None, :] < groups[:, None]
    mask = np.broadcast_to(earlier[:, None, None, :], (c, PASSES, len(OFFSETS), c)).copy()
    mask[:, 1, list(NEAR)] |= (groups[None, :] == groups[:, None])[:, None, :]
    return mask


class _Buffers(threading.local):
    """Work arrays kept between calls, per thread: on the machines measured, filling
    a new 590 kB array costs 20 times as much in page faults as filling a kept one
    (0.40 ms against 0.02 ms), more than the arithmetic done in it."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        array = self.arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            # Zeroed once: a sign state's padding stays 0, and its inside is always
            # written before it is read.
            array = self.arrays[name] = np.zeros(shape, dtype)
        return array


@dataclass(frozen=True)
class Grid:
    """Where a tile's positions lie in the sign state ``[(S + 2)^2, C]`` (positions
    padded by one on every side, so an offset never leaves it; padding stays 0)."""

    side: int

    def positions(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) of the positions decoded in pass ``p``, row-major."""
        y, x = np.divmod(np.arange(self.side**2), self.side)
        keep = (y + x) % 2 == p
        return y[keep], x[keep]

    def cells(self, p: int) -> np.ndarray:
        """``[P]``: the state row of each position of pass ``p``."""
        y, x = self.positions(p)
        return (y + 1) * (self.side + 2) + x + 1

    def rows(self, p: int) -> np.ndarray:
        """``[P, 5]``: the state row of every offset of every position of pass ``p``."""
        y, x = self.positions(p)
        return np.stack([(y + 1 + dy) * (self.side + 2) + x + 1 + dx for dy, dx in OFFSETS], 1)


class CheckerboardMix:
    """Id 4: P(bit = 1) from the decoded bits around it in its own and earlier groups.

    ``tables`` is the model file's ``probability["checkerboard_mix"]``: ``groups``
    ``[C]``, ``bias`` ``[C, 2, S]`` and ``weight`` ``[C, 2, 5, C]`` integers,
    ``squash`` ``[2 ZMAX + 1]`` integers ``k`` (P = k / 65536), ``side`` ``S``.
    """

    id = 4
    name = "checkerboard-mix"

    def __init__(self, tables: dict):
        try:
            groups = np.asarray(tables["groups"], dtype=np.int64)
            bias = np.asarray(tables["bias"], dtype=np.int64)
            weight = np.asarray(tables["weight"], dtype=np.int64)
            squash = np.asarray(tables["squash"], dtype=np.int64)
            side = int(tables["side"])
        except (KeyError, TypeError, ValueError):
            raise ModelError("checkerboard-mix table is incomplete") from None
        check_tables(groups, bias, weight, squash, side)
        c = len(groups)
        self.shape = (c, side, side)
        self.grid = grid = Grid(side)
        self.order = order = np.argsort(groups, kind="stable")
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(groups))])
        # Logits are kept shifted by ``shift`` >= |any logit|, so a logit is its own
        # index into the squash table, padded with its end values (already 1 and
        # 65535 at +-ZMAX); every value stays an integer below 2^24 in float32.
        reach = int(np.abs(weight).sum((2, 3)).max())
        self.shift = ZMAX + reach
        self.p_of_z = np.pad(squash, reach, mode="edge").astype(np.float64) / (1 << 16)
        # Everything below in group order. The sign state is [n (S + 2)^2, C] (a row per
        # padded position of each tile, tile-major): a step gathers whole rows.
        self.rows = [grid.rows(p) for p in range(PASSES)]  # [P, 5]
        self.cells = [grid.cells(p) for p in range(PASSES)]
        # Per pass [P, C]: shift + bias, the logits before any bit is known.
        self.start = [
            (bias[order][:, p, grid.positions(p)[0]].T + self.shift).astype(np.float32)
            for p in range(PASSES)
        ]
        # Coding order: per group, pass 0 then pass 1, channel-major; ``blocks`` has
        # each step's (group, pass, first channel, end channel, first bit, features
        # read): the step reads channels 0 .. k / 5 - 1 at every offset, the earlier
        # groups' and, in pass 1, its own group's (whose weights are 0 but at the
        # anchors).
        self.blocks, latent, first = [], [], 0
        for g, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:], strict=True)):
            for p in range(PASSES):
                y, x = grid.positions(p)
                latent.append(((order[lo:hi, None] * side + y) * side + x).reshape(-1))
                self.blocks.append((g, p, lo, hi, first, len(OFFSETS) * (hi if p else lo)))
                first += (hi - lo) * len(y)
        self.all_latent = np.concatenate(latent)
        # Each step's weights [k, C_g]: a row per bit read (offset, then channel).
        w = weight[order][:, :, :, order].astype(np.float32)
        self.steps = {
            (g, p): np.ascontiguousarray(
                w[lo:hi, p, :, : k // len(OFFSETS)].transpose(1, 2, 0).reshape(k, hi - lo)
            )
            for g, p, lo, hi, _, k in self.blocks
        }
        self._work = _Buffers()

    def probabilities(self, bits: np.ndarray) -> np.ndarray:
        """P(bit = 1) of every bit of ``bits`` ``[n, C, S, S]``, in coding order.

        All bits are known here (encoding, fitting); each step's logits come from the
        same code as the decoder's, on the whole tile's signs at once.
        """
        return self._probabilities(bits).copy()

    def _logits(self, bits: np.ndarray) -> np.ndarray:
        n, c, side, _ = bits.shape
        state = self._work.get("state", (n * (side + 2) ** 2, c))
        sign_state(bits, self.order, out=state)
        z = self._work.get("logits", (n, self.all_latent.size), np.intp)
        for g, p, lo, hi, first, k in self.blocks:
            block = z[:, first : first + (hi - lo) * len(self.cells[p])]
            self._step(state, n, g, p, lo, hi, k, block.reshape(n, hi - lo, -1))
        return z

    def _step(self, state, n: int, g: int, p: int, lo: int, hi: int, k: int, out) -> None:
        """Step (g, p)'s shifted logits for ``n`` tiles into ``out`` ``[n, C_g, P]``,
        from the bits it may read in ``state``: exact integers, whatever else the
        state holds where the step's weights are 0."""
        count = len(self.cells[p])
        logit = self._work.get(f"step{g}.{p}", (n * count, hi - lo))
        start = self._tiled(n, p)[:, lo:hi]
        if k:
            rows = self._positions(n, "rows", p)
            seen = self._work.get(f"seen{g}.{p}", (*rows.shape, k // len(OFFSETS)))
            np.take(state[:, : seen.shape[-1]], rows, axis=0, out=seen, mode="clip")
            np.matmul(seen.reshape(len(logit), k), self.steps[g, p], out=logit)
            logit += start
        else:
            logit[...] = start
        np.copyto(out, logit.reshape(n, count, hi - lo).transpose(0, 2, 1), casting="unsafe")

    def _positions(self, n: int, kind: str, p: int) -> np.ndarray:
        """``rows`` ``[n P, 5]`` or ``cells`` ``[n P]`` of pass ``p`` for ``n`` tiles
        side by side in a sign state ``[n (S + 2)^2, C]``."""
        key = f"{kind}{p}.{n}"
        index = self._work.arrays.get(key)
        if index is None:
            first_row = np.arange(n) * (self.shape[1] + 2) ** 2  # of each tile
            if kind == "rows":
                index = (self.rows[p][None] + first_row[:, None, None]).reshape(-1, len(OFFSETS))
            else:
                index = (self.cells[p][None] + first_row[:, None]).reshape(-1)
            self._work.arrays[key] = index
        return index

    def _tiled(self, n: int, p: int) -> np.ndarray:
        """``start`` of pass ``p`` for ``n`` tiles side by side: ``[n P, C]``."""
        key = f"start{p}.{n}"
        tiled = self._work.arrays.get(key)
        if tiled is None:
            tiled = self._work.arrays[key] = np.tile(self.start[p], (n, 1))
        return tiled

    def _probabilities(self, bits: np.ndarray) -> np.ndarray:
        z = self._logits(bits)
        out = self._work.get("p", z.shape, np.float64)
        return np.take(self.p_of_z, z, out=out, mode="clip")

    def encode(self, bits: np.ndarray) -> tuple[int, bytes]:
        return self.encode_many(bits[None])[0]

    def encode_many(self, bits: np.ndarray) -> list[tuple[int, bytes]]:
        """Tiles ``[n, C, S, S]`` -> (coding, payload) each; probabilities of all at once."""
        from .entropy import range_or_raw

        if bits.shape[1:] != self.shape:
            raise ValueError(f"bits of shape {bits.shape[1:]}, table of shape {self.shape}")
        p = self._probabilities(bits)
        symbols = bits.reshape(len(bits), -1)[:, self.all_latent]
        return [range_or_raw(tile, s, q) for tile, s, q in zip(bits, symbols, p, strict=True)]

    def decode(self, coding: int, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return self.decode_many([(coding, payload)], shape)[0]

    def decode_many(self, chunks: list[tuple[int, bytes]], shape: tuple[int, ...]) -> np.ndarray:
        """(coding, payload) of several tiles -> their bits ``[n, C, S, S]``.

        The range-coded tiles are decoded side by side, step by step: each step's
        probabilities for all of them come from one set of array operations, so the
        per-step cost of the numpy calls is shared (a file decodes 8 tiles at a time).
        """
        from .entropy import RAW, range_decoder, unpack

        if shape != self.shape:
            raise FormatError(f"latent shape {shape} does not match the table {self.shape}")
        out = np.zeros((len(chunks), *shape), np.uint8)
        coded = []
        for i, (coding, payload) in enumerate(chunks):
            if coding == RAW:
                out[i] = unpack(payload, shape)
            else:
                coded.append(i)
        if coded:
            with contextlib.ExitStack() as stack:
                decoders = [stack.enter_context(range_decoder(*chunks[i])) for i in coded]
                out[coded] = self._decode_steps(decoders)
        return out

    def _decode_steps(self, decoders: list) -> np.ndarray:
        m, (c, side, _) = len(decoders), self.shape
        work = self._work
        # The sign state [m (S + 2)^2, C]: a step reads only bits decoded before it,
        # or, where its weights are 0, whatever an earlier call left (+-1 or 0).
        state = work.get("decoded", (m * (side + 2) ** 2, c))
        decoded = work.get("bits", (m, c * side * side), np.int32)  # coding order
        for g, p, lo, hi, first, k in self.blocks:
            count = len(self.cells[p])
            index = work.get(f"index{g}.{p}", (m, hi - lo, count), np.intp)
            self._step(state, m, g, p, lo, hi, k, index)
            prob = work.get(f"prob{g}.{p}", (m, index[0].size), np.float64)
            np.take(self.p_of_z, index.reshape(m, -1), out=prob, mode="clip")
            bits = decoded[:, first : first + prob.shape[1]]
            for i, ((decoder, bernoulli), q) in enumerate(zip(decoders, prob, strict=True)):
                bits[i] = decoder.decode(bernoulli, q)
            signs = np.take(SIGN, bits.reshape(m, hi - lo, count).transpose(0, 2, 1))
            state[self._positions(m, "cells", p), lo:hi] = signs.reshape(m * count, -1)
        out = np.empty((m, c * side * side), np.uint8)
        out[:, self.all_latent] = decoded
        return out.reshape(m, c, side, side)


def sign_state(bits: np.ndarray, order: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The sign state ``[n, (S + 2)^2, C]`` (channels in ``order``) of known ``bits``,
    written into ``out`` (any shape of that size, padding 0) where given."""
    n, c, h, w = bits.shape
    state = np.zeros((n, h + 2, w + 2, c), np.float32) if out is None else out
    inner = state.reshape(n, h + 2, w + 2, c)[:, 1:-1, 1:-1]
    np.take(SIGN, bits[:, order].transpose(0, 2, 3, 1), out=inner, mode="clip")
    return state.reshape(n, -1, c)


def check_tables(
    groups: np.ndarray, bias: np.ndarray, weight: np.ndarray, squash: np.ndarray, side: int
) -> None:
    c = len(groups)
    if (
        groups.ndim != 1
        or side < 1
        or bias.shape != (c, PASSES, side)
        or weight.shape != (c, PASSES, len(OFFSETS), c)
        or squash.shape != (2 * ZMAX + 1,)
    ):
        raise ModelError("checkerboard-mix table has the wrong shape")
    if groups.min() < 0 or groups.max() >= MAX_GROUPS:
        raise ModelError(f"checkerboard-mix groups must be 0..{MAX_GROUPS - 1}")
    if not np.isin(np.arange(groups.max() + 1), groups).all():
        raise ModelError("checkerboard-mix groups must each have a channel")
    if np.abs(bias).max() > ZMAX or np.abs(weight).max() >= WEIGHT_LIMIT:
        raise ModelError("checkerboard-mix logits are out of range")
    if np.abs(weight).sum((2, 3)).max() > REACH_LIMIT:
        raise ModelError("checkerboard-mix weights are too large to sum exactly")
    if weight[~allowed(groups)].any():
        raise ModelError("checkerboard-mix weights use bits decoded after their own")
    if squash.min() < 1 or squash.max() >= 1 << 16 or (np.diff(squash) < 0).any():
        raise ModelError("checkerboard-mix squash table must rise within 1..65535")


def squash_table() -> torch.Tensor:
    """k = round(65536 sigmoid(z / SCALE)) for every integer logit, within 1..65535.

    Computed once when a table is fitted and stored with it, so no machine's exp()
    ever decides a probability at decode time.
    """
    z = torch.arange(-ZMAX, ZMAX + 1, dtype=torch.float64) / SCALE
    return (torch.sigmoid(z) * (1 << 16)).round().clamp(1, (1 << 16) - 1).to(torch.int32)


def choose_groups(bits: np.ndarray, count: int) -> np.ndarray:
    """Channel groups from training bits ``[n, C, H, W]``: equal groups, the channels
    that tell the most about the others (summed pairwise information at the same
    position) first, so later groups are predicted from the most informative bits."""
    c = bits.shape[1]
    x = bits.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)
    info = _entropy(x.mean(0))[:, None] - _conditional_entropy(x)  # I(i; j)
    np.fill_diagonal(info, 0)
    groups = np.empty(c, dtype=np.int64)
    groups[np.argsort(-info.sum(0), kind="stable")] = np.arange(c) * count // c
    return groups


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _conditional_entropy(x: np.ndarray) -> np.ndarray:
    """``[i, j]``: H(bit i | bit j) over rows of ``x`` ``[N, C]``."""
    p1 = x.mean(0)
    n11 = x.T @ x / len(x)
    joint = np.stack([n11, p1[:, None] - n11, p1[None, :] - n11, 1 - p1[:, None] - p1[None] + n11])
    joint = np.clip(joint, 1e-12, 1)
    return -(joint * np.log2(joint)).sum(0) - _entropy(p1)[None, :]


def fit(bits: np.ndarray, groups: int = GROUPS, iterations: int = 100) -> dict:
    """Checkerboard-mix tables fitted on training bits ``[n, C, S, S]`` (uint8).

    A logistic regression per channel and pass (a bias per mel row plus linear
    weights on the signs of the bits decoded before it), fitted by L-BFGS on the mean
    cross-entropy with a small L2 penalty, then rounded to integers.
    """
    n, c, h, w = bits.shape
    if h != w:
        raise ValueError("latents must be square")
    group = choose_groups(bits, min(groups, c))
    order = np.argsort(group, kind="stable")
    grid = Grid(h)
    state = sign_state(bits, order)
    mask = torch.from_numpy(allowed(group)[order][:, :, :, order]).float()  # group order
    features, targets, rows = [], [], []
    for p in range(PASSES):
        y, x = grid.positions(p)
        features.append(torch.from_numpy(state[:, grid.rows(p)].reshape(n * len(y), -1)))
        target = bits[:, order][:, :, y, x].transpose(0, 2, 1).reshape(n * len(y), c)
        targets.append(torch.from_numpy(target.astype(np.float32)))
        rows.append(torch.from_numpy(np.tile(y, n)))
    bias = torch.zeros(c, PASSES, h, requires_grad=True)
    weight = torch.zeros(PASSES, len(OFFSETS) * c, c, requires_grad=True)
    masks = mask.permute(1, 2, 3, 0).reshape(PASSES, -1, c)  # [p, 5 C (offset, c'), c]
    opt = torch.optim.LBFGS([bias, weight], max_iter=iterations, line_search_fn="strong_wolfe")

    def loss_fn():
        opt.zero_grad()
        loss = sum(
            torch.nn.functional.binary_cross_entropy_with_logits(
                features[p] @ (weight[p] * masks[p]) + bias[:, p, rows[p]].T,
                targets[p],
                reduction="sum",
            )
            for p in range(PASSES)
        ) / (n * h * w * c)
        loss = loss + PENALTY * (bias.square().sum() + weight.square().sum())
        loss.backward()
        return loss

    opt.step(loss_fn)
    inverse = torch.from_numpy(np.argsort(order))  # back to natural channel order
    w_group = (weight.detach() * masks).reshape(PASSES, len(OFFSETS), c, c).permute(3, 0, 1, 2)
    natural = w_group[inverse][:, :, :, inverse]
    natural = (natural * SCALE).round().clamp(-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT - 1)
    reach = natural.abs().sum((2, 3), keepdim=True)
    # Never met in practice (a reach of 1,024 nats); kept so a fit is always loadable.
    natural = (natural * (REACH_LIMIT / reach.clamp(min=REACH_LIMIT))).trunc()
    return {
        "groups": torch.from_numpy(group).to(torch.uint8),
        "bias": (bias.detach()[inverse] * SCALE).round().clamp(-ZMAX, ZMAX).to(torch.int16),
        "weight": natural.to(torch.int16),
        "squash": squash_table(),
        "side": h,
    }


def cross_entropy_bits(tables: dict | CheckerboardMix, bits: np.ndarray) -> float:
    """Mean ideal code length per tile of ``bits`` ``[n, C, S, S]`` under ``tables``."""
    model = tables if isinstance(tables, CheckerboardMix) else CheckerboardMix(tables)
    p = np.concatenate([model.probabilities(bits[i : i + 8]) for i in range(0, len(bits), 8)])
    symbols = bits.reshape(len(bits), -1)[:, model.all_latent]
    return float(-np.where(symbols == 1, np.log2(p), np.log2(1 - p)).sum() / len(bits))
