"""``melcodec eval`` on a two-clip fixture."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import invoke

from melcodec import Codec, DecodeOptions, benchmark


def test_identity_scores_zero_zero_one(two_clips):
    files = benchmark.find_inputs(two_clips)
    rows = benchmark.run([benchmark.IdentitySystem()], files, output="float")
    (s,) = benchmark.summarise(rows)
    for domain in ("spec", "e2e"):
        assert s[f"{domain}_mse"] < 1e-10
        assert s[f"{domain}_nlpd"] < 1e-4
        assert s[f"{domain}_msssim"] > 0.9999
    assert s["sc"] < 1e-6 and abs(s["level_worst_db"]) < 1e-6 and s["clipped_worst"] == 0
    # As decode writes it by default, the identity is off by 16-bit rounding only.
    (s,) = benchmark.summarise(benchmark.run([benchmark.IdentitySystem()], files))
    assert 0 < s["e2e_mse"] < 1e-5 and s["e2e_msssim"] > 0.999
    assert 0 < s["sc"] < 1e-3 and abs(s["level_worst_db"]) < 1e-3


def test_codec_rows_are_in_range_and_bitrate_is_real(two_clips, tiny_loaded):
    system = benchmark.CodecSystem(Codec(tiny_loaded), DecodeOptions(gl_iters=2))
    rows = benchmark.run([system], benchmark.find_inputs(two_clips))
    assert [r["file"] for r in rows] == ["a.wav", "b.flac"]
    for r in rows:
        assert 0 < r["spec_mse"] < 1 and 0 < r["e2e_mse"] < 1
        assert 0 < r["spec_nlpd"] and 0 < r["e2e_nlpd"]
        assert 0 <= r["spec_msssim"] < 1 and 0 <= r["e2e_msssim"] < 1
        assert r["kbit_per_s"] == pytest.approx(r["bytes"] * 8 / r["seconds"] / 1000)
        assert r["bytes"] <= 4096 * r["tiles"] + 200
    (s,) = benchmark.summarise(rows)
    assert s["tiles"] == sum(r["tiles"] for r in rows) == 3
    expected = sum(r["spec_nlpd"] * r["tiles"] for r in rows) / 3
    assert s["spec_nlpd"] == pytest.approx(expected)


def test_cli_eval_writes_json_and_csv(two_clips, tiny_model_path, tmp_path):
    out_json, out_csv = tmp_path / "e.json", tmp_path / "e.csv"
    args = ["eval", str(two_clips), "--models", str(tiny_model_path), "--gl-iters", "1"]
    result = invoke(*args, "--json", str(out_json), "--csv", str(out_csv))
    assert result.exit_code == 0, result.output
    assert "| tiny-test |" in result.output
    blob = json.loads(out_json.read_text())
    assert blob["summary"][0]["system"] == "tiny-test" and len(blob["files"]) == 2
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and float(rows[0]["spec_msssim"]) <= 1


def test_eval_of_an_empty_folder_is_a_clear_error(tmp_path):
    result = invoke("eval", str(tmp_path))
    assert result.exit_code != 0
