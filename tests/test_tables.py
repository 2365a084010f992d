"""Fitting probability tables into a model file (API and `fit-table`), and coding
with them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli, write_synth

from melcodec import Codec, entropy, load_model, tables


def test_fitted_table_matches_counts_and_shrinks_files(tiny_model_path, tmp_path):
    path = tmp_path / "fit.pt"
    shutil.copy(tiny_model_path, path)
    torch.manual_seed(0)
    # Smooth "spectrogram" tiles: a random ramp per tile, so the bits are skewed.
    ramp = torch.linspace(0, 1, 256)[None, None, :, None].expand(12, 1, 256, 256)
    tiles_ = (ramp * torch.rand(12, 1, 1, 1)).contiguous()
    before = load_model(path).sha256
    info = tables.fit_table("static", path, tiles_)
    model = load_model(path)
    assert model.sha256 != before, "a new table makes a new model file"
    table = model.probability["static_bernoulli"]
    ones = tables.count_ones(model.net, tiles_)
    torch.testing.assert_close(table, entropy.table_from_counts(ones, 12))
    assert info["fit_tiles"] == 12 and 0 < info["entropy_bits_per_tile"] < 32768
    codec = Codec(model)
    assert codec.prob.id == entropy.StaticBernoulli.id
    bits = codec.tile_bits(tiles_[:, 0])
    coded = [codec.prob.encode(b) for b in bits]
    assert all(len(payload) < 4096 for _, payload in coded)
    back = [codec.prob.decode(c, p, codec.latent_shape) for c, p in coded]
    assert np.array_equal(np.stack(back), bits)


def test_half_precision_model_files_define_the_bits(tiny_loaded, tmp_path):
    from melcodec import zoo

    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    card = dict(tiny_loaded.card, weights="float16")
    zoo.save_model(full, tiny_loaded.net, tiny_loaded.card, tiny_loaded.recipe)
    zoo.save_model(half, tiny_loaded.net, card, tiny_loaded.recipe, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    for key, value in loaded.net.state_dict().items():
        original = tiny_loaded.net.state_dict()[key]
        assert value.dtype == original.dtype  # the network computes in float32
        if value.is_floating_point():
            assert torch.equal(value, original.half().float())
    # Refitting the table keeps the file in half precision.
    tiles_ = torch.rand(4, 1, 256, 256, generator=torch.Generator().manual_seed(1))
    tables.fit_table("static", half, tiles_)
    stored = torch.load(half, weights_only=True)["weights"]
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    codec = Codec(load_model(half))
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(20000).astype("float32"))
    data = codec.encode(0.1 * wave, 16000)
    assert codec.decode(data)[0].numel() == 20000


def test_table_from_counts_is_add_one_smoothed_and_clamped():
    # (ones + 1) / (total + 2) on the 1/65536 grid, worked by hand; counts past
    # 2^17 would round to 0 or 65536, which a range coder cannot take.
    total = 1_000_000
    ones = torch.tensor([0, 1, 499_999, total - 1, total])
    table = entropy.table_from_counts(ones, total)
    assert table.dtype == torch.int32
    assert table.tolist() == [1, 1, 32768, 65535, 65535]
    assert entropy.table_from_counts(torch.tensor([0, 1, 2, 3]), 3).tolist() == [
        13107,  # 1/5 of 65536 = 13107.2
        26214,  # 2/5
        39322,  # 3/5 = 39321.6
        52429,  # 4/5 = 52428.8
    ]


def test_fit_to_another_file_keeps_the_original_and_the_recipe(tiny_loaded, tmp_path):
    from melcodec import zoo

    tiny_model_path = tmp_path / "trained.pt"
    zoo.save_model(tiny_model_path, tiny_loaded.net, tiny_loaded.card, {"loss": "nlpd"})
    before = tiny_model_path.read_bytes()
    out = tmp_path / "fitted.pt"
    tiles_ = torch.rand(5, 1, 256, 256, generator=torch.Generator().manual_seed(2))
    seen = []
    info = tables.fit_table(
        "static", tiny_model_path, tiles_, out=out, progress=lambda *a: seen.append(a)
    )
    assert tiny_model_path.read_bytes() == before
    assert seen and seen[-1] == (5, 5)
    fitted, original = load_model(out), load_model(tiny_model_path)
    assert fitted.recipe == original.recipe == {"loss": "nlpd"}
    # The card's entropy is the table's own: sum of H(p) over positions, in bits.
    p = fitted.probability["static_bernoulli"].double().numpy() / entropy.PROB_ONE
    entropy_bits = float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)).sum())
    assert info["entropy_bits_per_tile"] == pytest.approx(entropy_bits, rel=1e-9)
    assert fitted.card["probability"]["static_bernoulli"] == info


def test_fit_table_command_adds_both_tables_and_encode_uses_the_context_table(
    tiny_model_path, tmp_path, monkeypatch
):
    monkeypatch.setenv("MELCODEC_CACHE", str(tmp_path / "cache"))
    music = tmp_path / "music"
    music.mkdir()
    for seed in range(3):
        write_synth(music / f"clip{seed}.wav", 9, seed=seed)
    out = tmp_path / "fitted.pt"
    code, stdout, err = run_cli(
        "fit-table", tiny_model_path, "--data", music, "--clips", 4, "--out", out
    )
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("static table fitted on 4 tiles")
    assert lines[1].startswith("context table fitted on 4 tiles")
    model = load_model(out)
    assert set(model.probability) == {"static_bernoulli", "checkerboard_mix"}
    # The card keeps what each fit measured, the first fit's beside the second's.
    assert set(model.card["probability"]) == {"static_bernoulli", "checkerboard_mix"}
    assert Codec(model).prob.id == 4
    code, _, err = run_cli("fit-table", tiny_model_path, "--data", tmp_path / "none")
    assert_one_line_error(code, err, "does not exist")


def test_a_published_model_file_is_refitted_only_with_its_new_hash_recorded(
    tiny_model_path, tmp_path, monkeypatch
):
    from melcodec import zoo

    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "tiny.pt"
    shutil.copy(tiny_model_path, path)
    zoo.publish(path)
    before = path.read_bytes()
    tiles_ = torch.rand(4, 1, 256, 256, generator=torch.Generator().manual_seed(2))
    # In place without publishing, the next load would refuse the file as altered.
    code, _, err = run_cli("fit-table", path, "--data", tmp_path, "--clips", 1)
    assert_one_line_error(code, err, "is a published model")
    with monkeypatch.context() as patch:
        # Refused before the encoding pass (minutes on a real corpus), not after it.
        patch.setattr(tables, "tile_bits", lambda *a, **k: pytest.fail("encoded first"))
        with pytest.raises(zoo.ModelError, match="published model"):
            tables.fit_table("static", path, tiles_)
    assert path.read_bytes() == before
    tables.fit_table("static", path, tiles_, published=True)
    assert path.read_bytes() != before
    assert load_model(path).sha256 == zoo.published_sha256(path) == zoo.file_sha256(path)
    # Written elsewhere, the published file stays as it was.
    tables.fit_table("static", path, tiles_, out=tmp_path / "mine.pt")
    assert load_model(tmp_path / "mine.pt").probability is not None
