"""bin/train-zoo: trains what is missing, skips what is finished, refuses unknown names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from melcodec import zoo

SCRIPT = Path(__file__).resolve().parents[1] / "bin" / "train-zoo"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MELCODEC_ZOO_RUNS=str(tmp_path / "zoo"))
    env["MELCODEC_CACHE"] = str(tmp_path / "cache")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_train_zoo_trains_then_skips(tmp_path, make_audio):
    val = make_audio("val/one.wav", seconds=4.3, root=tmp_path).parent
    args = [
        "train",
        "--only",
        "mse-noise",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--revive-every",
        "7",
    ]
    first = _run(tmp_path, *args, "--val-data", str(tmp_path / "none"))
    # No such validation folder: the run must fail cleanly and leave nothing finished.
    assert first.returncode != 0 and "Traceback" not in first.stderr
    assert "--val-data must be a folder" in first.stderr
    args += ["--val-data", str(val)]
    done = _run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    model = tmp_path / "zoo" / "mse-noise" / "model.pt"
    saved = torch.load(model, weights_only=True)
    card = saved["card"]
    assert saved["recipe"]["revive_every"] == 7  # passed on to melcodec train
    assert card["name"] == "mse-noise" and card["loss"] == "mse" and card["steps"] == 2
    assert card["recipe"] == "cpu" and card["noise"] == "aniso"
    again = _run(tmp_path, *args)
    assert again.returncode == 0 and "finished" in again.stdout
    status = _run(tmp_path, "status")
    assert (
        "mse-noise      finished" in status.stdout and "nlpd-music     not started" in status.stdout
    )
    # Shipping it: tables fitted, half precision, its hash in the folder's SHA256SUMS.
    models = tmp_path / "models"
    models.mkdir()
    fit = ["--corpus", str(val), "--clips", "2", "--to", str(models)]
    shipped = _run(tmp_path, "install", "--only", "mse-noise", *fit)
    assert shipped.returncode == 0, shipped.stderr
    path = models / "mse-noise.pt"
    model = zoo.load_model(path)  # refused unless SHA256SUMS has this file's hash
    assert (models / zoo.SUMS).read_text() == f"{model.sha256.hex()}  mse-noise.pt\n"
    assert set(model.probability) == {"static_bernoulli", "checkerboard_mix"}
    assert model.card["weights"] == "float16" and model.card["earlier_files"] == []
    assert not (tmp_path / "zoo" / "mse-noise" / "shipped.pt").exists()
    refit = _run(tmp_path, "tables", *fit)
    assert refit.returncode == 0, refit.stderr
    again = zoo.load_model(path)
    assert again.sha256 != model.sha256
    assert [e["sha256"] for e in again.card["earlier_files"]] == [model.sha256.hex()]


def test_train_zoo_takes_a_named_recipe(tmp_path, make_audio):
    # How a card rebuilds a model of an earlier recipe (the noise models of cpu-octaves).
    val = make_audio("val/one.wav", seconds=4.3, root=tmp_path).parent
    args = ["train", "--only", "mse-noise", "--recipe", "cpu-octaves", "--steps", "1"]
    done = _run(tmp_path, *args, "--device", "cpu", "--val-data", str(val))
    assert done.returncode == 0, done.stderr
    card = torch.load(tmp_path / "zoo" / "mse-noise" / "model.pt", weights_only=True)["card"]
    assert card["recipe"] == "cpu-octaves" and card["noise"] == "octaves"


def test_train_zoo_refuses_unknown_models(tmp_path):
    result = _run(tmp_path, "train", "--only", "mse-noise,best-ever")
    assert result.returncode != 0 and "unknown model(s) best-ever" in result.stderr
