"""Long files in bounded memory: every stage that runs in pieces gives what it
gives on the whole signal, whatever the pieces.

Each stage's block is shrunk here (monkeypatch) so that a few seconds of audio
cross many block joins; one block as large as the signal is whole-file
processing, the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import synth, write_synth

from melcodec import audio, files, frontend, griffinlim, limiter, loudness, resampler
from melcodec.codec import DecodeOptions
from melcodec.errors import AudioError

FAST = DecodeOptions(gl_iters=2)
RATES = [(44100, 16000), (48000, 16000), (16000, 44100), (44101, 16000), (16000, 191999)]


def _pieces(n: int, seed: int) -> list[tuple[int, int]]:
    """Random consecutive (start, stop) pairs covering 0..n, empty ones included."""
    cuts = np.sort(np.random.default_rng(seed).integers(0, n + 1, 9))
    edges = [0, *cuts.tolist(), n]
    return list(zip(edges[:-1], edges[1:], strict=True))


@pytest.mark.parametrize(("old", "new"), RATES)
def test_resampling_in_pieces_is_resampling_the_whole(monkeypatch, old, new):
    x = torch.from_numpy(synth(old * 3 // 2, old, seed=1)[:, 0])
    whole = resampler._whole(x, old, new)
    monkeypatch.setattr(resampler, "STREAM_BLOCK", 5000)
    stream = resampler.Stream(old, new)
    got = [stream.push(x[a:b]) for a, b in _pieces(x.numel(), seed=old)]
    got = torch.cat([*got, stream.finish()])
    assert got.shape == whole.shape == (-(-x.numel() * new // old),)
    # Each output sample is the same sum over the same taps (to float32 rounding).
    assert (got - whole).abs().max() < 1e-6
    # The pieces change nothing: the block grid is fixed.
    assert torch.equal(got, resampler.resample(x, old, new))


def test_a_signal_shorter_than_a_block_is_resampled_in_one_call():
    x = torch.from_numpy(synth(44100 * 2, 44100, seed=2)[:, 0])
    assert torch.equal(resampler.resample(x, 44100, 16000), resampler._whole(x, 44100, 16000))


def test_level_matching_in_pieces_is_matching_the_whole(monkeypatch):
    span = 500
    rng = np.random.default_rng(3)
    codes = rng.integers(150, 230, 41).astype(np.uint8)
    codes[7] = 0  # a silent span
    envelope = np.repeat(rng.uniform(0.01, 1.0, 41), span)[: 41 * span - 123]
    x = torch.from_numpy((rng.standard_normal(envelope.size) * envelope).astype(np.float32))
    whole = loudness.match(x, codes, span)  # one window: 41 spans < WINDOW_SPANS
    monkeypatch.setattr(loudness, "WINDOW_SPANS", 3)
    matcher = loudness.Matcher(codes, span)
    got = [matcher.push(x[a:b]) for a, b in _pieces(x.numel(), seed=4)]
    got = torch.from_numpy(np.concatenate([*got, matcher.finish()])).float()
    assert torch.equal(got, whole)


def test_limiting_in_pieces_is_limiting_the_whole(monkeypatch):
    x = synth(16000 * 2, 16000, seed=5)[:, 0] * 4  # over full scale in many places
    whole, report = limiter.limit(x, 16000)
    assert report.acted
    monkeypatch.setattr(limiter, "WINDOW", 1000)
    stream = limiter.Limiter(16000)
    got = [stream.push(x[a:b]) for a, b in _pieces(x.size, seed=6)]
    got = np.concatenate([*got, stream.finish()])
    assert got.shape == whole.shape
    assert np.abs(got - whole).max() < 1e-6
    assert np.abs(got).max() <= limiter.FULL_SCALE
    assert stream.report() == report


# A cut where a group's own samples are in but half its tail into the next tile is not.
_SHORT_OF_TAIL = 2 * frontend.TILE_HOP + frontend.TILE_TAIL // 2


@pytest.mark.parametrize("cuts", ["random", "short of a tail"])
def test_analysis_in_groups_is_the_whole_signal_analysed(monkeypatch, cuts):
    wave = torch.from_numpy(synth(16000 * 20, 16000, seed=7)[:, 0])  # 5 tiles
    whole = frontend.analyse(wave)  # one group
    # Float64 input is analysed in float32, as the encoder's resampler hands it.
    assert torch.equal(frontend.analyse(wave.double()).scaled, whole.scaled)
    monkeypatch.setattr(frontend, "GROUP_TILES", 2)
    assert frontend.Cutter().finish() == []  # no samples, no tile
    cutter = frontend.Cutter()
    pieces = _pieces(wave.numel(), seed=8)
    if cuts != "random":
        pieces = [(0, _SHORT_OF_TAIL), (_SHORT_OF_TAIL, wave.numel())]
    groups = [g for a, b in pieces for g in cutter.push(wave[a:b])]
    groups += cutter.finish()
    assert [g.first for g in groups] == [0, 2, 4]
    scaled = torch.cat([g.analysis.scaled for g in groups])
    assert scaled.shape == whole.scaled.shape
    assert (scaled - whole.scaled).abs().max() < 1e-5
    assert torch.equal(torch.cat([g.analysis.lo for g in groups]), whole.lo)
    levels = np.concatenate([g.levels for g in groups])
    assert np.array_equal(levels, frontend.level_envelope(wave, len(levels)))
    assert sum(g.analysis.num_samples for g in groups) == wave.numel()


@pytest.mark.parametrize(
    ("sizes", "length", "expected"),
    [([3, 4], 5, [3, 2]), ([3], 5, [3, 2]), ([2, 3], 5, [2, 3]), ([6], 5, [5]), ([5], 5, [5])],
)
def test_exactly_cuts_or_pads_pieces_to_a_length(sizes, length, expected):
    pieces = list(frontend.exactly((torch.ones(n) for n in sizes), length))
    assert [p.numel() for p in pieces] == expected  # no empty piece
    real = min(sum(sizes), length)
    assert torch.equal(torch.cat(pieces), torch.cat([torch.ones(real), torch.zeros(length - real)]))


def test_griffin_lim_blocks_come_out_in_order_as_each_settles(monkeypatch):
    monkeypatch.setattr(griffinlim, "BLOCK_FRAMES", 100)
    mag = torch.rand(513, 350, generator=torch.Generator().manual_seed(9))
    asked = []

    def mag_at(a: int, b: int) -> torch.Tensor:
        asked.append((a, b))
        return mag[:, a:b]

    pieces = list(griffinlim.blocks(mag_at, 350, n_iter=2))
    assert asked[0] == (0, 100) and asked[-1][1] == 350
    # Each block starts OVERLAP_FRAMES before the last one stopped, and asks only for its own.
    assert all(b - a <= 100 for a, b in asked)
    overlap = griffinlim.OVERLAP_FRAMES
    starts = [a for a, _ in asked[1:]]
    assert starts == [b - overlap for _, b in asked[:-1]]
    # A piece settles the samples up to where the next block begins.
    hop = 260
    assert [p.numel() for p in pieces[:-1]] == [(b - overlap - a) * hop for a, b in asked[:-1]]
    whole = griffinlim.griffin_lim(mag, 350 * hop, n_iter=2)
    assert torch.equal(torch.cat(pieces)[: whole.numel()], whole)


def test_encoding_in_blocks_is_encoding_the_array(codec, monkeypatch):
    monkeypatch.setattr(frontend, "GROUP_TILES", 2)
    monkeypatch.setattr(resampler, "STREAM_BLOCK", 30000)
    x = synth(44100 * 22, 44100, channels=2, seed=10)  # 6 tiles: 3 groups
    whole = codec.encode(x, 44100)
    blocks = [x[a:b] for a, b in _pieces(len(x), seed=11)]
    seen = []
    got = codec.encode_blocks(iter(blocks), 44100, len(x), lambda *a: seen.append(a))
    assert got == whole
    assert seen == [(2, 6), (4, 6), (6, 6)]


def test_encoding_no_blocks_is_refused_by_name(codec):
    with pytest.raises(AudioError, match=r"^expected a non-empty waveform, not 0 samples$"):
        codec.encode_blocks(iter([]), 16000, 0)


def test_a_file_encodes_to_the_bytes_of_its_samples(codec, tmp_path, monkeypatch):
    # What the CLI reads in blocks and what the API gets as one array: the same file.
    monkeypatch.setattr(audio, "READ_FRAMES", 4000)
    monkeypatch.setattr(frontend, "GROUP_TILES", 1)
    path = write_synth(tmp_path / "in.wav", 10, 44100, channels=2, seed=12)
    out = files.encode_file(path, tmp_path / "out.mlc", codec)
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert out.read_bytes() == codec.encode(data, rate)


def test_non_finite_samples_are_found_where_they_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "READ_FRAMES", 1000)
    x = synth(5000, 16000, seed=13)
    x[3210, 0] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"first at sample 3210\): "):
        with audio.open_audio(path) as (_, frames, blocks):
            assert frames == 5000
            list(blocks)


def test_decoding_in_pieces_is_decoding_the_whole(codec, monkeypatch):
    x = synth(16000 * 30, 16000, seed=14)[:, 0]
    data = codec.encode(x, 16000)
    options = DecodeOptions(gl_iters=2, sample_rate=44100)
    whole, rate = codec.decode(data, options)  # 8 tiles: one Griffin-Lim block
    for module, name, value in [
        (griffinlim, "BLOCK_FRAMES", 300),
        (loudness, "WINDOW_SPANS", 3),
        (resampler, "STREAM_BLOCK", 20000),
    ]:
        monkeypatch.setattr(module, name, value)
    seen = []
    decoded = codec.decode_blocks(data, options, lambda *a: seen.append(a))
    pieces = list(decoded.blocks)
    got = torch.cat(pieces)
    assert (decoded.rate, decoded.samples) == (rate, whole.numel()) == (44100, got.numel())
    assert len(pieces) > 10
    # Griffin-Lim's blocks are its own (phases carried, joins crossfaded): the
    # level stays, and the samples stay close where no join is.
    assert (
        abs(20 * np.log10(float(got.square().mean().sqrt() / whole.square().mean().sqrt()))) < 0.5
    )
    # Progress in tiles: each tile through the networks, then through Griffin-Lim.
    assert seen[-1] == (16, 16)
    assert all(b == 16 for _, b in seen) and [a for a, _ in seen] == sorted(a for a, _ in seen)


def test_decode_file_writes_the_decode_in_pieces(codec, tmp_path, monkeypatch):
    monkeypatch.setattr(limiter, "WINDOW", 5000)
    x = synth(16000 * 9, 16000, seed=15)[:, 0] * 3
    mlc = tmp_path / "in.mlc"
    mlc.write_bytes(codec.encode(x, 16000))
    wave, rate = codec.decode(mlc.read_bytes(), FAST)
    expected, _ = audio.render(wave, rate)
    files.decode_file(mlc, tmp_path / "out.wav", codec, FAST)
    assert (tmp_path / "out.wav").read_bytes() == expected
    flac = files.decode_file(mlc, tmp_path / "out.flac", codec, FAST)
    assert flac.read_bytes() == audio.render(wave, rate, "FLAC")[0]


def test_decode_progress_follows_the_tiles_through_both_stages(codec, monkeypatch):
    monkeypatch.setattr(griffinlim, "BLOCK_FRAMES", 600)
    data = codec.encode(synth(16000 * 30, 16000, seed=16)[:, 0], 16000)
    seen = []
    list(codec.decode_blocks(data, FAST, lambda *a: seen.append(a)).blocks)
    # 8 tiles (2,048 frames), 600-frame blocks: each block first decodes the tiles it
    # reaches (3, then 2 more each), then counts its frames as tiles of phase (2 each).
    assert seen == [(3, 16), (5, 16), (7, 16), (9, 16), (11, 16), (13, 16), (14, 16), (16, 16)]
