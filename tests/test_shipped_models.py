"""Every model file shipped in models/: it loads, codes the bundled example bit-exactly,
decodes at the input's level, is the default where it should be, and has its card in
models/README.md."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_one_line_error, invoke, run_cli

from melcodec import bitstream, frontend, listening, zoo
from melcodec.codec import Codec

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p.stem for p in MODELS.glob("*.pt"))
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chipdisko-excerpt.flac"


@pytest.fixture(scope="module")
def example() -> tuple[np.ndarray, int]:
    data, rate = sf.read(EXAMPLE, dtype="float32", always_2d=True)
    return data[: int(rate * 4.208)], rate


def test_a_default_model_is_shipped():
    assert zoo.DEFAULT_MODEL in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_codes_the_example(name, example):
    model = zoo.load_model(MODELS / f"{name}.pt")
    assert model.name == name and model.card.get("loss") in ("mse", "nlpd", "msssim")
    codec = Codec(model)
    data, rate = example
    blob = codec.encode(data, rate)
    reader = bitstream.Reader(io.BytesIO(blob))
    assert reader.header.model_name == name and reader.header.model_sha256 == model.sha256
    wave = frontend.load(EXAMPLE)[0][: reader.header.num_samples]
    expected = codec.tile_bits(frontend.analyse(wave).scaled)
    decoded = np.stack([codec.read_bits(reader, i)[0] for i in range(len(reader))])
    assert np.array_equal(decoded, expected)
    assert len(blob) < 4096 * len(reader) + 200
    out, out_rate = codec.decode(blob)
    assert out_rate == 16000 and out.numel() == reader.header.num_samples
    assert abs(listening.level_error_db(out, wave)) < 1.0


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_has_its_card_in_models_readme(name):
    text = (MODELS / "README.md").read_text()
    sha = zoo.file_sha256(MODELS / f"{name}.pt").hex()
    assert f"## {name}" in text and sha in text, f"models/README.md lacks {name}'s card or SHA-256"


def test_encode_without_model_uses_the_default(tmp_path, example):
    data, rate = example
    sf.write(tmp_path / "x.wav", data, rate)
    result = invoke("encode", str(tmp_path / "x.wav"), str(tmp_path / "x.mlc"))
    assert result.exit_code == 0, result.output
    header = bitstream.Reader(io.BytesIO((tmp_path / "x.mlc").read_bytes())).header
    default = zoo.load_model(zoo.DEFAULT_MODEL)
    assert header.model_name == zoo.DEFAULT_MODEL and header.model_sha256 == default.sha256


def test_models_readme_lists_no_missing_file():
    text = (MODELS / "README.md").read_text()
    for name in re.findall(r"^## ([a-z0-9-]+)$", text, flags=re.M):
        assert name in SHIPPED, f"models/README.md has a card for {name}, which is not shipped"


def test_weights_are_float32_in_the_network():
    # Half-precision files load into a float32 network (tests/test_tables.py).
    for name in SHIPPED:
        net = zoo.load_model(MODELS / f"{name}.pt").net
        assert all(p.dtype == torch.float32 for p in net.parameters())


def test_models_lists_each_shipped_model_and_marks_the_default():
    result = invoke("models")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    for name in SHIPPED:
        assert name in lines and "kbit/s" in lines[name]
        assert ("*" in lines[name].split("loss=")[0]) == (name == zoo.DEFAULT_MODEL)


def test_sha256sums_lists_every_shipped_model():
    listed = {}
    for line in (MODELS / zoo.SUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    assert set(listed) == {f"{n}.pt" for n in SHIPPED}
    for name, digest in listed.items():
        assert zoo.file_sha256(MODELS / name).hex() == digest, name


def test_an_altered_shipped_model_is_refused_by_its_hash(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    name = f"{zoo.DEFAULT_MODEL}.pt"
    data = bytearray((MODELS / name).read_bytes())
    (folder / zoo.SUMS).write_text((MODELS / zoo.SUMS).read_text())
    (folder / name).write_bytes(bytes(data))
    assert zoo.load_model(folder / name).name == zoo.DEFAULT_MODEL
    data[len(data) // 2] ^= 0x01  # one bit inside the weights: torch would load it
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(zoo.ModelError, match="does not match its SHA-256 .*corrupted or altered"):
        zoo.load_model(folder / name)
    code, _, err = run_cli("encode", EXAMPLE, tmp_path / "x.mlc", "--model", folder / name)
    assert_one_line_error(code, err, "corrupted or altered")
    assert not (tmp_path / "x.mlc").exists()


def _planted(tmp_path: Path, key: str) -> tuple[Path, Path]:
    """A model file whose ``key`` unpickles by running code (it touches the marker)."""
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "planted.pt"
    torch.save({"format": zoo.FORMAT, key: Planted()}, bad)
    return bad, marker


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    bad, marker = _planted(tmp_path, "weights")
    code, _, err = run_cli("encode", EXAMPLE, tmp_path / "x.mlc", "--model", bad)
    assert_one_line_error(code, err, "not a melcodec model file")
    assert not marker.exists()
    assert "Warning" not in err


@pytest.mark.parametrize("name", SHIPPED)
def test_the_torch_free_card_reader_reads_what_torch_loads(name):
    from melcodec import modelfiles

    blob = modelfiles.read_file(MODELS / f"{name}.pt")
    loaded = zoo.load_model(name)
    assert blob["card"] == loaded.card and blob["sha256"] == loaded.sha256
    assert blob["recipe"] == loaded.recipe and blob["arch"] == loaded.net.cfg.to_dict()


def test_the_card_reader_refuses_a_pickle_that_runs_code(tmp_path):
    from melcodec import modelfiles

    bad, marker = _planted(tmp_path, "card")
    with pytest.raises(zoo.ModelError, match="not a melcodec model file"):
        modelfiles.read_file(bad)
    assert not marker.exists()
    (tmp_path / "models").mkdir()
    bad.rename(tmp_path / "models" / "planted.pt")
    result = invoke("models", env={"MELCODEC_MODELS": str(tmp_path / "models")})
    assert "planted: not a melcodec model file" in result.stdout and not marker.exists()
