"""The command line: encode, decode, info, folder trees, and one-line errors.

Commands run through conftest's ``invoke`` (click's standalone mode, as the
console script), and once through a real ``python -m melcodec`` subprocess.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import (
    EXAMPLE_FLAC,
    OTHER_NAME,
    TINY_NAME,
    assert_one_line_error,
    invoke,
    make_header,
    run_cli,
)

from melcodec import bitstream
from melcodec.files import encode_file

GL = ["--gl-iters", "1"]


@pytest.fixture(autouse=True)
def _no_user_models(monkeypatch):
    monkeypatch.delenv("MELCODEC_MODELS", raising=False)


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result


def no_leftovers(folder: Path) -> None:
    assert not list(folder.glob(".*.part")), sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------
# Working commands
# ---------------------------------------------------------------------------


def test_encode_info_decode(tmp_path, make_audio, tiny_model_path):
    src = make_audio("in.wav", seconds=5.0, rate=22050, channels=2)
    mlc = tmp_path / "in.mlc"
    ok("encode", src, mlc, "--model", tiny_model_path)
    data = mlc.read_bytes()
    assert data[:4] == b"MLC\x1a"

    text = ok("info", mlc).output
    assert TINY_NAME in text and "tiles" in text

    summary = json.loads(ok("info", mlc, "--json").output)
    assert summary["model"] == TINY_NAME
    assert summary["source_sample_rate"] == 22050
    assert summary["source_samples"] == 5 * 22050
    assert summary["samples_16k"] == 5 * 16000
    assert summary["tiles"] == 2
    assert summary["bytes"] == len(data)

    out = tmp_path / "out.wav"
    ok("decode", mlc, out, "--model", tiny_model_path, *GL)
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 5 * 16000)
    assert info.subtype == "PCM_16"
    no_leftovers(tmp_path)


def test_decode_finds_model_named_in_file(tmp_path, make_audio, tiny_model_path, models_dir):
    mlc = tmp_path / "a.mlc"
    ok("encode", make_audio("a.wav"), mlc, "--model", tiny_model_path)
    out = tmp_path / "a.wav.out.wav"

    # Without MELCODEC_MODELS the model named in the file is not found: refused by name.
    result = invoke("decode", mlc, out, *GL)
    assert result.exit_code != 0
    assert TINY_NAME in result.stderr
    assert not out.exists()

    result = invoke("decode", str(mlc), str(out), *GL, env={"MELCODEC_MODELS": str(models_dir)})
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    assert sf.info(str(out)).frames == 16000


def test_decode_with_wrong_model_refused(tmp_path, make_audio, tiny_model_path, other_model_path):
    mlc = tmp_path / "a.mlc"
    ok("encode", make_audio("a.wav"), mlc, "--model", tiny_model_path)
    out = tmp_path / "b.wav"
    result = invoke("decode", mlc, out, "--model", other_model_path, *GL)
    assert result.exit_code != 0
    assert TINY_NAME in result.stderr and OTHER_NAME in result.stderr
    assert not out.exists()
    no_leftovers(tmp_path)


def test_force(tmp_path, make_audio, tiny_model_path):
    src = make_audio("a.wav", seconds=0.5)
    mlc = tmp_path / "a.mlc"
    mlc.write_bytes(b"keep me")
    result = invoke("encode", src, mlc, "--model", tiny_model_path)
    assert result.exit_code != 0
    assert "exists" in result.stderr and "--force" in result.stderr
    assert mlc.read_bytes() == b"keep me"

    ok("encode", src, mlc, "--model", tiny_model_path, "--force")
    assert mlc.read_bytes()[:4] == b"MLC\x1a"

    out = tmp_path / "a-out.wav"
    out.write_bytes(b"keep me too")
    result = invoke("decode", mlc, out, "--model", tiny_model_path, *GL)
    assert result.exit_code != 0 and "exists" in result.stderr
    assert out.read_bytes() == b"keep me too"
    ok("decode", mlc, out, "--model", tiny_model_path, "--force", *GL)
    assert sf.info(str(out)).frames == 8000
    no_leftovers(tmp_path)


def test_directory_trees(tmp_path, make_audio, tiny_model_path):
    src = tmp_path / "music"
    make_audio("music/top.wav", seconds=0.5, rate=44100, channels=2)
    make_audio("music/albums/one/deep.flac", seconds=0.7, rate=8000)
    (src / "notes.txt").write_text("not audio, not picked up\n")
    encoded = tmp_path / "encoded"  # does not exist yet: created, mirroring the tree
    ok("encode", src, encoded, "--model", tiny_model_path)
    assert sorted(p.relative_to(encoded).as_posix() for p in encoded.rglob("*") if p.is_file()) == [
        "albums/one/deep.mlc",
        "top.mlc",
    ]

    decoded = tmp_path / "decoded"
    ok("decode", encoded, decoded, "--model", tiny_model_path, "--sample-rate", "source", *GL)
    top = sf.info(str(decoded / "top.wav"))
    deep = sf.info(str(decoded / "albums/one/deep.wav"))
    assert (top.samplerate, top.frames) == (44100, 22050)
    assert (deep.samplerate, deep.frames) == (8000, 5600)


def test_sample_rate_source_float_and_flac(tmp_path, tiny_model_path):
    assert EXAMPLE_FLAC.is_file()
    source = sf.info(str(EXAMPLE_FLAC))
    mlc = tmp_path / "clip.mlc"
    ok("encode", EXAMPLE_FLAC, mlc, "--model", tiny_model_path)

    wav = tmp_path / "clip.wav"
    ok("decode", mlc, wav, "--model", tiny_model_path, "--sample-rate", "source", "--float", *GL)
    info = sf.info(str(wav))
    assert (info.samplerate, info.frames, info.channels) == (source.samplerate, source.frames, 1)
    assert (info.format, info.subtype) == ("WAV", "FLOAT")

    flac = tmp_path / "clip.flac"
    ok("decode", mlc, flac, "--model", tiny_model_path, "--sample-rate", "22050", *GL)
    info = sf.info(str(flac))
    assert (info.format, info.subtype, info.samplerate) == ("FLAC", "PCM_16", 22050)
    assert info.frames == -(-source.frames * 22050 // source.samplerate)


# ---------------------------------------------------------------------------
# Errors: one line on stderr, no traceback, nothing written
# ---------------------------------------------------------------------------


def test_encode_missing_file(tmp_path, tiny_model_path):
    target = tmp_path / "out.mlc"
    code, _, err = run_cli("encode", tmp_path / "nope.wav", target, "-m", tiny_model_path)
    assert_one_line_error(code, err, "nope.wav")
    assert not target.exists()
    no_leftovers(tmp_path)


def test_encode_text_file(tmp_path, tiny_model_path):
    text = tmp_path / "readme.txt"
    text.write_text("This is not audio.\n" * 20)
    target = tmp_path / "readme.mlc"
    code, _, err = run_cli("encode", text, target, "-m", tiny_model_path)
    assert_one_line_error(code, err, "readme.txt")
    assert not target.exists()
    no_leftovers(tmp_path)


def test_encode_unreadable_wav(tmp_path, tiny_model_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(os.urandom(5000))
    target = tmp_path / "noise.mlc"
    code, _, err = run_cli("encode", bad, target, "-m", tiny_model_path)
    assert_one_line_error(code, err, "noise.wav")
    assert not target.exists()
    no_leftovers(tmp_path)


def test_encode_output_folder_missing(tmp_path, make_audio, tiny_model_path):
    src = make_audio("a.wav", seconds=0.3)
    target = tmp_path / "missing" / "a.mlc"
    code, _, err = run_cli("encode", src, target, "-m", tiny_model_path)
    assert_one_line_error(code, err, "missing")
    assert not target.parent.exists()
    no_leftovers(tmp_path)


def test_decode_errors(tmp_path, make_audio, tiny_model_path):
    mlc = tmp_path / "a.mlc"
    ok("encode", make_audio("a.wav", seconds=0.3), mlc, "-m", tiny_model_path)
    not_mlc = tmp_path / "text.mlc"
    not_mlc.write_text("hello\n")
    truncated = tmp_path / "short.mlc"
    truncated.write_bytes(mlc.read_bytes()[:-10])
    cases = [
        (tmp_path / "nope.mlc", tmp_path / "o1.wav", "nope.mlc"),
        (not_mlc, tmp_path / "o2.wav", "not a melcodec"),
        (truncated, tmp_path / "o3.wav", "truncated"),
        (mlc, tmp_path / "missing" / "o4.wav", "missing"),
        (mlc, tmp_path / "o5.mp3", ".wav or .flac"),
    ]
    for source, target, word in cases:
        code, _, err = run_cli("decode", source, target, "-m", tiny_model_path, *GL)
        assert_one_line_error(code, err, word)
        assert not target.exists()
    no_leftovers(tmp_path)


def test_info_errors(tmp_path):
    code, out, err = run_cli("info", tmp_path / "nope.mlc")
    assert_one_line_error(code, err, "nope.mlc")
    assert out == ""
    junk = tmp_path / "junk.mlc"
    junk.write_bytes(os.urandom(300))
    code, out, err = run_cli("info", junk)
    assert_one_line_error(code, err, "not a melcodec")


def test_bad_sample_rate_option(tmp_path, make_audio, tiny_model_path):
    mlc = tmp_path / "a.mlc"
    ok("encode", make_audio("a.wav", seconds=0.3), mlc, "-m", tiny_model_path)
    for rate in ("fast", "100"):
        code, _, err = run_cli("decode", mlc, tmp_path / "o.wav", "--sample-rate", rate)
        assert_one_line_error(code, err, "--sample-rate")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize(
    "kind, word",
    [
        ("rate-4000", "sample rate"),
        ("empty", "no samples"),
        ("nan", "NaN"),
        ("model-missing", "model file not found"),
        ("model-not-a-model", "not a melcodec model"),
        ("empty-folder", "no input files"),
    ],
)
def test_more_bad_inputs(tmp_path, make_audio, tiny_model_path, kind, word):
    model = tiny_model_path
    if kind == "rate-4000":
        src = make_audio("in.wav", seconds=0.5, rate=4000)
    elif kind == "empty":
        src = tmp_path / "in.wav"
        sf.write(str(src), np.zeros((0, 1), dtype=np.float32), 16000)
    elif kind == "nan":
        src = tmp_path / "in.wav"
        wave = np.zeros(4000, dtype=np.float32)
        wave[100] = np.nan
        sf.write(str(src), wave, 16000, subtype="FLOAT")
    elif kind == "empty-folder":
        src = tmp_path / "in"
        src.mkdir()
    else:
        src = make_audio("in.wav", seconds=0.5)
        model = tmp_path / "model.pt"
        if kind == "model-not-a-model":
            model.write_text("not a model")
    target = tmp_path / "out.mlc"
    code, _, err = run_cli("encode", src, target, "--model", model)
    assert_one_line_error(code, err, word)
    assert not target.exists()
    no_leftovers(tmp_path)


def test_info_on_degenerate_header(tmp_path):
    # A well-formed container (valid CRCs) whose header says 0 tiles / 0 samples, or a
    # mel rate of 0 Hz: ``info`` refuses it in one line, not crash.
    base = make_header(1, name="x", num_samples=0, source_num_samples=0, num_tiles=0)
    zero_rate = dataclasses.replace(base, sample_rate=0, num_samples=100, num_tiles=1)
    cases = [(base, []), (zero_rate, [bitstream.Chunk(0.0, 1.0, 0, bytes(4096))])]
    for n, (header, chunks) in enumerate(cases):
        path = tmp_path / f"degenerate{n}.mlc"
        path.write_bytes(bitstream.pack_unchecked(header, chunks))
        code, out, err = run_cli("info", path)
        assert_one_line_error(code, err, "invalid header")


def test_tree_with_one_bad_file_keeps_going(tmp_path, make_audio, tiny_model_path):
    src = tmp_path / "in"
    make_audio("in/a.wav", seconds=0.3)
    make_audio("in/sub/b.wav", seconds=0.3)
    (src / "sub" / "c.wav").write_bytes(b"RIFF but not really a wav file")
    result = invoke("encode", src, tmp_path / "out", "--model", tiny_model_path)
    assert result.exit_code == 1
    assert "c.wav" in result.stderr and "2 of 3" in result.stderr
    assert (tmp_path / "out" / "a.mlc").is_file()
    assert (tmp_path / "out" / "sub" / "b.mlc").is_file()
    assert not (tmp_path / "out" / "sub" / "c.mlc").exists()
    no_leftovers(tmp_path / "out" / "sub")


def test_an_interrupted_folder_run_resumes_where_it_stopped(tmp_path, make_audio, tiny_model_path):
    for name in ("a", "b", "sub/c"):
        make_audio(f"in/{name}.wav", seconds=0.3)
    out = tmp_path / "out"
    ok("encode", tmp_path / "in", out, "--model", tiny_model_path)
    # As if the run had been killed before c: outputs are atomic, so a and b are whole.
    (out / "sub" / "c.mlc").unlink()
    (out / "a.mlc").write_bytes(b"finished before")
    result = invoke("encode", tmp_path / "in", out, "--model", tiny_model_path)
    assert result.exit_code == 0, result.stderr
    assert "encoded 1 of 1 files; 2 already done, skipped" in result.stderr
    assert (out / "sub" / "c.mlc").is_file() and (out / "a.mlc").read_bytes() == b"finished before"
    result = invoke("encode", tmp_path / "in", out, "--model", tiny_model_path, "--force")
    assert result.exit_code == 0 and "encoded 3 of 3 files" in result.stderr
    assert (out / "a.mlc").read_bytes()[:4] == b"MLC\x1a"
    ok("decode", out, tmp_path / "dec", "--model", tiny_model_path, *GL)
    result = invoke("decode", out, tmp_path / "dec", "--model", tiny_model_path, *GL)
    assert result.exit_code == 0 and "decoded 0 of 0 files; 3 already done" in result.stderr


def test_main_success_exits_zero(tmp_path, make_audio, tiny_model_path):
    mlc = tmp_path / "a.mlc"
    code, out, err = run_cli("encode", make_audio("a.wav"), mlc, "-m", tiny_model_path)
    assert code == 0 and err == "" and mlc.is_file()


# ---------------------------------------------------------------------------
# A real process
# ---------------------------------------------------------------------------


def test_subprocess_round_trip(tmp_path, make_audio, tiny_model_path):
    src = make_audio("in.flac", seconds=1.5, rate=48000, channels=2)
    mlc, out = tmp_path / "in.mlc", tmp_path / "out.wav"
    env = {k: v for k, v in os.environ.items() if k != "MELCODEC_MODELS"}
    env["OMP_NUM_THREADS"] = "1"

    def melcodec(*args):
        return subprocess.run(
            [sys.executable, "-m", "melcodec", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    enc = melcodec("encode", src, mlc, "--model", tiny_model_path)
    assert enc.returncode == 0, enc.stderr
    dec = melcodec("decode", mlc, out, "--model", tiny_model_path, "--sample-rate", "source", *GL)
    assert dec.returncode == 0, dec.stderr
    info = sf.info(str(out))
    assert (info.samplerate, info.frames) == (48000, 72000)
    shown = melcodec("info", mlc, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["source_samples"] == 72000

    # And a user error from a real process: exit 1, one line, no traceback.
    bad = melcodec("decode", src, tmp_path / "x.wav", "--model", tiny_model_path)
    assert bad.returncode == 1
    assert_one_line_error(bad.returncode, bad.stderr, "not a melcodec")
    assert not (tmp_path / "x.wav").exists()


def test_outputs_get_ordinary_file_permissions(tmp_path, tiny_model_path, make_audio):
    """Written through a temporary file, but not left private like mkstemp's 0600."""
    source = make_audio("perm.wav", seconds=0.5)
    target = tmp_path / "perm.mlc"
    encode_file(source, target, str(tiny_model_path))
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_output_that_is_the_input_is_refused_even_with_force(tmp_path, make_audio, how):
    src = make_audio("song.wav")
    before = src.read_bytes()
    target = src
    if how == "symlink":
        target = tmp_path / "link.wav"
        target.symlink_to(src)
    elif how == "hard link":
        target = tmp_path / "hard.wav"
        os.link(src, target)
    code, _, err = run_cli("encode", src, target, "--force")
    assert_one_line_error(code, err, "output is the input")
    assert src.read_bytes() == before
    mlc = tmp_path / "x.mlc"
    mlc.write_bytes(b"MLC\x1a")
    code, _, err = run_cli("decode", mlc, mlc, "--force")
    assert_one_line_error(code, err, "output is the input")


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(
    tmp_path, make_audio, tiny_model_path
):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    target = tmp_path / "out.mlc"
    stale = tmp_path / f".out.mlc.{dead.stdout.strip()}.k1ll.part"
    alive = tmp_path / f".out.mlc.{os.getppid()}.busy.part"  # another writer, still running
    stale.write_bytes(b"half a file")
    alive.write_bytes(b"being written")
    ok("encode", make_audio("a.wav"), target, "--model", tiny_model_path)
    assert target.is_file() and not stale.exists() and alive.exists()


def test_an_unwritable_output_folder_is_found_before_the_work(
    tmp_path, make_audio, tiny_model_path, monkeypatch
):
    from melcodec import files

    src = make_audio("a.wav")
    # Tests run as root, for whom no folder is unwritable: stand in for the OS's answer.
    monkeypatch.setattr(files.os, "access", lambda path, mode: Path(path) != tmp_path / "ro")
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(files.Codec, "encode_blocks", lambda *a: pytest.fail("work started"))
    code, _, err = run_cli("encode", src, tmp_path / "ro" / "a.mlc", "-m", tiny_model_path)
    assert_one_line_error(code, err, "output folder is not writable")


def test_quick_commands_do_not_import_torch():
    golden = Path(__file__).parent / "golden" / "v2-default-static.mlc"
    script = (
        "import sys\n"
        "from melcodec.cli import cli\n"
        "quick = (['--help'], ['--version'], ['info', sys.argv[1]], ['models'])\n"
        "for args in quick:\n"
        "    try:\n"
        "        cli.main(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(golden)], capture_output=True, text=True, check=True
    ).stdout
    assert "probability_model" in out  # info ran
    assert "msssim-music    *" in out  # models ran, with its figures
    assert out.strip().endswith("torch imported: False"), out


def test_pipes_encode_and_decode_through_standard_streams(tmp_path, make_audio, tiny_model_path):
    src = make_audio("a.wav", seconds=1.5, rate=22050)
    reference = tmp_path / "a.mlc"
    ok("encode", src, reference, "-m", tiny_model_path)
    piped = invoke("encode", "-", "-", "-m", str(tiny_model_path), input=src.read_bytes())
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout_bytes == reference.read_bytes()
    for fmt, name in (("wav", "WAV"), ("flac", "FLAC")):
        args = ["decode", "-", "-", "-m", tiny_model_path, "--format", fmt, *GL]
        out = invoke(*args, input=reference.read_bytes())
        assert out.exit_code == 0, out.stderr
        info = sf.info(io.BytesIO(out.stdout_bytes))
        assert (info.format, info.samplerate, info.frames) == (name, 16000, 24000)
    ok("decode", reference, tmp_path / "b.wav", "-m", tiny_model_path, *GL)
    assert out.stdout_bytes[:4] == b"fLaC"
    wav = invoke("decode", "-", "-", "-m", str(tiny_model_path), *GL, input=reference.read_bytes())
    assert wav.stdout_bytes == (tmp_path / "b.wav").read_bytes()
    bad = invoke("encode", "-", "-", "-m", str(tiny_model_path), input=b"not audio")
    assert bad.exit_code == 1 and "standard input" in bad.stderr and not bad.stdout_bytes


# A real `melcodec encode` process whose final write stalls half-way, so that a
# signal lands exactly there. Only the write is slowed; the rest is the real CLI.
_STALLING_ENCODE = """
import signal, sys, time
from melcodec import cli, files

# As in a terminal: a shell that starts a job in the background makes it ignore
# Ctrl-C, and Python then installs no handler.
signal.signal(signal.SIGINT, signal.default_int_handler)

real = files.atomic_write

def stalling(path, write):
    class Half:
        def __init__(self, fh):
            self.fh = fh
        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            print("stalled", flush=True)
            time.sleep(120)
    real(path, lambda fh: write(Half(fh)))

files.atomic_write = stalling
cli.main(sys.argv[1:])
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_a_signal_during_the_final_write_leaves_no_output(
    tmp_path, make_audio, tiny_model_path, signal_name
):
    import signal

    src, target = make_audio("a.wav"), tmp_path / "out" / "a.mlc"
    target.parent.mkdir()
    args = ["encode", str(src), str(target), "--model", str(tiny_model_path)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _STALLING_ENCODE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "stalled"
        assert len(list(target.parent.glob(".a.mlc.*.part"))) == 1
        proc.send_signal(getattr(signal, signal_name))
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert not target.exists()
    left = list(target.parent.glob(".a.mlc.*.part"))
    if signal_name == "SIGINT":
        # Ctrl-C: the temporary file is removed at once, one line, exit 130.
        assert proc.returncode == 130 and not left
        assert err.strip() == "melcodec: interrupted"
    else:
        # Nothing runs after SIGKILL: the half-written file stays until the next write.
        assert proc.returncode == -signal.SIGKILL and len(left) == 1
        ok("encode", src, target, "--model", tiny_model_path)
        assert target.is_file() and not list(target.parent.glob(".a.mlc.*.part"))
