"""The three-call API, and README's example of it run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_NAME, synth

import melcodec
from melcodec.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"From Python.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    got = re.fullmatch(r"(\d+) bytes, (\d+) tiles, ([\d.]+) s at 16000 Hz\n", out)
    assert got, out
    size, tiles, seconds = int(got[1]), int(got[2]), float(got[3])
    assert tiles >= 2 and 100 < size < tiles * 4200
    assert abs(seconds - 6.0) < 0.01, seconds  # the example is a 6-s excerpt


def test_round_trip_names_its_model(monkeypatch, models_dir, tiny_loaded):
    monkeypatch.setenv("MELCODEC_MODELS", str(models_dir))
    wave = synth(24_000, 24_000, seed=2)[:, 0]
    data = melcodec.compress(tiny_loaded, wave, 24_000)
    header, chunks = melcodec.unpack(data)
    assert header.model_name == TINY_NAME and header.source_sample_rate == 24_000
    assert len(chunks) == header.num_tiles == 1
    # The model comes from the file's name, found in MELCODEC_MODELS.
    y, rate = melcodec.decompress(data, options=melcodec.DecodeOptions(gl_iters=0))
    assert rate == 16000 and y.dtype == np.float32 and y.shape == (16_000,)
    y, rate = melcodec.decompress(
        data, tiny_loaded, melcodec.DecodeOptions(gl_iters=0, sample_rate="source")
    )
    assert (rate, y.shape) == (24_000, (24_000,))


def test_unpack_checks_what_it_returns(tiny_loaded):
    data = melcodec.compress(tiny_loaded, synth(16_000, 16_000)[:, 0], 16_000)
    broken = bytearray(data)
    broken[-1] ^= 1
    with pytest.raises(FormatError, match="tile 0 is corrupt"):
        melcodec.unpack(bytes(broken))
