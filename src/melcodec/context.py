"""Context probability model for the latent bits (id 3, context-mix).

A tile's latent ``[C, 16, 16]`` (channel, mel row, time column) is split into
channel groups ``0 .. G-1``. Step ``t`` decodes, for every group ``g``, the bits of
its channels on the diagonal ``y + x = t - 2g``: group 0 leads and each later group
follows two diagonals behind, in ``31 + 2 (G - 1) + 1`` steps. A bit's logit is

    z = neighbour[c, k] + sum over (o, c') of weight[c, o, c'] * s(c', p + o)

- ``k``: the bit's own channel at the six neighbours
  ``(y, x-1) (y, x-2) (y-1, x) (y-1, x-1) (y-2, x) (y-1, x-2)``, each 0, 1 or
  "outside the tile", as a base-3 number (729 values; all on earlier diagonals);
- ``s(c', q)``: +1 or -1 for the bit of channel ``c'`` at position ``q``, 0 outside
  the tile, for the offsets ``o`` of :data:`OFFSETS` (the position itself and its
  four nearest neighbours); a weight may be non-zero only where ``c'`` is in an
  earlier group, whose bits at those positions are decoded (its diagonal ``d + 1`` at
  the latest, two steps behind) before the bit's own step.

Then ``P(bit = 1) = squash[clip(z, -ZMAX, ZMAX) + ZMAX] / 65536``, from a table of
integers ``1..65535`` stored in the model file. ``neighbour`` and ``weight`` are
integers (the fitted logits times :data:`SCALE`), and the sum is a float32 matrix
product of small integers whose partial sums all stay below 2^24 (:data:`REACH_LIMIT`),
so it is exact whatever the order of its additions. Nothing but integers lies
between the decoded bits and the probability constriction sees: a file decodes to
the same latents on any machine, BLAS and thread count. Encoding codes a whole tile
in one call; decoding is one call per step and tile, with the tiles of a file
decoded side by side. ``docs/probability.md`` has the measurements behind the
choices (``bench/contexts.py``) and their cost.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .errors import FormatError, ModelError

NEIGHBOURS = ((0, -1), (0, -2), (-1, 0), (-1, -1), (-2, 0), (-1, -2))
OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))
OUTSIDE = 2
NEIGHBOUR_CONTEXTS = 3 ** len(NEIGHBOURS)
PAD = 2  # rows and columns of "outside" above and left of the tile (own channel)
LAG = 2  # diagonals each group follows the one before it
SCALE = 256  # integer logit units per nat
ZMAX = 16 * SCALE  # logits clipped to +-16 nats: P within 1e-7 of 0 or 1
WEIGHT_LIMIT = 1 << 15  # int16 weights
# A channel's weights sum in absolute value to at most this: every partial sum of a
# (shifted) logit is then an integer that float32 holds exactly (< 2^24), in any
# order of addition, and the padded squash table stays small.
REACH_LIMIT = 1 << 18
MAX_GROUPS = 16
TABLE_KEY = "context_mix"
_POWERS = np.array([3 ** (len(NEIGHBOURS) - 1 - j) for j in range(len(NEIGHBOURS))], np.int32)
SIGN = np.array([-1, 1], np.float32)


@dataclass(frozen=True)
class Step:
    """What one decoding step decodes, and where each bit's context lies.

    A step's bits are group 0's first (if any), then each later group's, channel-major
    within a group; ``parts`` has, per later group, its index, the sign-state rows of
    every offset of its positions ``[P, len(OFFSETS)]`` and its first bit.
    """

    cells: np.ndarray  # flat index into the padded own-channel state, per bit
    context_cells: np.ndarray  # [6, n] flat indexes of each bit's neighbours
    rows: np.ndarray  # [n] channel * 729
    sign_cells: np.ndarray  # [n] flat index into the sign state
    parts: list


@dataclass(frozen=True)
class Schedule:
    """The decoding steps for latents of ``shape`` with this channel grouping.

    The sign state is ``[(H + 2) * (W + 2), C]``: positions padded by one on every
    side, channels in group order (``order``), so a group's earlier channels are the
    first columns. ``all_latent``
    concatenates every step's bits (flat ``[C, H, W]`` index): the order in which the
    encoder codes a tile.
    """

    shape: tuple[int, int, int]
    groups: np.ndarray  # [C] group of each channel
    order: np.ndarray  # channels sorted by group
    steps: list[Step]
    all_latent: np.ndarray

    @cached_property
    def inside(self) -> np.ndarray:
        """Flat padded own-channel index of every latent bit, in latent order."""
        c, h, w = self.shape
        ch, y, x = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        return ((ch * (PAD + h) + PAD + y) * (PAD + w) + PAD + x).reshape(-1)

    @cached_property
    def channel_rows(self) -> np.ndarray:
        """``[C, 1, 1]``: each channel's first neighbour-table row."""
        return (np.arange(self.shape[0], dtype=np.int32) * NEIGHBOUR_CONTEXTS)[:, None, None]

    @cached_property
    def tile_rows(self) -> np.ndarray:
        """Sign-state rows of every offset of every position, position-major."""
        _, h, w = self.shape
        ys, xs = np.divmod(np.arange(h * w), w)
        return _position_rows(h, w, ys, xs).reshape(-1)

    @cached_property
    def earlier(self) -> np.ndarray:
        """Per group, how many channels come before it in ``order``."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.groups))])


def _position_rows(h: int, w: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sign-state rows of each offset of each position: ``[P, len(OFFSETS)]``."""
    return np.stack([(ys + 1 + dy) * (w + 2) + xs + 1 + dx for dy, dx in OFFSETS], 1)


def make_schedule(shape: tuple[int, int, int], groups: np.ndarray) -> Schedule:
    """The decoding schedule for latents of ``shape`` with this channel grouping."""
    c_count, h, w = shape
    ph, pw = PAD + h, PAD + w
    order = np.argsort(groups, kind="stable")
    column = np.empty(c_count, np.int64)
    column[order] = np.arange(c_count)
    count = int(groups.max()) + 1
    steps, latent = [], []
    for t in range(h + w - 1 + LAG * (count - 1)):
        cc_all, yy_all, xx_all, parts, done = [], [], [], [], 0
        for g in range(count):
            ys = np.arange(h)
            xs = t - LAG * g - ys
            ok = (xs >= 0) & (xs < w)
            ys, xs = ys[ok], xs[ok]
            if not len(ys):
                continue
            channels = order[groups[order] == g]
            cc_all.append(np.repeat(channels, len(ys)))
            yy_all.append(np.tile(ys, len(channels)))
            xx_all.append(np.tile(xs, len(channels)))
            if g:
                parts.append((g, _position_rows(h, w, ys, xs), done))
            done += len(channels) * len(ys)
        cc, yy, xx = (np.concatenate(a) for a in (cc_all, yy_all, xx_all))

        def padded(ch, y, x):
            return (ch * ph + PAD + y) * pw + PAD + x

        ctx = np.stack([padded(cc, yy + dy, xx + dx) for dy, dx in NEIGHBOURS])
        signs = ((yy + 1) * (w + 2) + xx + 1) * c_count + column[cc]
        rows = (cc * NEIGHBOUR_CONTEXTS).astype(np.int32)
        steps.append(Step(padded(cc, yy, xx), ctx, rows, signs, parts))
        latent.append((cc * h + yy) * w + xx)
    return Schedule(shape, groups, order, steps, np.concatenate(latent))


def neighbour_index(bits: np.ndarray) -> np.ndarray:
    """Each bit's six-neighbour context ``k`` (base 3, 0..728) ``[n, C, H, W]``."""
    n, c, h, w = bits.shape
    padded = np.full((n, c, PAD + h, PAD + w), OUTSIDE, dtype=np.int32)
    padded[:, :, PAD:, PAD:] = bits
    index = np.zeros((n, c, h, w), np.int32)
    for power, (dy, dx) in zip(_POWERS, NEIGHBOURS, strict=True):
        index += power * padded[:, :, PAD + dy : PAD + dy + h, PAD + dx : PAD + dx + w]
    return index


def sign_features(bits: np.ndarray, schedule: Schedule, k: int) -> np.ndarray:
    """The +-1 bits (0 outside) of the first ``k`` channels in group order at every
    offset of every position: ``[n, H * W, len(OFFSETS) * k]``, offset-major."""
    n, c, h, w = bits.shape
    signs = np.zeros((n, h + 2, w + 2, c), np.float32)
    signs[:, 1:-1, 1:-1] = SIGN[bits.transpose(0, 2, 3, 1)[..., schedule.order]]
    return signs.reshape(n, -1, c)[:, schedule.tile_rows, :k].reshape(n, h * w, -1)


class ContextMix:
    """Id 3: P(bit = 1) from the bit's neighbours in its channel and earlier groups.

    ``tables`` is the model file's ``probability["context_mix"]``: ``groups`` ``[C]``,
    ``neighbour`` ``[C, 729]`` and ``weight`` ``[C, len(OFFSETS), C]`` integers,
    ``squash`` ``[2 ZMAX + 1]`` integers ``k`` (P = k / 65536), ``side``.
    """

    id = 3
    name = "context-mix"

    def __init__(self, tables: dict):
        try:
            groups = np.asarray(tables["groups"], dtype=np.int64)
            neighbour = np.asarray(tables["neighbour"], dtype=np.int64)
            weight = np.asarray(tables["weight"], dtype=np.int64)
            squash = np.asarray(tables["squash"], dtype=np.int64)
            side = int(tables["side"])
        except (KeyError, TypeError, ValueError):
            raise ModelError("context-mix table is incomplete") from None
        check_tables(groups, neighbour, weight, squash)
        c = len(groups)
        self.shape = (c, side, side)
        self.schedule = s = make_schedule(self.shape, groups)
        # Logits are kept shifted by ``shift`` >= |any logit|, so a logit is its own
        # index into the squash table, padded with its end values (already 1 and
        # 65535 at +-ZMAX); every value stays an integer below 2^24 in float32.
        reach = int(np.abs(weight).reshape(c, -1).sum(1).max())
        self.shift = ZMAX + reach
        self.neighbour = (neighbour.reshape(-1) + self.shift).astype(np.float32)
        self.p_of_z = np.pad(squash, reach, mode="edge").astype(np.float64) / (1 << 16)
        # Per later group, its weights on the earlier groups' bits, [C_g, 5 k]:
        # columns offset-major, then channel in group order.
        self.weights = {}
        for g in range(1, int(groups.max()) + 1):
            own = s.order[s.earlier[g] : s.earlier[g + 1]]
            w = weight[own][:, :, s.order[: s.earlier[g]]].reshape(len(own), -1)
            self.weights[g] = np.ascontiguousarray(w, dtype=np.float32)

    def probabilities(self, bits: np.ndarray) -> np.ndarray:
        """P(bit = 1) of every bit of ``bits`` ``[n, C, H, W]``, in coding order.

        All bits are known here (encoding, fitting), so the whole tile's features come
        from shifted views at once; the decoder gathers the same values step by step.
        """
        n, c, h, w = bits.shape
        s = self.schedule
        z = self.neighbour[neighbour_index(bits) + s.channel_rows]
        if self.weights:
            k = s.earlier[-2]  # every channel a later group may read
            features = sign_features(bits, s, k).reshape(n, h * w, len(OFFSETS), k)
        for g, weights in self.weights.items():
            own = s.order[s.earlier[g] : s.earlier[g + 1]]
            mine = features[..., : s.earlier[g]].reshape(n, h * w, -1)
            z[:, own] += (weights @ mine.transpose(0, 2, 1)).reshape(n, -1, h, w)
        return self.p_of_z[z.astype(np.intp)].reshape(n, -1)[:, s.all_latent]

    def encode(self, bits: np.ndarray) -> tuple[int, bytes]:
        return self.encode_many(bits[None])[0]

    def encode_many(self, bits: np.ndarray) -> list[tuple[int, bytes]]:
        """Tiles ``[n, C, H, W]`` -> (coding, payload) each; probabilities of all at once."""
        from .entropy import range_or_raw

        if bits.shape[1:] != self.shape:
            raise ValueError(f"bits of shape {bits.shape[1:]}, table of shape {self.shape}")
        p = self.probabilities(bits)
        symbols = bits.reshape(len(bits), -1)[:, self.schedule.all_latent]
        return [range_or_raw(tile, s, q) for tile, s, q in zip(bits, symbols, p, strict=True)]

    def decode(self, coding: int, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return self.decode_many([(coding, payload)], shape)[0]

    def decode_many(self, chunks: list[tuple[int, bytes]], shape: tuple[int, ...]) -> np.ndarray:
        """(coding, payload) of several tiles -> their bits ``[n, C, H, W]``.

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
        if not coded:
            return out
        s, m = self.schedule, len(coded)
        c, h, w = shape
        own = np.full((m, c * (PAD + h) * (PAD + w)), OUTSIDE, dtype=np.int32)
        own[:, s.inside] = 0
        signs = np.zeros((m, (h + 2) * (w + 2), c), np.float32)
        flat_signs = signs.reshape(m, -1)
        with contextlib.ExitStack() as stack:
            decoders = [stack.enter_context(range_decoder(*chunks[i])) for i in coded]
            for step in s.steps:
                z = self.neighbour[step.rows + _POWERS @ own[:, step.context_cells]]
                for g, rows, first in step.parts:
                    weights = self.weights[g]
                    features = signs[:, rows, : s.earlier[g]].reshape(m, len(rows), -1)
                    linear = weights @ features.transpose(0, 2, 1)
                    z[:, first : first + linear[0].size] += linear.reshape(m, -1)
                p = self.p_of_z[z.astype(np.intp)]
                bits = np.stack([d.decode(b, q) for (d, b), q in zip(decoders, p, strict=True)])
                own[:, step.cells] = bits
                flat_signs[:, step.sign_cells] = SIGN[bits]
        out[coded] = own[:, s.inside].reshape(m, *shape)
        return out


def check_tables(
    groups: np.ndarray, neighbour: np.ndarray, weight: np.ndarray, squash: np.ndarray
) -> None:
    c = len(groups)
    if (
        groups.ndim != 1
        or neighbour.shape != (c, NEIGHBOUR_CONTEXTS)
        or weight.shape != (c, len(OFFSETS), c)
        or squash.shape != (2 * ZMAX + 1,)
    ):
        raise ModelError("context-mix table has the wrong shape")
    if groups.min() < 0 or groups.max() >= MAX_GROUPS:
        raise ModelError(f"context-mix groups must be 0..{MAX_GROUPS - 1}")
    if not np.isin(np.arange(groups.max() + 1), groups).all():
        raise ModelError("context-mix groups must each have a channel")
    if np.abs(neighbour).max() > ZMAX or np.abs(weight).max() >= WEIGHT_LIMIT:
        raise ModelError("context-mix logits are out of range")
    if np.abs(weight).reshape(c, -1).sum(1).max() > REACH_LIMIT:
        raise ModelError("context-mix weights are too large to sum exactly")
    if np.abs(weight).sum(1)[groups[:, None] <= groups[None, :]].any():
        raise ModelError("context-mix weights use bits decoded after their own")
    if squash.min() < 1 or squash.max() >= 1 << 16 or (np.diff(squash) < 0).any():
        raise ModelError("context-mix squash table must rise within 1..65535")


def squash_table() -> torch.Tensor:
    """k = round(65536 sigmoid(z / SCALE)) for every integer logit, within 1..65535.

    Computed once when a table is fitted and stored with it, so no machine's exp()
    ever decides a probability at decode time.
    """
    z = torch.arange(-ZMAX, ZMAX + 1, dtype=torch.float64) / SCALE
    return (torch.sigmoid(z) * (1 << 16)).round().clamp(1, (1 << 16) - 1).to(torch.int32)


def choose_groups(bits: np.ndarray, count: int = 4) -> np.ndarray:
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


def fit(bits: np.ndarray, groups: int = 4, iterations: int = 100) -> dict:
    """Context-mix tables fitted on training bits ``[n, C, H, W]`` (uint8).

    A logistic regression per channel (a logit per neighbour context plus linear
    weights on earlier groups' bits), fitted by L-BFGS on the mean cross-entropy with
    a small L2 penalty, then rounded to integer logits.
    """
    n, c, h, w = bits.shape
    if h != w:
        raise ValueError("latents must be square")
    group = choose_groups(bits, min(groups, c))
    order = np.argsort(group, kind="stable")
    index = torch.from_numpy(neighbour_index(bits)).long().permute(1, 0, 2, 3).reshape(c, -1)
    schedule = make_schedule((c, h, w), group)
    features = torch.from_numpy(sign_features(bits, schedule, c).reshape(n * h * w, -1))
    target = torch.from_numpy(bits).permute(1, 0, 2, 3).reshape(c, -1).float()
    g = torch.from_numpy(group)
    mask = (g[order][None, :] < g[:, None]).float().repeat(1, len(OFFSETS))  # [C, 5C]
    logits = torch.zeros(c, NEIGHBOUR_CONTEXTS, requires_grad=True)
    weight = torch.zeros(c, len(OFFSETS) * c, requires_grad=True)
    rows = torch.arange(c)[:, None]
    opt = torch.optim.LBFGS([logits, weight], max_iter=iterations, line_search_fn="strong_wolfe")

    def loss_fn():
        opt.zero_grad()
        z = logits[rows, index] + (features @ (weight * mask).T).T
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target)
        loss = loss + 1e-6 * (logits.square().sum() + weight.square().sum())
        loss.backward()
        return loss

    opt.step(loss_fn)
    # Back to natural channel order: weight[c, offset, c'].
    w_ordered = (weight.detach() * mask).reshape(c, len(OFFSETS), c)
    natural = torch.zeros_like(w_ordered)
    natural[:, :, torch.from_numpy(order)] = w_ordered
    natural = (natural * SCALE).round().clamp(-(WEIGHT_LIMIT - 1), WEIGHT_LIMIT - 1)
    reach = natural.abs().reshape(c, -1).sum(1, keepdim=True)
    # Never met in practice (a reach of 1,024 nats); kept so a fit is always loadable.
    natural = (natural * (REACH_LIMIT / reach.clamp(min=REACH_LIMIT)).unsqueeze(-1)).trunc()
    return {
        "groups": torch.from_numpy(group).to(torch.uint8),
        "neighbour": (logits.detach() * SCALE).round().clamp(-ZMAX, ZMAX).to(torch.int16),
        "weight": natural.to(torch.int16),
        "squash": squash_table(),
        "side": h,
    }


def cross_entropy_bits(tables: dict | ContextMix, bits: np.ndarray) -> float:
    """Mean ideal code length per tile of ``bits`` ``[n, C, H, W]`` under ``tables``."""
    model = tables if isinstance(tables, ContextMix) else ContextMix(tables)
    p = np.concatenate([model.probabilities(bits[i : i + 64]) for i in range(0, len(bits), 64)])
    symbols = bits.reshape(len(bits), -1)[:, model.schedule.all_latent]
    return float(-np.where(symbols == 1, np.log2(p), np.log2(1 - p)).sum() / len(bits))
