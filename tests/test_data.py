"""Tests for melcodec.data: noise images, clip tiles, and reading a folder of audio.

Batches are addressed by (seed, step, row of the global batch): a DDP rank r with
local batch b draws rows r*b .. r*b+b-1, so ranks differ and together draw what one
process would.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_synth

from melcodec import data, frontend
from melcodec.errors import UsageError

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------
# NoiseImages
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", data.NOISE_KINDS)
@pytest.mark.parametrize("size", [0, 7])
def test_noise_batches_are_deterministic(size, kind):
    a = data.NoiseImages(size, 3, CPU, kind).batch(5, 2, 2, 64)
    b = data.NoiseImages(size, 3, CPU, kind).batch(5, 2, 2, 64)
    assert a.shape == (2, 1, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", data.NOISE_KINDS)
@pytest.mark.parametrize("size", [0, 1000])
def test_noise_ranks_share_one_global_batch(size, kind):
    source = data.NoiseImages(size, 0, CPU, kind)
    whole = source.batch(4, 0, 8, 32)
    rank0, rank1 = source.batch(4, 0, 4, 32), source.batch(4, 4, 4, 32)
    assert torch.equal(torch.cat([rank0, rank1]), whole)
    assert not torch.equal(rank0, rank1)


def test_noise_differs_across_steps_rows_and_seeds():
    source = data.NoiseImages(0, 0, CPU)
    first = source.batch(0, 0, 4, 32)
    assert not torch.equal(first, source.batch(1, 0, 4, 32))
    assert not torch.equal(first, data.NoiseImages(0, 1, CPU).batch(0, 0, 4, 32))
    flat = first.flatten(1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(4) for j in range(i))


@pytest.mark.parametrize("size", [0, 5])
def test_noise_is_uniform_in_unit_interval(size):
    x = data.NoiseImages(size, 0, CPU).batch(0, 0, 16, 64)
    assert x.min() >= 0 and x.max() <= 1
    assert abs(float(x.mean()) - 0.5) < 0.01 and abs(float(x.var()) - 1 / 12) < 0.002


def _coarse_share(x: torch.Tensor) -> float:
    """Share of each image's variance held by its 8x8 block means."""
    blocks = torch.nn.functional.avg_pool2d(x, 8)
    return float((blocks.var(dim=(2, 3)) / x.var(dim=(2, 3))).mean())


def test_octave_noise_spans_the_unit_interval_with_energy_at_coarse_scales():
    x = data.NoiseImages(0, 0, CPU, "octaves").batch(0, 0, 8, 128)
    flat = x.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(8))
    assert torch.allclose(flat.max(1).values, torch.ones(8))
    uniform = data.NoiseImages(0, 0, CPU).batch(0, 0, 8, 128)
    # i.i.d. pixels keep 1/64 of their variance in 8x8 means; music keeps most of it.
    assert _coarse_share(uniform) < 0.03
    assert _coarse_share(x) > 0.3


def _tilt(x: torch.Tensor) -> torch.Tensor:
    """log10 of each image's step energy down the rows over that along the columns."""
    rows = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
    cols = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean(dim=(1, 2, 3))
    return (rows / cols).log10()


def test_aniso_noise_has_streaks_both_ways_and_octaves_none():
    x = data.NoiseImages(0, 0, CPU, "aniso").batch(0, 0, 16, 128)
    flat = x.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(16))
    assert torch.allclose(flat.max(1).values, torch.ones(16))
    assert _coarse_share(x) > 0.2
    tilt = _tilt(x)
    # Ten times more change one way than the other, in both orientations.
    assert tilt.max() > 1 and tilt.min() < -1
    assert _tilt(data.NoiseImages(0, 0, CPU, "octaves").batch(0, 0, 16, 128)).abs().max() < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_aniso_noise_on_a_gpu_never_waits_for_it():
    # The octaves' shapes come from a CPU generator: reading device draws would
    # stall every training step 6 times an image.
    source = data.NoiseImages(0, 0, torch.device("cuda"), "aniso")
    torch.cuda.set_sync_debug_mode("error")
    try:
        x = source.batch(0, 0, 4, 64)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.shape == (4, 1, 64, 64) and x.device.type == "cuda"


def test_unknown_noise_kind_is_refused():
    with pytest.raises(ValueError, match="noise kind"):
        data.NoiseImages(0, 0, CPU, "pink")


def test_fixed_noise_set_repeats_n_images():
    n = 3
    source = data.NoiseImages(n, 0, CPU)
    images = torch.cat([source.batch(step, 0, 4, 16) for step in range(12)]).flatten(1)
    distinct = torch.unique(images, dim=0)
    assert len(distinct) == n
    # Fresh noise (size 0) never repeats.
    fresh = torch.cat([data.NoiseImages(0, 0, CPU).batch(s, 0, 4, 16) for s in range(12)])
    assert len(torch.unique(fresh.flatten(1), dim=0)) == 48


# Pixel (0, 1) of rows 0-3 of step 3 of a 5-image set, seeds 0 and 1: which images a
# step draws and what each image is follow the seed, and are part of a recipe.
PINNED_SET = {
    ("uniform", 0): [0.644724, 0.644724, 0.020683, 0.181446],
    ("uniform", 1): [0.915048, 0.554229, 0.554229, 0.554229],
    ("octaves", 0): [0.586789, 0.586789, 0.28197, 0.979974],
    ("octaves", 1): [0.556801, 0.186526, 0.186526, 0.186526],
    ("aniso", 0): [0.264088, 0.264088, 0.340292, 0.471955],
    ("aniso", 1): [0.65, 0.42338, 0.42338, 0.42338],
}


@pytest.mark.parametrize("kind, seed", sorted(PINNED_SET))
def test_fixed_noise_sets_follow_their_seed_and_stay_as_released(kind, seed):
    x = data.NoiseImages(5, seed, CPU, kind).batch(3, 0, 4, 64)
    assert x[:, 0, 0, 1].tolist() == pytest.approx(PINNED_SET[kind, seed], abs=1e-6)


# ---------------------------------------------------------------------------
# ClipTiles
# ---------------------------------------------------------------------------


def numbered_tiles(count: int) -> torch.Tensor:
    """Tiles whose every pixel value is unique: tile i pixel (a, b) = i*65536 + a*256 + b."""
    return torch.arange(count * 256 * 256, dtype=torch.float64).reshape(count, 1, 256, 256)


@pytest.mark.parametrize("crop", [64, 128, 256])
def test_clip_tiles_crops_are_windows_of_the_tiles(crop):
    tiles = numbered_tiles(5)
    x = data.ClipTiles(tiles, 0, CPU).batch(3, 0, 6, crop)
    assert x.shape == (6, 1, crop, crop) and x.dtype == torch.float32
    for row in x.to(torch.float64):
        i, rest = divmod(int(row[0, 0, 0]), 256 * 256)
        a, b = divmod(rest, 256)
        assert a + crop <= 256 and b + crop <= 256
        assert torch.equal(row, tiles[i, :, a : a + crop, b : b + crop])


def test_clip_tiles_are_deterministic_and_ranks_share_one_global_batch():
    tiles = numbered_tiles(9)
    source = data.ClipTiles(tiles, 1, CPU)
    whole = source.batch(2, 0, 6, 64)
    assert torch.equal(whole, data.ClipTiles(tiles, 1, CPU).batch(2, 0, 6, 64))
    parts = [source.batch(2, 0, 3, 64), source.batch(2, 3, 3, 64)]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(whole, source.batch(3, 0, 6, 64))


# ---------------------------------------------------------------------------
# load_clips: audio folder -> [n, 1, 256, 256] scaled tiles, cached
# ---------------------------------------------------------------------------

RATE = 44100


def write_tones(path, seconds: float = 10.0) -> None:
    write_synth(path, seconds, RATE, 2)


@pytest.fixture
def music_folder(tmp_path):
    """10 s of stereo tones (2 clips), 10 s of stereo silence (2 silent clips), and a
    text file without an extension (an audio candidate that libsndfile cannot read)."""
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    write_tones(folder / "tones.wav")
    sf.write(str(folder / "sub" / "silence.flac"), np.zeros((10 * RATE, 2)), RATE)
    (folder / "LICENSE").write_text("not audio\n")
    return folder


def test_load_clips_tiles_and_counts(music_folder):
    clips, stats = data.load_clips(music_folder)
    assert clips.shape == (2, 1, 256, 256)
    assert clips.min() >= 0 and clips.max() <= 1
    # Each tile is scaled to its own range: both ends are reached.
    assert clips.flatten(1).amin(1).tolist() == [0, 0]
    assert clips.flatten(1).amax(1).tolist() == [1, 1]
    assert stats["files_found"] == 3
    assert stats["files_used"] == 1
    assert stats["files_unreadable"] == 1
    assert stats["clips_used"] == 2
    assert stats["clips_silent"] == 2
    # The two clips are the first and second 4.208 s of the same file: not the same tile.
    assert not torch.equal(clips[0], clips[1])


def test_load_clips_matches_the_codec_front_end(music_folder):
    """A training clip is exactly what the codec's analysis makes of those samples."""
    clips, _ = data.load_clips(music_folder)
    wave, _, _ = frontend.load(music_folder / "tones.wav")
    first = frontend.analyse(wave[: data.CLIP_SAMPLES]).scaled
    assert first.shape == (1, 256, 256)
    torch.testing.assert_close(clips[0, 0].float(), first[0], atol=1e-3, rtol=0)


def test_load_clips_uses_its_cache(music_folder, monkeypatch, _clip_cache):
    clips, stats = data.load_clips(music_folder)
    caches = list(_clip_cache.glob("clips-*.pt"))
    assert len(caches) == 1
    assert not list(music_folder.glob("*.pt")), "the data folder must stay untouched"

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although the cache holds it")

    monkeypatch.setattr(frontend, "load", no_decoding)
    again, stats_again = data.load_clips(music_folder)
    assert torch.equal(again, clips) and stats_again == stats


def test_load_clips_cache_follows_the_files(music_folder, monkeypatch):
    data.load_clips(music_folder)
    write_tones(music_folder / "more.wav", seconds=5.0)  # one more clip
    calls = []
    real_load = frontend.load

    def counting_load(path):
        calls.append(path.name)
        return real_load(path)

    monkeypatch.setattr(frontend, "load", counting_load)
    clips, stats = data.load_clips(music_folder)
    assert "more.wav" in calls
    assert clips.shape[0] == 3 and stats["files_used"] == 2


def test_load_clips_explicit_cache_path(music_folder, tmp_path, _clip_cache):
    cache = tmp_path / "clips.pt"
    clips, _ = data.load_clips(music_folder, cache=cache)
    assert cache.is_file()
    assert not _clip_cache.exists() or not list(_clip_cache.glob("clips-*.pt"))
    assert torch.equal(torch.load(cache, weights_only=True)["tiles"], clips)


def test_load_clips_reports_progress(music_folder):
    seen = []
    data.load_clips(music_folder, progress=lambda done, total: seen.append((done, total)))
    assert seen and all(total == 3 for _, total in seen)


@pytest.mark.parametrize("content", ["none", "text", "silence"])
def test_load_clips_without_usable_audio(tmp_path, content):
    folder = tmp_path / "data"
    folder.mkdir()
    if content == "text":
        (folder / "notes.txt").write_text("hello\n")
    elif content == "silence":
        sf.write(str(folder / "quiet.wav"), np.zeros(5 * RATE), RATE)
    with pytest.raises(UsageError, match="no (usable )?audio"):
        data.load_clips(folder)
    assert not list(folder.glob(".melcodec-clips-*.pt"))


def test_find_audio_skips_hidden_paths_and_non_audio(tmp_path):
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a").mkdir()
    for name in ["a/x.WAV", "a/y.ogg", ".hidden/z.wav", "a/.w.flac", "a/notes.txt", "bare"]:
        (tmp_path / name).write_bytes(b"")
    names = [p.relative_to(tmp_path).as_posix() for p in data.find_audio(tmp_path)]
    assert names == ["a/x.WAV", "a/y.ogg"]
    bare = [p.relative_to(tmp_path).as_posix() for p in data.find_audio(tmp_path, bare=True)]
    assert bare == ["a/x.WAV", "a/y.ogg", "bare"]


@pytest.fixture
def mixed_folder(tmp_path):
    """Files in sorted order: too short for a clip, two unreadable candidates, 5 s of
    silence then 10 s of tones (1 silent clip, 2 loud), and 10 s of tones (2 loud)."""
    folder = tmp_path / "mixed"
    write_synth(folder / "a_short.wav", 2.0, RATE)
    (folder / "b_bare").write_text("not audio\n")
    (folder / "c_bad.wav").write_bytes(b"RIFF....WAVE")
    tones = write_synth(tmp_path / "tones.wav", 10.0, RATE)
    sf.write(
        str(folder / "d_mixed.wav"), np.concatenate([np.zeros(5 * RATE), sf.read(tones)[0]]), RATE
    )
    write_synth(folder / "e_tones.wav", 10.0, RATE, seed=1)
    return folder


def test_load_clips_counts_every_kind_of_file(mixed_folder):
    clips, stats = data.load_clips(mixed_folder)
    hours = round(4 * data.CLIP_SAMPLES / 16000 / 3600, 4)  # 0.0187: stored to 3 places
    assert stats == {
        "files_found": 5,
        "files_used": 2,
        "files_unreadable": 2,
        "clips_used": 4,
        "clips_silent": 1,
        "hours": round(hours, 3),
    }
    assert clips.shape == (4, 1, 256, 256) and clips.dtype == torch.float16


def test_load_clips_refuses_a_missing_folder(tmp_path):
    with pytest.raises(UsageError, match="data folder does not exist: .*nowhere"):
        data.load_clips(tmp_path / "nowhere")


def test_clip_cache_is_named_by_its_key_and_may_be_nested(music_folder, tmp_path, _clip_cache):
    data.load_clips(music_folder)
    (cache,) = _clip_cache.iterdir()
    assert re.fullmatch(r"clips-[0-9a-f]{16}\.pt", cache.name)
    nested = tmp_path / "a" / "b" / "clips.pt"
    data.load_clips(music_folder, cache=nested)
    assert nested.is_file()


def test_a_planted_cache_runs_no_code_and_is_rebuilt(music_folder, tmp_path):
    cache = tmp_path / "clips.pt"
    clips, _ = data.load_clips(music_folder, cache=cache)
    marker = tmp_path / "ran"
    cache.write_bytes(pickle.dumps(_Planted(str(marker)), protocol=2))
    again, _ = data.load_clips(music_folder, cache=cache)
    assert not marker.exists(), "loading the cache ran code"
    assert torch.equal(again, clips)
    assert torch.equal(torch.load(cache, weights_only=True)["tiles"], clips)


def test_a_cache_of_another_shape_is_rebuilt(music_folder, tmp_path):
    cache = tmp_path / "clips.pt"
    torch.save(torch.zeros(3), cache)  # loads under weights_only, but is not a clip cache
    clips, _ = data.load_clips(music_folder, cache=cache)
    assert clips.shape == (2, 1, 256, 256)
    assert torch.equal(torch.load(cache, weights_only=True)["tiles"], clips)


class _Planted:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MELCODEC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir() == tmp_path / "xdg" / "melcodec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "melcodec"
    monkeypatch.setenv("MELCODEC_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir() == tmp_path / "mine"


# Seed 0, step 0: the crop offsets of a one-tile set and the tile indexes of a 50-tile set.
PINNED_OFFSETS = [(54, 93), (189, 25), (141, 151), (90, 154)]
PINNED_INDEX = [33, 10, 41, 24, 22, 8]


def test_clip_tiles_draw_by_seed_and_step_and_stay_as_released():
    # One tile: every row is that tile, so only the crop offsets can differ.
    one = numbered_tiles(1)
    offsets = {}
    for seed, step in [(0, 0), (0, 1), (1, 0)]:
        x = data.ClipTiles(one, seed, CPU).batch(step, 0, 4, 64).to(torch.int64)
        offsets[seed, step] = [divmod(int(v), 256) for v in x[:, 0, 0, 0]]
    assert offsets[0, 0] != offsets[0, 1] and offsets[0, 0] != offsets[1, 0]
    # The data stream of a recipe is part of what a release reproduces: pinned.
    assert offsets[0, 0] == PINNED_OFFSETS
    many = numbered_tiles(50)
    index = [int(v) // 65536 for v in data.ClipTiles(many, 0, CPU).batch(0, 0, 6, 64)[:, 0, 0, 0]]
    assert index == PINNED_INDEX
    assert index != [
        int(v) // 65536 for v in data.ClipTiles(many, 1, CPU).batch(0, 0, 6, 64)[:, 0, 0, 0]
    ]


def test_clip_tiles_land_on_the_asked_device():
    x = data.ClipTiles(numbered_tiles(2), 0, torch.device("meta")).batch(0, 0, 2, 64)
    assert x.device.type == "meta"
