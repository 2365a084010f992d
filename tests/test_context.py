"""The context probability model (id 2): its contexts, exactness, fitting, and files."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from conftest import synth

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
    tables.fit_context_table(path, _tiles())
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


def _random_tables(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    group = (np.arange(128) % 3 == 0).astype(np.int64)
    first = np.flatnonzero(group == 0)
    return {
        "table": torch.from_numpy(rng.integers(1, 65536, (128, context.CONTEXTS))),
        "group": torch.from_numpy(group),
        "parents": torch.from_numpy(rng.choice(first, (128, 2))),
        "side": 16,
    }


def _reference_index(bits: np.ndarray, tables_: dict) -> np.ndarray:
    """Each bit's table index from the definition in context.py's docstring, bit by bit."""
    table_group = np.asarray(tables_["group"])
    parents = np.asarray(tables_["parents"])
    c_count, h, w = bits.shape
    out = np.zeros(bits.shape, np.int64)
    for c in range(c_count):
        for y in range(h):
            for x in range(w):
                k = 0
                for dy, dx in context.NEIGHBOURS:
                    yy, xx = y + dy, x + dx
                    k = 3 * k + (int(bits[c, yy, xx]) if 0 <= yy < h and 0 <= xx < w else 2)
                p = [0, 0] if table_group[c] == 0 else [int(bits[q, y, x]) for q in parents[c]]
                out[c, y, x] = c * context.CONTEXTS + 4 * k + 2 * p[0] + p[1]
    return out


def test_contexts_follow_their_definition():
    tables_ = _random_tables()
    bits = _skewed_bits(1)[0]
    model = context.ContextBernoulli(tables_)
    symbols, index = context.contexts(model.schedule, bits[None])
    order = model.schedule.all_latent
    assert sorted(order) == list(range(bits.size)), "every bit coded exactly once"
    np.testing.assert_array_equal(symbols[0], bits.reshape(-1)[order])
    np.testing.assert_array_equal(index[0], _reference_index(bits, tables_).reshape(-1)[order])


def test_every_context_bit_is_decoded_in_an_earlier_step():
    tables_ = _random_tables(2)
    s = context.ContextBernoulli(tables_).schedule
    step_of = np.full(s.padded_size, -1)  # outside cells and the zero cell: before step 0
    for step, cells in enumerate(s.cells):
        step_of[cells] = step
    for step, ctx in enumerate(s.context_cells):
        assert (step_of[ctx] < step).all(), f"step {step} reads a bit not yet decoded"
    assert len(s.cells) == 32  # 31 diagonals, group 1 one step behind


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_is_exact_and_the_size_is_the_cross_entropy(seed):
    tables_ = tables_from(_skewed_bits(10 + seed, n=24))
    model = context.ContextBernoulli(tables_)
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
    model = context.ContextBernoulli(_random_tables(3))
    k = model.p_one * 65536
    assert np.array_equal(k, np.round(k)) and k.min() >= 1 and k.max() <= 65535


def test_unpredictable_tiles_are_stored_raw():
    tables_ = tables_from(_skewed_bits(5, n=24))
    model = context.ContextBernoulli(tables_)
    noise = np.random.default_rng(0).integers(0, 2, SHAPE).astype(np.uint8)
    coding, payload = model.encode(noise)
    assert coding == entropy.RAW and len(payload) == 4096
    np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), noise)


def test_fit_counts_each_context_with_add_one_smoothing():
    bits = _skewed_bits(7, n=6)
    fitted = context.fit(bits)
    model = context.ContextBernoulli(fitted)
    symbols, index = context.contexts(model.schedule, bits)
    cell = np.bincount(index.ravel()).argmax()
    ones, total = int(symbols.ravel()[index.ravel() == cell].sum()), int((index == cell).sum())
    want = round((ones + 1) * 65536 / (total + 2))
    assert int(np.asarray(fitted["table"]).reshape(-1)[cell]) == want
    unseen = np.setdiff1d(np.arange(128 * context.CONTEXTS), index)
    assert (np.asarray(fitted["table"]).reshape(-1)[unseen] == 32768).all()


def test_parents_are_the_most_informative_channels_of_group_0():
    rng = np.random.default_rng(4)
    bits = rng.integers(0, 2, (8, *SHAPE)).astype(np.uint8)
    bits[:, 5] = bits[:, 2]  # channel 5 is a copy of 2, 9 its complement
    bits[:, 9] = 1 - bits[:, 2]
    group, parents = context.choose_parents(bits)
    assert (group == 0).sum() == 64
    copies = [c for c in (2, 5, 9) if group[c] == 1]
    for c in copies:
        assert group[parents[c, 0]] == 0 and parents[c, 0] in (2, 5, 9)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.update(table=t["table"][:, :10]), "wrong shape"),
        (lambda t: t.update(table=t["table"] * 0), "outside 1..65535"),
        (lambda t: t.update(group=torch.ones(128, dtype=torch.int64)), "with a group 0"),
        (lambda t: t.update(parents=t["parents"] + 1000), "channels of group 0"),
        (lambda t: t.pop("side"), "incomplete"),
    ],
)
def test_malformed_tables_are_refused(change, message):
    tables_ = _random_tables()
    change(tables_)
    with pytest.raises(ModelError, match=message):
        context.ContextBernoulli(tables_)


def test_a_model_with_a_context_table_encodes_with_it(context_codec, context_path):
    assert context_codec.prob.id == context.ContextBernoulli.id
    card = load_model(context_path).card
    assert card["probability"]["context_bernoulli"]["fit_tiles"] == len(_tiles())


@pytest.mark.parametrize("prob_id", [0, 1, 2])
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
    tables.fit_context_table(context_path, _tiles(seeds=[7]), out=refitted)
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
    tables.fit_static_table(context_path, _tiles(seeds=[8]), out=path)
    second = load_model(path)
    assert second.card["earlier_files"] == [
        {"sha256": first.sha256.hex(), "probability_ids": [0, 2]},
        {"sha256": first.card["earlier_files"][0]["sha256"], "probability_ids": [0]},
    ]
    assert second.decodes(first.sha256, 2) and not second.decodes(first.sha256, 1)
    assert not second.decodes(bytes(32), 0)


def test_a_truncated_context_payload_is_a_format_error(context_codec):
    tiles_ = context_codec.tile_bits(_tiles(seeds=[1])[:, 0])
    coding, payload = context_codec.prob.encode(tiles_[0])
    assert coding == entropy.RANGE_CODED
    with pytest.raises(FormatError, match="malformed"):
        context_codec.prob.decode(coding, payload[:-1], SHAPE)
