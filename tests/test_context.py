"""The context probability model (id 4, checkerboard-mix): its definition, coding
order, exactness, fitting, and model files."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synth

import melcodec
from melcodec import Codec, context, entropy, frontend, load_model, tables, zoo
from melcodec.errors import FormatError, ModelError

SHAPE = (128, 16, 16)  # the latents of every model
SMALL = (12, 6, 6)  # for the bit-by-bit reference, which is slow in Python
GOLDEN = Path(__file__).parent / "golden"


def _tiles(seeds=range(3), seconds: int = 9) -> torch.Tensor:
    waves = [torch.from_numpy(synth(16000 * seconds, 16000, seed=s)[:, 0]) for s in seeds]
    return torch.cat([frontend.analyse(w).scaled for w in waves]).unsqueeze(1)


@pytest.fixture(scope="module")
def context_path(tiny_model_path, tmp_path_factory):
    """The tiny model with a context table fitted on synthetic music-like tiles."""
    path = tmp_path_factory.mktemp("context") / "tiny-test.pt"
    shutil.copy(tiny_model_path, path)
    tables.fit_table("context", path, _tiles())
    return path


@pytest.fixture(scope="module")
def context_codec(context_path):
    return Codec(load_model(context_path))


def _skewed_bits(seed: int, n: int = 1, shape=SHAPE) -> np.ndarray:
    """Blobs of 4 x 4 bits with a tenth of them flipped, shared in part by all
    channels: bits that their neighbours and other channels tell about."""
    rng = np.random.default_rng(seed)
    c, side, _ = shape
    cells = -(-side // 4)
    low = rng.standard_normal((n, c, cells, cells)) + rng.standard_normal((n, 1, cells, cells))
    blobs = low.repeat(4, -1).repeat(4, -2)[..., :side, :side] > 0
    return (blobs ^ (rng.random((n, *shape)) < 0.1)).astype(np.uint8)


def _random_tables(seed: int = 0, shape=SHAPE, groups: int = 4, scale: int = 60) -> dict:
    """Valid tables with random biases and random weights wherever they are allowed,
    in the integer types a fit stores (context.fit)."""
    rng = np.random.default_rng(seed)
    c, side, _ = shape
    group = rng.permutation(np.arange(c) * groups // c)
    weight = rng.integers(-scale, scale + 1, (c, 2, 5, c)) * context.allowed(group)
    return {
        "groups": torch.from_numpy(group).to(torch.uint8),
        "bias": torch.from_numpy(rng.integers(-1500, 1501, (c, 2, side))).to(torch.int16),
        "weight": torch.from_numpy(weight).to(torch.int16),
        "squash": context.squash_table(),
        "side": side,
    }


def _reference_p(bits: np.ndarray, tables_: dict) -> np.ndarray:
    """Each bit's P(1) from the definition in context.py's docstring, bit by bit, in
    Python integers (no float sums), as k / 65536, in latent order ``[C, S, S]``."""
    group = np.asarray(tables_["groups"]).tolist()
    bias = np.asarray(tables_["bias"]).tolist()
    weight = np.asarray(tables_["weight"]).tolist()
    squash = np.asarray(tables_["squash"]).tolist()
    zmax = (len(squash) - 1) // 2
    c_count, h, w = bits.shape
    b = bits.tolist()
    out = np.zeros(bits.shape)
    for c in range(c_count):
        for y in range(h):
            for x in range(w):
                p = (y + x) % 2  # anchors (y + x even) first
                z = bias[c][p][y]
                for o, (dy, dx) in enumerate(((0, 0), (-1, 0), (0, -1), (0, 1), (1, 0))):
                    if not (0 <= y + dy < h and 0 <= x + dx < w):
                        continue  # outside the tile: s = 0
                    for q in range(c_count):
                        earlier = group[q] < group[c]
                        anchor = p == 1 and group[q] == group[c] and abs(dy) + abs(dx) == 1
                        if earlier or anchor:
                            z += weight[c][p][o][q] * (2 * b[q][y + dy][x + dx] - 1)
                out[c, y, x] = squash[max(-zmax, min(zmax, z)) + zmax] / 65536
    return out


@pytest.mark.parametrize(
    "seed, shape, scale",
    # The last: logits of +-40,000 and more, past what the stored int16 can hold.
    [(1, SMALL, 900), (2, (12, 5, 5), 900), (3, (7, 4, 4), 900), (4, SMALL, 3000)],
)
def test_probabilities_follow_their_definition(seed, shape, scale):
    tables_ = _random_tables(seed, shape, groups=3, scale=scale)
    bits = _skewed_bits(seed, shape=shape)[0]
    model = context.CheckerboardMix(tables_)
    order = model.all_latent
    assert sorted(order) == list(range(bits.size)), "every bit coded exactly once"
    want = _reference_p(bits, tables_).reshape(-1)[order]
    np.testing.assert_array_equal(model.probabilities(bits[None])[0], want)


def _step_of(model: context.CheckerboardMix) -> np.ndarray:
    """The step that decodes each bit ``[C, S, S]``, from the coding order."""
    c, side, _ = model.shape
    step = np.empty(c * side * side, np.int64)
    first = 0
    for t, (_, p, lo, hi, _, _) in enumerate(model.blocks):
        count = (hi - lo) * len(model.grid.positions(p)[0])
        step[model.all_latent[first : first + count]] = t
        first += count
    return step.reshape(model.shape)


def test_every_bit_a_weight_may_read_is_decoded_in_an_earlier_step():
    tables_ = _random_tables(2, groups=8)
    model = context.CheckerboardMix(tables_)
    c, side, _ = SHAPE
    step = np.pad(_step_of(model), ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    mask = context.allowed(np.asarray(tables_["groups"]))
    for ch in range(c):
        for y in range(side):
            for x in range(side):
                t, p = step[ch, y + 1, x + 1], (y + x) % 2
                assert t == 2 * int(tables_["groups"][ch]) + p  # group by group, anchors first
                for o, (dy, dx) in enumerate(context.OFFSETS):
                    read = step[mask[ch, p, o], y + 1 + dy, x + 1 + dx]
                    assert (read < t).all(), (ch, y, x, o)
    # What is allowed: every offset of earlier groups; in pass 1, the own group's
    # four nearest neighbours (the channel itself included); nothing else.
    per_pass = mask.sum((2, 3))
    earlier = 5 * np.array([16 * int(g) for g in tables_["groups"]])
    np.testing.assert_array_equal(per_pass[:, 0], earlier)
    np.testing.assert_array_equal(per_pass[:, 1], earlier + 4 * 16)
    assert len(model.blocks) == 16


def test_decoding_reads_the_probabilities_the_encoder_used():
    """The step-by-step decoder computes the values the whole-tile encoder used, with
    large random weights on every allowed offset: a payload range coded under the
    encoder's probabilities decodes to the tile (no raw fallback here)."""
    import constriction

    for seed, groups in ((5, 4), (6, 8), (7, 1)):
        model = context.CheckerboardMix(_random_tables(seed, groups=groups))
        tile = _skewed_bits(40 + seed)[0]
        coder = constriction.stream.queue.RangeEncoder()
        symbols = tile.reshape(-1)[model.all_latent].astype(np.int32)
        p = model.probabilities(tile[None])[0]
        coder.encode(symbols, constriction.stream.model.Bernoulli(perfect=False), p)
        payload = coder.get_compressed().astype("<u4").tobytes()
        decoded = model.decode(entropy.RANGE_CODED, payload, SHAPE)
        np.testing.assert_array_equal(decoded, tile)


def tables_from(bits: np.ndarray, **kw) -> dict:
    return context.fit(bits, **kw)


@pytest.fixture(scope="module")
def skewed_tables() -> dict:
    # Enough tiles that 2 x 5 x 128 weights per channel do not learn the noise.
    return tables_from(_skewed_bits(20, n=96), iterations=40)


def test_tiles_decoded_together_are_the_tiles_decoded_alone(skewed_tables):
    """A file's tiles are decoded side by side (decode_many), raw ones among them."""
    model = context.CheckerboardMix(skewed_tables)
    tiles_ = _skewed_bits(60, n=5)
    tiles_[2] = np.random.default_rng(2).integers(0, 2, SHAPE)  # unpredictable: raw
    chunks = model.encode_many(tiles_)
    assert [coding for coding, _ in chunks] == [1, 1, 0, 1, 1]
    assert chunks == [model.encode(tile) for tile in tiles_]
    np.testing.assert_array_equal(model.decode_many(chunks, SHAPE), tiles_)
    np.testing.assert_array_equal(entropy.decode_tiles(model, chunks[3:], SHAPE), tiles_[3:])
    # Work arrays are kept between calls: a smaller batch after a larger one still
    # decodes what it holds.
    np.testing.assert_array_equal(model.decode_many(chunks[:1], SHAPE), tiles_[:1])


@pytest.mark.parametrize(
    "prob_id, name, path",
    [(2, "context-bernoulli", "v2-default-context.mlc"), (3, "context-mix", "v2-default-mix.mlc")],
)
def test_retired_context_ids_are_refused_by_name(prob_id, name, path):
    message = (
        f"^probability model id {prob_id} \\({name}\\) was a development format that "
        "melcodec no longer decodes; encode the audio again$"
    )
    with pytest.raises(FormatError, match=message):
        entropy.probability_model(prob_id, {"context_mix": {}, "context_bernoulli": {}})
    # A real file of each (made by the development version that had the id).
    data = (GOLDEN / "retired" / path).read_bytes()
    assert melcodec.unpack(data)[0].prob_model_id == prob_id
    with pytest.raises(FormatError, match=message):
        melcodec.decompress(data)


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_is_exact_and_the_size_is_the_cross_entropy(seed, skewed_tables):
    model = context.CheckerboardMix(skewed_tables)
    bits = _skewed_bits(100 + seed, n=4)
    ideal = context.cross_entropy_bits(model, bits)
    sizes = []
    for tile in bits:
        coding, payload = model.encode(tile)
        assert coding == entropy.RANGE_CODED
        np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), tile)
        sizes.append(8 * len(payload))
    assert ideal < 0.9 * 32768, "the fixture's bits should be predictable"
    # The range coder adds at most a word or two per tile to the ideal length.
    assert abs(np.mean(sizes) - ideal) <= 0.01 * ideal


def test_probabilities_are_exact_integers_on_the_grid():
    model = context.CheckerboardMix(_random_tables(3))
    k = model.probabilities(_skewed_bits(3, n=2)) * 65536
    assert np.array_equal(k, np.round(k)) and k.min() >= 1 and k.max() <= 65535


def test_unpredictable_tiles_are_stored_raw(skewed_tables):
    model = context.CheckerboardMix(skewed_tables)
    noise = np.random.default_rng(0).integers(0, 2, SHAPE).astype(np.uint8)
    coding, payload = model.encode(noise)
    assert coding == entropy.RAW and len(payload) == 4096
    np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), noise)


def _costs(model: context.CheckerboardMix, bits: np.ndarray) -> np.ndarray:
    """Each bit's code length under ``model``, in latent order ``[n, C, S, S]``."""
    p = model.probabilities(bits)
    symbols = bits.reshape(len(bits), -1)[:, model.all_latent]
    cost = np.empty(symbols.shape)
    cost[:, model.all_latent] = -np.log2(np.where(symbols == 1, p, 1 - p))
    return cost.reshape(bits.shape)


def test_fit_learns_a_channel_from_an_earlier_group():
    bits = _skewed_bits(7, n=12)
    copies = np.arange(2, 43)  # 41 copies of one channel: more than a group holds
    bits[:, copies] = bits[:, 2:3]
    fitted = tables_from(bits, groups=4, iterations=40)
    group = np.asarray(fitted["groups"])
    assert sorted(np.bincount(group)) == [32] * 4
    later = copies[group[copies] > group[copies].min()]
    assert len(later) >= 9
    cost = _costs(context.CheckerboardMix(fitted), bits[:2])
    copied = np.isin(np.arange(128), later)
    assert cost[:, copied].mean() < 0.05, "a copy of an earlier bit should cost almost nothing"
    assert cost[:, ~copied].mean() > 0.2


def test_fit_learns_a_bit_from_its_own_channels_anchors():
    """Pass 1 reads the anchors of its own group: a bit that repeats its left
    neighbour (or right, at the edge) costs almost nothing; the anchors do not."""
    bits = np.random.default_rng(8).integers(0, 2, (16, *SHAPE)).astype(np.uint8)
    y, x = np.divmod(np.arange(256), 16)
    odd = (y + x) % 2 == 1
    source = np.where(x > 0, x - 1, x + 1)
    flat = bits.reshape(16, 128, 256)
    flat[:, :, odd] = flat[:, :, (y * 16 + source)[odd]]
    cost = _costs(context.CheckerboardMix(tables_from(bits, iterations=40)), bits[:2])
    cost = cost.reshape(2, 128, 256)
    assert cost[:, :, odd].mean() < 0.05
    assert cost[:, :, ~odd].mean() > 0.9


def test_a_fit_scales_its_weights_down_to_what_sums_exactly(monkeypatch):
    # The real limit (1,024 nats) is never reached by a fit; a small one is.
    monkeypatch.setattr(context, "REACH_LIMIT", 3000)
    fitted = tables_from(_skewed_bits(9, n=16), iterations=10)
    reach = np.abs(np.asarray(fitted["weight"], np.int64)).sum((2, 3)).max()
    assert 2000 < reach <= 3000
    context.CheckerboardMix(fitted)


def test_groups_put_the_most_informative_channels_first():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, (8, *SHAPE)).astype(np.uint8)
    # Channel 64 tells all about three others. None of them is among the first 32,
    # where an order that ignored the information would put group 0.
    bits[:, [70, 100, 127]] = bits[:, 64:65]
    group = context.choose_groups(bits, 4)
    assert np.bincount(group).tolist() == [32] * 4
    assert {group[c] for c in (64, 70, 100, 127)} == {0}


def _weights_at_int16_min(t):
    # -32,768: an int16 whose absolute value an int16 cannot hold.
    w = t["weight"].clone()
    w[w < 0] = -32768
    t.update(weight=w)


def _reads_later_group(t):
    w = t["weight"].clone()
    g = t["groups"]
    w[int(torch.argmin(g)), 0, 0, int(torch.argmax(g))] = 1  # a group-0 bit reads group 3
    t.update(weight=w)


def _anchor_reads_own_group(t):
    w = t["weight"].clone()
    g = t["groups"]
    c = int(torch.argmin(g))
    w[c, 0, 1, c] = 1  # an anchor reads its own channel's (non-anchor) neighbour
    t.update(weight=w)


def _reads_itself(t):
    w = t["weight"].clone()
    g = t["groups"]
    c = int(torch.argmax(g))
    w[c, 1, 0, c] = 1  # pass 1 reads the bit it is about to decode
    t.update(weight=w)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.update(bias=t["bias"][:, :, :10]), "wrong shape"),
        (lambda t: t.update(weight=t["weight"][:, :1]), "wrong shape"),
        (lambda t: t.update(squash=t["squash"][1:]), "wrong shape"),
        (lambda t: t.update(squash=t["squash"] * 0), "within 1..65535"),
        (lambda t: t.update(squash=t["squash"].flip(0)), "must rise"),
        (lambda t: t.update(groups=t["groups"] + 20), "groups must be 0..15"),
        (lambda t: t.update(groups=t["groups"] * 2), "each have a channel"),
        # At the bounds: a 17th group, the one group but the last left empty, and a
        # squash value of 65,536 (P = 1).
        (lambda t: t.update(groups=torch.arange(128) % 17), "groups must be 0..15"),
        (lambda t: t.update(groups=t["groups"] + (t["groups"] == 2)), "each have a channel"),
        (
            lambda t: t.update(squash=torch.cat([t["squash"][:-1], torch.tensor([65536])])),
            "within 1..65535",
        ),
        (_reads_later_group, "decoded after their own"),
        (_anchor_reads_own_group, "decoded after their own"),
        (_reads_itself, "decoded after their own"),
        (lambda t: t.update(bias=t["bias"] * 10), "out of range"),
        (lambda t: t.update(weight=t["weight"].int() * 600), "out of range"),
        (_weights_at_int16_min, "out of range"),
        (lambda t: t.update(weight=t["weight"] * 50), "too large"),
        (lambda t: t.pop("side"), "^checkerboard-mix table is incomplete$"),
    ],
)
def test_malformed_tables_are_refused(change, message):
    tables_ = _random_tables()
    context.CheckerboardMix(dict(tables_))  # valid as made
    change(tables_)
    with pytest.raises(ModelError, match=message):
        context.CheckerboardMix(tables_)


def test_a_model_with_a_context_table_encodes_with_it(context_codec, context_path):
    assert context_codec.prob.id == context.CheckerboardMix.id == 4
    card = load_model(context_path).card
    assert card["probability"]["checkerboard_mix"]["fit_tiles"] == len(_tiles())


@pytest.mark.parametrize("prob_id", [0, 1, 4])
def test_every_tile_round_trips_under_each_probability_model(context_path, prob_id):
    codec = Codec(load_model(context_path), prob_model_id=prob_id)
    wave = synth(16000 * 13, 16000, seed=42)[:, 0]
    data = codec.encode(wave, 16000)
    reader = codec.open(io.BytesIO(data))
    assert reader.header.prob_model_id == prob_id
    want = codec.tile_bits(frontend.analyse(torch.from_numpy(wave)).scaled)
    got = np.stack([codec.read_bits(reader, i)[0] for i in range(len(reader))])
    np.testing.assert_array_equal(got, want)
    assert len(reader) == 4


def test_a_file_refuses_a_model_whose_table_changed(context_path, tmp_path):
    wave = synth(16000 * 5, 16000, seed=3)[:, 0]
    old = Codec(load_model(context_path))
    by_context = old.encode(wave, 16000)
    by_static = Codec(load_model(context_path), prob_model_id=1).encode(wave, 16000)
    refitted = tmp_path / "tiny-test.pt"
    tables.fit_table("context", context_path, _tiles(seeds=[7]), out=refitted)
    new = Codec(load_model(refitted))
    with pytest.raises(ModelError, match="was made with model"):
        new.decode(by_context)
    # The static table and the weights did not change: that file still decodes, the same.
    np.testing.assert_array_equal(
        new.decode(by_static)[0].numpy(), old.decode(by_static)[0].numpy()
    )


def test_earlier_files_keep_only_the_ids_whose_tables_are_unchanged(context_path, tmp_path):
    first = load_model(context_path)
    assert first.card["earlier_files"][0]["probability_ids"] == [0, 1]
    path = tmp_path / "tiny-test.pt"
    tables.fit_table("static", context_path, _tiles(seeds=[8]), out=path)
    second = load_model(path)
    assert second.card["earlier_files"] == [
        {"sha256": first.sha256.hex(), "probability_ids": [0, 4]},
        {"sha256": first.card["earlier_files"][0]["sha256"], "probability_ids": [0]},
    ]
    assert second.decodes(first.sha256, 4) and not second.decodes(first.sha256, 1)
    assert not second.decodes(bytes(32), 0)


def test_a_refit_drops_the_tables_of_retired_models(context_path, tmp_path):
    model = load_model(context_path)
    path = tmp_path / "old.pt"
    probability = dict(model.probability, context_mix={"stale": 1})
    card = dict(model.card, probability=dict(model.card["probability"], context_mix={}))
    zoo.save_model(path, model.net, card, model.recipe, probability)
    tables.fit_table("static", path, _tiles(seeds=[8]))
    refitted = load_model(path)
    assert "context_mix" not in refitted.probability
    assert "context_mix" not in refitted.card["probability"]
    assert "checkerboard_mix" in refitted.probability


def test_a_truncated_context_payload_is_a_format_error(context_codec):
    tiles_ = context_codec.tile_bits(_tiles(seeds=[1])[:, 0])
    coding, payload = context_codec.prob.encode(tiles_[0])
    assert coding == entropy.RANGE_CODED
    with pytest.raises(FormatError, match="malformed"):
        context_codec.prob.decode(coding, payload[:-1], SHAPE)


def test_entropy_and_conditional_entropy_follow_their_definitions():
    # H(p) at known points, then H(i | j) = H(i, j) - H(j) counted pair by pair.
    h = context._entropy(np.array([0.0, 0.25, 0.5, 1.0]))
    np.testing.assert_allclose(h, [0.0, 0.8112781, 1.0, 0.0], atol=1e-6)
    rng = np.random.default_rng(11)
    x = rng.integers(0, 2, (4000, 5))
    x[:, 1] = x[:, 0] ^ (rng.random(4000) < 0.1)  # channel 1 tells about channel 0
    x[:, 4] = rng.random(4000) < 0.2
    expected = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            counts = np.bincount(2 * x[:, i] + x[:, j], minlength=4) / len(x)
            joint = -sum(q * np.log2(q) for q in counts if q > 0)
            pj = x[:, j].mean()
            expected[i, j] = joint + pj * np.log2(pj) + (1 - pj) * np.log2(1 - pj)
    got = context._conditional_entropy(x.astype(np.float64))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_fit_learns_a_bias_per_row():
    # Independent bits, P(1) = 0.9 in the upper half of every tile and 0.1 below.
    # The first group's anchors are coded before any other bit of their tile, so
    # only their row biases can bring their cost from 1 bit towards H(0.1) = 0.47.
    rng = np.random.default_rng(12)
    rows = np.arange(16)[:, None] < 8
    bits = (rng.random((16, *SHAPE)) < np.where(rows, 0.9, 0.1)).astype(np.uint8)
    fitted = tables_from(bits, iterations=60)
    cost = _costs(context.CheckerboardMix(fitted), bits[:4])
    first = np.asarray(fitted["groups"]) == 0
    anchors = np.add.outer(np.arange(16), np.arange(16)) % 2 == 0
    assert cost[:, first][:, :, anchors].mean() < 0.55


def test_the_squash_table_is_the_rounded_sigmoid():
    z = np.arange(-context.ZMAX, context.ZMAX + 1) / context.SCALE
    k = [min(65535, max(1, round(65536 / (1 + math.exp(-v))))) for v in z.tolist()]
    table = context.squash_table()
    assert table.dtype == torch.int32 and table.tolist() == k


def test_wrong_shapes_are_refused_with_what_they_are(skewed_tables):
    model = context.CheckerboardMix(skewed_tables)
    with pytest.raises(ValueError, match=r"^latents must be square$"):
        context.fit(np.zeros((1, 4, 4, 6), np.uint8))
    with pytest.raises(ValueError, match=r"bits of shape \(128, 8, 8\), table of shape \(128"):
        model.encode_many(np.zeros((1, 128, 8, 8), np.uint8))
    with pytest.raises(FormatError, match=r"latent shape \(128, 8, 8\) does not match the table"):
        model.decode_many([(entropy.RAW, bytes(1024))], (128, 8, 8))
