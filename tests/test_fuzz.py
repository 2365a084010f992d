"""Hostile files: a bounded fuzz run over the golden files, and the harness's own rule.

The long run (100,000+ cases) is ``bench/fuzz.py``; this one is sized for CI.
"""

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import melcodec
from melcodec import bitstream, fuzz, zoo
from melcodec.errors import FormatError, ModelError

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.mlc"))


def test_bounded_fuzz_run_meets_the_rule():
    seeds = [p.read_bytes() for p in GOLDEN]
    outcomes = [
        fuzz.check(n, k, d, lambda data, n=n: fuzz.decode_case(n, data))
        for n, k, d in fuzz.cases(seeds, 240, seed=7)
    ]
    failures = [o for o in outcomes if o.failed]
    assert not failures, "\n".join(map(str, failures[:10]))
    results = Counter((o.kind in fuzz.DAMAGE, o.result) for o in outcomes)
    # Damage is caught by the CRCs; crafting gets past them, and some crafted
    # files are valid (a swapped tile, other level bytes) and must decode.
    assert results[(True, "decoded")] == 0
    assert results[(False, "decoded")] >= 10
    assert results[(False, "refused")] >= 50


def test_cases_are_replayable_one_by_one():
    seeds = [p.read_bytes() for p in GOLDEN]
    run = {n: data for n, _, data in fuzz.cases(seeds, 30, seed=3)}
    again = {n: data for n, _, data in fuzz.cases(seeds, 5, seed=3, start=20)}
    assert all(run[n] == data for n, data in again.items())
    assert len(set(run.values())) > 25


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.parametrize(
    "decode,result",
    [
        (lambda d: np.zeros(4, np.float32), "decoded"),
        (lambda d: np.array([0.0, np.nan]), "nonfinite"),
        (lambda d: (_ for _ in ()).throw(FormatError("bad chunk")), "refused"),
        (lambda d: (_ for _ in ()).throw(FormatError("two\nlines")), "crash"),
        (lambda d: (_ for _ in ()).throw(AssertionError("from constriction")), "crash"),
        (lambda d: _spin(5), "hang"),
        (lambda d: np.ones(2**26, np.float32).sum(), "memory"),  # 256 MB
        (lambda d: torch.ones(2**26).sum(), "memory"),
    ],
)
def test_the_harness_tells_each_outcome_apart(decode, result):
    outcome = fuzz.check(0, "flip", b"", decode, time_limit=0.5, memory_limit_mb=64)
    assert outcome.result == result, outcome.detail


@pytest.mark.parametrize(
    "name", ["../models/default", "/tmp/model", ".hidden", "x" * 253, "tab\there", "nul\x00"]
)
def test_a_model_name_read_from_a_file_is_never_a_path(name):
    with pytest.raises(ModelError, match="invalid model"):
        zoo.resolve_name(name)


def test_a_file_naming_a_model_file_by_path_is_refused_before_loading(monkeypatch):
    header, chunks = melcodec.unpack(GOLDEN[0].read_bytes())
    crafted = bitstream.pack_unchecked(
        header.__class__(**{**header.__dict__, "model_name": "../models/default"}), chunks
    )
    monkeypatch.setattr(zoo, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ModelError, match="invalid model"):
        melcodec.decompress(crafted)
