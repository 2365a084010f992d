"""The context probability model (id 3, context-mix): its definition, schedule,
exactness, fitting, and model files."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synth

import melcodec
from melcodec import Codec, context, entropy, frontend, load_model, tables
from melcodec.errors import FormatError, ModelError

SHAPE = (128, 16, 16)


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


def _skewed_bits(seed: int, n: int = 1) -> np.ndarray:
    """Spatially correlated random bits: blobs, so contexts carry information."""
    rng = np.random.default_rng(seed)
    field = rng.standard_normal((n, *SHAPE))
    field = field.cumsum(-1) + field.cumsum(-2) + 2 * field[:, :1]
    return (field > 0.3).astype(np.uint8)


def _random_tables(seed: int = 0, groups: int = 4) -> dict:
    """Valid tables with random logits and weights (causal: earlier groups only)."""
    rng = np.random.default_rng(seed)
    c = SHAPE[0]
    group = rng.permutation(np.arange(c) * groups // c)
    weight = rng.integers(-400, 401, (c, len(context.OFFSETS), c))
    weight *= group[None, None, :] < group[:, None, None]
    return {
        "groups": torch.from_numpy(group),
        "neighbour": torch.from_numpy(rng.integers(-1500, 1501, (c, 729))),
        "weight": torch.from_numpy(weight),
        "squash": context.squash_table(),
        "side": 16,
    }


def _reference_p(bits: np.ndarray, tables_: dict) -> np.ndarray:
    """Each bit's P(1) from the definition in context.py's docstring, bit by bit, in
    Python integers (no float sums), as k / 65536."""
    group = np.asarray(tables_["groups"]).tolist()
    neighbour = np.asarray(tables_["neighbour"]).tolist()
    weight = np.asarray(tables_["weight"]).tolist()
    squash = np.asarray(tables_["squash"]).tolist()
    zmax = (len(squash) - 1) // 2
    c_count, h, w = bits.shape
    b = bits.tolist()

    def bit(c, y, x, outside):
        return b[c][y][x] if 0 <= y < h and 0 <= x < w else outside

    out = np.zeros(bits.shape)
    for c in range(c_count):
        earlier = [q for q in range(c_count) if group[q] < group[c]]
        for y in range(h):
            for x in range(w):
                k = 0
                for dy, dx in ((0, -1), (0, -2), (-1, 0), (-1, -1), (-2, 0), (-1, -2)):
                    k = 3 * k + bit(c, y + dy, x + dx, 2)
                z = neighbour[c][k]
                for o, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))):
                    for q in earlier:
                        s = bit(q, y + dy, x + dx, None)
                        z += 0 if s is None else weight[c][o][q] * (2 * s - 1)
                out[c, y, x] = squash[max(-zmax, min(zmax, z)) + zmax] / 65536
    return out


def test_probabilities_follow_their_definition():
    tables_ = _random_tables()
    bits = _skewed_bits(1)[0]
    model = context.ContextMix(tables_)
    order = model.schedule.all_latent
    assert sorted(order) == list(range(bits.size)), "every bit coded exactly once"
    want = _reference_p(bits, tables_).reshape(-1)[order]
    np.testing.assert_array_equal(model.probabilities(bits[None])[0], want)


def test_every_context_bit_is_decoded_in_an_earlier_step():
    """Own-channel neighbours and every earlier-group bit at the offsets a weight may
    use are decoded in a step before the bit's own."""
    tables_ = _random_tables(2)
    s = context.ContextMix(tables_).schedule
    c, h, w = SHAPE
    step_of = np.full((c, h + 4, w + 4), -1)  # outside the tile: known before step 0
    for t, step in enumerate(s.steps):
        bits = s.all_latent[sum(len(x.cells) for x in s.steps[:t]) :][: len(step.cells)]
        ch, y, x = np.unravel_index(bits, SHAPE)
        step_of[ch, y + 2, x + 2] = t
    group = np.asarray(tables_["groups"])
    for ch in range(c):
        for y in range(h):
            for x in range(w):
                t = step_of[ch, y + 2, x + 2]
                for dy, dx in context.NEIGHBOURS:
                    assert step_of[ch, y + dy + 2, x + dx + 2] < t
                earlier = group < group[ch]
                for dy, dx in context.OFFSETS:
                    assert (step_of[earlier, y + dy + 2, x + dx + 2] < t).all()
    assert len(s.steps) == 31 + 2 * 3  # 31 diagonals, each later group two behind


def test_decoding_reads_the_probabilities_the_encoder_used():
    """The step-by-step decoder computes the values the whole-tile encoder used, with
    large random weights on every offset: a payload range coded under the encoder's
    probabilities decodes to the tile (no raw fallback here)."""
    import constriction

    model = context.ContextMix(_random_tables(5))
    for seed in range(3):
        tile = _skewed_bits(40 + seed)[0]
        coder = constriction.stream.queue.RangeEncoder()
        symbols = tile.reshape(-1)[model.schedule.all_latent].astype(np.int32)
        p = model.probabilities(tile[None])[0]
        coder.encode(symbols, constriction.stream.model.Bernoulli(perfect=False), p)
        payload = coder.get_compressed().astype("<u4").tobytes()
        decoded = model.decode(entropy.RANGE_CODED, payload, SHAPE)
        np.testing.assert_array_equal(decoded, tile)


def test_tiles_decoded_together_are_the_tiles_decoded_alone():
    """A file's tiles are decoded side by side (decode_many), raw ones among them."""
    model = context.ContextMix(tables_from(_skewed_bits(20, n=24)))
    tiles_ = _skewed_bits(60, n=5)
    tiles_[2] = np.random.default_rng(2).integers(0, 2, SHAPE)  # unpredictable: raw
    chunks = model.encode_many(tiles_)
    assert [coding for coding, _ in chunks] == [1, 1, 0, 1, 1]
    assert chunks == [model.encode(tile) for tile in tiles_]
    np.testing.assert_array_equal(model.decode_many(chunks, SHAPE), tiles_)
    np.testing.assert_array_equal(entropy.decode_tiles(model, chunks[3:], SHAPE), tiles_[3:])


def test_the_retired_context_id_is_refused_by_name():
    with pytest.raises(FormatError, match="id 2 .*no longer decodes"):
        entropy.probability_model(2, {"context_bernoulli": {}})
    # A real file of it (made by the development version that had id 2).
    data = (Path(__file__).parent / "golden" / "retired" / "v2-default-context.mlc").read_bytes()
    assert melcodec.unpack(data)[0].prob_model_id == 2
    with pytest.raises(FormatError, match="id 2 .*no longer decodes"):
        melcodec.decompress(data)


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_is_exact_and_the_size_is_the_cross_entropy(seed):
    tables_ = tables_from(_skewed_bits(10 + seed, n=24))
    model = context.ContextMix(tables_)
    bits = _skewed_bits(100 + seed, n=4)
    ideal = context.cross_entropy_bits(tables_, bits)
    sizes = []
    for tile in bits:
        coding, payload = model.encode(tile)
        assert coding == entropy.RANGE_CODED
        np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), tile)
        sizes.append(8 * len(payload))
    assert ideal < 0.9 * 32768, "the fixture's bits should be predictable"
    # The range coder adds at most a word or two per tile to the ideal length.
    assert abs(np.mean(sizes) - ideal) <= 0.01 * ideal


def tables_from(bits: np.ndarray) -> dict:
    return context.fit(bits)


def test_probabilities_are_exact_integers_on_the_grid():
    model = context.ContextMix(_random_tables(3))
    k = model.probabilities(_skewed_bits(3, n=2)) * 65536
    assert np.array_equal(k, np.round(k)) and k.min() >= 1 and k.max() <= 65535


def test_unpredictable_tiles_are_stored_raw():
    tables_ = tables_from(_skewed_bits(5, n=24))
    model = context.ContextMix(tables_)
    noise = np.random.default_rng(0).integers(0, 2, SHAPE).astype(np.uint8)
    coding, payload = model.encode(noise)
    assert coding == entropy.RAW and len(payload) == 4096
    np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), noise)


def test_fit_learns_a_channel_from_an_earlier_group():
    bits = _skewed_bits(7, n=12)
    copies = np.arange(2, 43)  # 41 copies of one channel: more than a group holds
    bits[:, copies] = bits[:, 2:3]
    fitted = context.fit(bits, iterations=40)
    group = np.asarray(fitted["groups"])
    assert sorted(np.bincount(group)) == [32] * 4
    later = copies[group[copies] > group[copies].min()]
    assert len(later) >= 9
    model = context.ContextMix(fitted)
    p = model.probabilities(bits[:2])
    symbols = bits[:2].reshape(2, -1)[:, model.schedule.all_latent]
    cost = -np.log2(np.where(symbols == 1, p, 1 - p))
    copied = np.isin(model.schedule.all_latent // 256, later)
    assert cost[:, copied].mean() < 0.05, "a copy of an earlier bit should cost almost nothing"
    assert cost[:, ~copied].mean() > 0.2


def test_groups_put_the_most_informative_channels_first():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, (8, *SHAPE)).astype(np.uint8)
    bits[:, [5, 9, 11]] = bits[:, 2:3]  # channel 2 tells all about three others
    group = context.choose_groups(bits, 4)
    assert np.bincount(group).tolist() == [32] * 4
    assert {group[c] for c in (2, 5, 9, 11)} == {0}


def _causal_break(t):
    w = t["weight"].clone()
    g = t["groups"]
    w[int(torch.argmin(g)), 0, int(torch.argmax(g))] = 1  # a group-0 bit reads group 3
    t.update(weight=w)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.update(neighbour=t["neighbour"][:, :10]), "wrong shape"),
        (lambda t: t.update(squash=t["squash"][1:]), "wrong shape"),
        (lambda t: t.update(squash=t["squash"] * 0), "within 1..65535"),
        (lambda t: t.update(squash=t["squash"].flip(0)), "must rise"),
        (lambda t: t.update(groups=t["groups"] + 20), "groups must be 0..15"),
        (lambda t: t.update(groups=t["groups"] * 2), "each have a channel"),
        (_causal_break, "decoded after their own"),
        (lambda t: t.update(neighbour=t["neighbour"] * 10), "out of range"),
        (lambda t: t.update(weight=t["weight"] * 80), "too large"),
        (lambda t: t.pop("side"), "incomplete"),
    ],
)
def test_malformed_tables_are_refused(change, message):
    tables_ = _random_tables()
    change(tables_)
    with pytest.raises(ModelError, match=message):
        context.ContextMix(tables_)


def test_a_model_with_a_context_table_encodes_with_it(context_codec, context_path):
    assert context_codec.prob.id == context.ContextMix.id == 3
    card = load_model(context_path).card
    assert card["probability"]["context_mix"]["fit_tiles"] == len(_tiles())


@pytest.mark.parametrize("prob_id", [0, 1, 3])
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
        {"sha256": first.sha256.hex(), "probability_ids": [0, 3]},
        {"sha256": first.card["earlier_files"][0]["sha256"], "probability_ids": [0]},
    ]
    assert second.decodes(first.sha256, 3) and not second.decodes(first.sha256, 1)
    assert not second.decodes(bytes(32), 0)


def test_a_truncated_context_payload_is_a_format_error(context_codec):
    tiles_ = context_codec.tile_bits(_tiles(seeds=[1])[:, 0])
    coding, payload = context_codec.prob.encode(tiles_[0])
    assert coding == entropy.RANGE_CODED
    with pytest.raises(FormatError, match="malformed"):
        context_codec.prob.decode(coding, payload[:-1], SHAPE)
