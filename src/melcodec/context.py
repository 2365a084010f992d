"""Context probability model for the latent bits: each bit's probability from decoded bits.

A tile's latent ``[C, 16, 16]`` (channel, mel row, time column) is decoded in 32
steps. Channels are split into two groups. Step ``s`` decodes the group-0 bits on
the diagonal ``y + x = s`` and the group-1 bits on the diagonal ``s - 1``. A bit's
context is, in its own channel, the six neighbours

    (y, x-1)  (y, x-2)  (y-1, x)  (y-1, x-1)  (y-2, x)  (y-1, x-2)

each 0, 1 or "outside the tile" (3^6 = 729 values, all on earlier diagonals), and
for a group-1 channel the bits of its two parent channels of group 0 at the same
position (decoded one step earlier), x4. ``bench/contexts.py`` measures
these contexts against others.

Everything between the decoded bits and the coder is integer: contexts index an
integer table of ``k / 65536`` (``1 <= k <= 65535``), a float64 that is exact, so
a file decodes to the same latents on any machine. Encoding codes the whole tile
in one call, in decoding order; decoding is one call per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .errors import FormatError, ModelError

NEIGHBOURS = ((0, -1), (0, -2), (-1, 0), (-1, -1), (-2, 0), (-1, -2))
OUTSIDE = 2
NEIGHBOUR_CONTEXTS = 3 ** len(NEIGHBOURS)
PARENTS = 2
CONTEXTS = NEIGHBOUR_CONTEXTS << PARENTS
PAD = 2  # rows and columns of "outside" above and left of the tile
TABLE_KEY = "context_bernoulli"


@dataclass(frozen=True)
class Schedule:
    """For every step, the positions it decodes and where their context bits are.

    Indexes are flat into the padded tile ``[C, PAD + H, PAD + W]`` plus one cell
    that is always 0 (the parents of group-0 channels). ``order`` concatenates every
    step's positions: the order in which the encoder codes a tile.
    """

    shape: tuple[int, int, int]
    cells: list[np.ndarray]  # per step: flat padded index of each position decoded
    context_cells: list[np.ndarray]  # per step: [6 + PARENTS, n] flat padded indexes
    table_rows: list[np.ndarray]  # per step: channel * CONTEXTS of each position
    all_latent: np.ndarray  # flat [C, H, W] index of every bit, in coding order
    channel_rows: np.ndarray  # [C, 1, 1]: channel * CONTEXTS
    second_group: np.ndarray  # [C] bool: channels of group 1
    parents: np.ndarray  # [C, PARENTS]

    @cached_property
    def inside(self) -> np.ndarray:
        """Flat padded index of every latent bit, in latent order."""
        c, h, w = self.shape
        ch, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        return ((ch * (PAD + h) + PAD + y) * (PAD + w) + PAD + x).reshape(-1)

    @property
    def padded_size(self) -> int:
        c, h, w = self.shape
        return c * (PAD + h) * (PAD + w) + 1


def make_schedule(shape: tuple[int, int, int], group: np.ndarray, parents: np.ndarray) -> Schedule:
    """The decoding schedule for latents of ``shape`` with this channel split and parents."""
    c_count, h, w = shape
    ph, pw = PAD + h, PAD + w
    zero = c_count * ph * pw  # the always-0 cell
    cells, latent, context_cells, rows = [], [], [], []
    for step in range(h + w):
        parts = []
        for g, diagonal in ((0, step), (1, step - 1)):
            channels = np.flatnonzero(group == g)
            ys = np.arange(h)
            xs = diagonal - ys
            ok = (xs >= 0) & (xs < w)
            ys, xs = ys[ok], xs[ok]
            if not len(channels) or not len(ys):
                continue
            cc = np.repeat(channels, len(ys))
            yy = np.tile(ys, len(channels))
            xx = np.tile(xs, len(channels))
            parts.append((cc, yy, xx, g))
        if not parts:
            continue
        cc = np.concatenate([p[0] for p in parts])
        yy = np.concatenate([p[1] for p in parts])
        xx = np.concatenate([p[2] for p in parts])
        grp = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])

        def padded(ch, y, x):
            return (ch * ph + PAD + y) * pw + PAD + x

        ctx = [padded(cc, yy + dy, xx + dx) for dy, dx in NEIGHBOURS]
        for j in range(PARENTS):
            par = parents[cc, j]
            ctx.append(np.where(grp == 1, padded(par, yy, xx), zero))
        cells.append(padded(cc, yy, xx))
        latent.append((cc * h + yy) * w + xx)
        context_cells.append(np.stack(ctx))
        rows.append((cc * CONTEXTS).astype(np.int32))
    return Schedule(
        shape,
        cells,
        context_cells,
        rows,
        np.concatenate(latent),
        (np.arange(c_count, dtype=np.int32) * CONTEXTS)[:, None, None],
        group == 1,
        parents,
    )


_WEIGHTS = np.array(
    [3 ** (len(NEIGHBOURS) - 1 - j) << PARENTS for j in range(len(NEIGHBOURS))]
    + [1 << (PARENTS - 1 - j) for j in range(PARENTS)],
    dtype=np.int32,
)


def _padded_tiles(bits: np.ndarray) -> np.ndarray:
    """Bits ``[n, C, H, W]`` -> ``[n, padded_size]`` with "outside" around and the 0 cell."""
    n, c, h, w = bits.shape
    out = np.full((n, c * (PAD + h) * (PAD + w) + 1), OUTSIDE, dtype=np.int32)
    out[:, -1] = 0
    out[:, :-1].reshape(n, c, PAD + h, PAD + w)[:, :, PAD:, PAD:] = bits
    return out


def contexts(schedule: Schedule, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every bit of ``bits`` ``[n, C, H, W]`` in decoding order, and its table index.

    All bits are known here (encoding, fitting), so the contexts of a whole tile come
    from shifted views at once; the decoder gathers the same cells step by step.
    """
    n, c, h, w = bits.shape
    padded = np.full((n, c, PAD + h, PAD + w), OUTSIDE, dtype=np.int32)
    padded[:, :, PAD:, PAD:] = bits
    index = np.broadcast_to(schedule.channel_rows, (n, c, h, w)).copy()
    for weight, (dy, dx) in zip(_WEIGHTS, NEIGHBOURS, strict=False):  # the parents' follow
        index += weight * padded[:, :, PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w]
    second = schedule.second_group
    inside = padded[:, :, PAD:, PAD:]
    for weight, parent in zip(_WEIGHTS[len(NEIGHBOURS) :], schedule.parents.T, strict=True):
        index[:, second] += weight * inside[:, parent[second]]
    flat_bits = bits.reshape(n, -1)[:, schedule.all_latent]
    return flat_bits, index.reshape(n, -1)[:, schedule.all_latent]


class ContextBernoulli:
    """Id 2: P(bit = 1) from an integer table indexed by channel and context.

    ``tables`` is the model file's ``probability["context_bernoulli"]``: ``table``
    ``[C, CONTEXTS]`` integers ``k`` (P = k / 65536), ``group`` ``[C]`` (0 or 1),
    ``parents`` ``[C, 2]`` (group-0 channels; unused for group 0).
    """

    id = 2
    name = "context-bernoulli"

    def __init__(self, tables: dict):
        try:
            table = np.asarray(tables["table"], dtype=np.int64)
            group = np.asarray(tables["group"], dtype=np.int64)
            parents = np.asarray(tables["parents"], dtype=np.int64)
            side = int(tables["side"])
        except (KeyError, TypeError, ValueError):
            raise ModelError("context-bernoulli table is incomplete") from None
        check_tables(table, group, parents)
        self.shape = (table.shape[0], side, side)
        self.p_one = table.reshape(-1).astype(np.float64) / (1 << 16)
        self.schedule = make_schedule(self.shape, group, parents)

    def encode(self, bits: np.ndarray) -> tuple[int, bytes]:
        from .entropy import range_or_raw

        if bits.shape != self.shape:
            raise ValueError(f"bits of shape {bits.shape}, table of shape {self.shape}")
        symbols, index = contexts(self.schedule, bits[None])
        return range_or_raw(bits, symbols[0], self.p_one[index[0]])

    def decode(self, coding: int, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        from .entropy import RAW, range_decoder, unpack

        if shape != self.shape:
            raise FormatError(f"latent shape {shape} does not match the table {self.shape}")
        if coding == RAW:
            return unpack(payload, shape)
        s = self.schedule
        flat = _padded_tiles(np.zeros((1, *shape), np.uint8))[0]
        with range_decoder(coding, payload) as (decoder, model):
            for cells, ctx, rows in zip(s.cells, s.context_cells, s.table_rows, strict=True):
                index = rows + np.einsum("i,ij->j", _WEIGHTS, flat[ctx])
                flat[cells] = decoder.decode(model, self.p_one[index])
        return flat[s.inside].astype(np.uint8).reshape(shape)


def check_tables(table: np.ndarray, group: np.ndarray, parents: np.ndarray) -> None:
    c = len(group)
    if table.shape != (c, CONTEXTS) or group.shape != (c,) or parents.shape != (c, PARENTS):
        raise ModelError("context-bernoulli table has the wrong shape")
    if table.min() < 1 or table.max() >= 1 << 16:
        raise ModelError("context-bernoulli table has values outside 1..65535")
    if not np.isin(group, (0, 1)).all() or not (group == 0).any():
        raise ModelError("context-bernoulli groups must be 0 or 1, with a group 0")
    if (parents < 0).any() or (parents >= c).any() or (group[parents[group == 1]] != 0).any():
        raise ModelError("context-bernoulli parents must be channels of group 0")


def choose_parents(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel split and parents from training bits ``[n, C, H, W]``.

    Group 0 is the half of the channels that tells the most about the others
    (summed pairwise information at the same position); each group-1 channel takes
    the two group-0 channels that leave it least uncertain, one at a time.
    """
    n, c, h, w = bits.shape
    x = bits.transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)
    cond = _conditional_entropy(x)  # cond[i, j] = H(i | j)
    info = _entropy(x.mean(0))[:, None] - cond  # I(i; j)
    np.fill_diagonal(info, 0)
    group = np.ones(c, dtype=np.int64)
    group[np.argsort(-info.sum(0), kind="stable")[: c // 2]] = 0
    first = np.flatnonzero(group == 0)
    parents = np.zeros((c, PARENTS), dtype=np.int64)
    for ch in np.flatnonzero(group == 1):
        best = first[np.argmin(cond[ch, first])]
        # Second parent: the one that, beside the first, leaves the least entropy.
        pair = x[:, best] * 2
        scores = [_joint_conditional(x[:, ch], pair + x[:, j]) for j in first]
        scores = np.where(first == best, np.inf, scores)
        parents[ch] = best, first[int(np.argmin(scores))]
    return group, parents


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _conditional_entropy(x: np.ndarray) -> np.ndarray:
    p1 = x.mean(0)
    n11 = x.T @ x / len(x)
    joint = np.stack([n11, p1[:, None] - n11, p1[None, :] - n11, 1 - p1[:, None] - p1[None] + n11])
    joint = np.clip(joint, 1e-12, 1)
    return -(joint * np.log2(joint)).sum(0) - _entropy(p1)[None, :]


def _joint_conditional(bit: np.ndarray, ctx: np.ndarray) -> float:
    total = np.bincount(ctx.astype(np.int64), minlength=4)
    ones = np.bincount(ctx.astype(np.int64), weights=bit, minlength=4)
    p = ones / np.maximum(total, 1)
    return float((total * _entropy(p)).sum() / len(bit))


def fit(bits: np.ndarray, batch: int = 32) -> dict:
    """Context tables fitted on training bits ``[n, C, H, W]`` (uint8), add-one smoothed."""
    from .entropy import table_from_counts

    n, c, h, w = bits.shape
    if h != w:
        raise ValueError("latents must be square")
    group, parents = choose_parents(bits)
    schedule = make_schedule((c, h, w), group, parents)
    ones = np.zeros(c * CONTEXTS, np.int64)
    total = np.zeros(c * CONTEXTS, np.int64)
    for i in range(0, n, batch):
        symbols, index = contexts(schedule, bits[i : i + batch])
        total += np.bincount(index.ravel(), minlength=c * CONTEXTS)
        ones += np.bincount(index.ravel(), weights=symbols.ravel(), minlength=c * CONTEXTS).astype(
            np.int64
        )
    ones_t, total_t = torch.from_numpy(ones), torch.from_numpy(total)
    table = table_from_counts(ones_t, total_t).reshape(c, CONTEXTS)
    return {
        "table": table,
        "group": torch.from_numpy(group).to(torch.uint8),
        "parents": torch.from_numpy(parents).to(torch.int16),
        "side": h,
    }


def cross_entropy_bits(tables: dict, bits: np.ndarray) -> float:
    """Mean ideal code length per tile of ``bits`` ``[n, C, H, W]`` under ``tables``."""
    model = ContextBernoulli(tables)
    symbols, index = contexts(model.schedule, bits)
    p = model.p_one[index]
    return float(-np.where(symbols == 1, np.log2(p), np.log2(1 - p)).sum() / len(bits))
