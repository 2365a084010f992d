"""Shared fixtures: tiny random-initialised model files and synthetic audio files.

Nothing here reads ../shared or the network: a fresh clone runs these tests.
The models are real model files (``zoo.save_model``) with 8 hidden channels, so
the latent is still the paper's 128 x 16 x 16 but the networks cost milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner, Result

from melcodec import bitstream, entropy, frontend, zoo
from melcodec.cli import cli
from melcodec.codec import Codec
from melcodec.melconfig import MEL, TILE_FRAMES
from melcodec.model import ArchConfig, Autoencoder

TESTS = Path(__file__).resolve().parent
EXAMPLE_FLAC = TESTS.parent / "examples" / "chipdisko-excerpt.flac"

TINY_NAME = "tiny-test"
OTHER_NAME = "tiny-other"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Small tensors on a busy 2-core machine: intra-op threads mostly wait for each
    # other. Restored at the end of the session.
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def invoke(*args, env: dict | None = None, input: bytes | None = None) -> Result:
    """melcodec's command line as a user meets it: click's standalone mode, so user
    errors become one line on stderr and an exit code (``melcodec.cli.Group``).
    ``input`` is standard input."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)


def run_cli(*args, env: dict | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command."""
    result = invoke(*args, env=env)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("melcodec: error:"), err
    for word in words:
        assert word in lines[0], err


def make_header(tiles: int, name: str = "tiny-ünïcode", **changes) -> bitstream.Header:
    """A consistent header of ``tiles`` tiles: 44.1 kHz source, lengths that agree."""
    num_samples = tiles * 66560  # 256 hops of 260 samples per tile
    fields = dict(
        model_name=name,
        model_sha256=bytes(range(32)),
        prob_model_id=1,
        **MEL.to_dict(),
        tile_frames=TILE_FRAMES,
        source_sample_rate=44100,
        source_num_samples=num_samples * 441 // 160,
        num_samples=num_samples,
        num_tiles=tiles,
        level_spans=16,
    )
    fields.update(changes)
    return bitstream.Header(**fields)


def synth(num_samples: int, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A deterministic music-like test signal ``[samples, channels]`` in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / rate
    out = np.empty((num_samples, channels), dtype=np.float32)
    for c in range(channels):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(0.25 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in (1, 2, 3))
        # A slow amplitude envelope and a little noise, so tiles differ.
        env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t + c)
        out[:, c] = env * tone + 0.02 * rng.standard_normal(num_samples)
    return np.clip(out, -1, 1)


def write_synth(
    path: Path,
    seconds: float,
    rate: int = 16000,
    channels: int = 1,
    seed: int = 0,
    subtype: str | None = None,
    samples: int | None = None,
) -> Path:
    """:func:`synth` written to ``path`` (format from the extension; folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = samples if samples is not None else int(round(seconds * rate))
    sf.write(str(path), synth(n, rate, channels, seed), rate, subtype=subtype)
    return path


def _tiny_net(seed: int) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder(ArchConfig(channels=8)).eval()


def _static_table(net: Autoencoder) -> torch.Tensor:
    """A static-bernoulli table from the net's own bits on a few synthetic tiles."""
    scaled = []
    for seed in range(4):
        wave = torch.from_numpy(synth(16000 * 9, 16000, seed=100 + seed)[:, 0])
        scaled.append(frontend.analyse(wave).scaled)
    scaled = torch.cat(scaled)
    bits = net.encode_bits(scaled.unsqueeze(1))
    return entropy.table_from_counts(bits.sum(0).to(torch.int64), len(bits))


@pytest.fixture(autouse=True)
def _clip_cache(tmp_path, monkeypatch) -> Path:
    """Training-clip caches go to this test's own folder, never to ~/.cache."""
    folder = tmp_path / "clip-cache"
    monkeypatch.setenv("MELCODEC_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A folder with ``tiny-test.pt`` (with a static-bernoulli table) and ``tiny-other.pt``.

    The files are named after the models, so MELCODEC_MODELS=<folder> finds them by name.
    """
    folder = tmp_path_factory.mktemp("models")
    saved = torch.random.get_rng_state()
    try:
        net = _tiny_net(1234)
        zoo.save_model(
            folder / f"{TINY_NAME}.pt",
            net,
            card={"name": TINY_NAME, "loss": "none", "data": "random-init"},
            recipe={},
            probability={"static_bernoulli": _static_table(net)},
        )
        zoo.save_model(
            folder / f"{OTHER_NAME}.pt",
            _tiny_net(4321),
            card={"name": OTHER_NAME, "loss": "none", "data": "random-init"},
            recipe={},
        )
    finally:
        torch.random.set_rng_state(saved)
    return folder


@pytest.fixture(scope="session")
def tiny_model_path(models_dir) -> Path:
    return models_dir / f"{TINY_NAME}.pt"


@pytest.fixture(scope="session")
def other_model_path(models_dir) -> Path:
    return models_dir / f"{OTHER_NAME}.pt"


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_path) -> zoo.LoadedModel:
    return zoo.load_model(tiny_model_path)


@pytest.fixture(scope="session")
def other_loaded(other_model_path) -> zoo.LoadedModel:
    return zoo.load_model(other_model_path)


@pytest.fixture
def codec(tiny_loaded) -> Codec:
    """The tiny model with its best probability model (static-bernoulli, id 1)."""
    return Codec(tiny_loaded)


@pytest.fixture
def uniform_codec(tiny_loaded) -> Codec:
    """The tiny model with the uniform probability model (id 0, raw bits)."""
    return Codec(tiny_loaded, prob_model_id=0)


@pytest.fixture
def make_audio(tmp_path):
    """``make_audio(name, seconds=1.0, rate=16000, channels=1, ...)`` -> path of a new file.

    ``name`` may contain folders (created). The format follows the extension
    (.wav, .flac, .ogg); ``samples`` overrides ``seconds``.
    """

    def make(
        name: str,
        seconds: float = 1.0,
        rate: int = 16000,
        channels: int = 1,
        samples: int | None = None,
        seed: int = 0,
        subtype: str | None = None,
        root: Path | None = None,
    ) -> Path:
        return write_synth(
            (root or tmp_path) / name, seconds, rate, channels, seed, subtype, samples
        )

    return make


@pytest.fixture
def two_clips(make_audio, tmp_path) -> Path:
    """A folder with a 4.3-s 44.1-kHz stereo WAV and a 2-s 22.05-kHz mono FLAC."""
    folder = tmp_path / "clips"
    make_audio("a.wav", seconds=4.3, rate=44100, channels=2, root=folder, seed=1)
    make_audio("b.flac", seconds=2.0, rate=22050, root=folder, seed=2)
    return folder
