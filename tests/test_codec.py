"""The encode/decode pipeline (Codec), the probability models, and Griffin-Lim.

All with the tiny random-initialised model of conftest.py: these tests check
lengths, rates, sizes, independence of tiles and repeatability, not quality.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import synth

from melcodec import audio, bitstream, entropy, frontend, griffinlim, limits
from melcodec import codec as codec_module
from melcodec.codec import Codec, DecodeOptions
from melcodec.mel import MEL

FAST = DecodeOptions(gl_iters=1)
RAW_BYTES = 128 * 16 * 16 // 8  # 4096: the paper's bound per tile


def _header(data: bytes) -> bitstream.Header:
    return bitstream.Reader(io.BytesIO(data)).header


# ---------------------------------------------------------------------------
# Lengths and rates
# ---------------------------------------------------------------------------

CASES = {
    # name: (samples, rate, channels)
    "one-sample": (1, 16000, 1),
    "one-sample-44k": (1, 44100, 1),
    "stereo-44k": (50_001, 44100, 2),
    "8k": (12_345, 8000, 1),
    "96k": (100_001, 96000, 1),
    "8-channels-48k": (30_011, 48000, 8),
    "not-a-hop-multiple-2-tiles": (67_328 + 1001, 16000, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_decoded_lengths_are_exact(codec, case):
    n, rate, channels = CASES[case]
    wave = synth(n, rate, channels, seed=len(case))
    data = codec.encode(wave if channels > 1 else wave[:, 0], rate)
    header = _header(data)
    expected_16k = limits.resampled_length(n, rate, MEL.sample_rate)
    assert (header.source_sample_rate, header.source_num_samples) == (rate, n)
    assert header.num_samples == expected_16k
    assert header.num_tiles == frontend.num_tiles(expected_16k)

    out, out_rate = codec.decode(data, FAST)
    assert out_rate == MEL.sample_rate
    assert out.shape == (header.num_samples,)
    assert torch.isfinite(out).all()

    src, src_rate = codec.decode(data, DecodeOptions(gl_iters=1, sample_rate="source"))
    assert src_rate == rate
    assert src.shape == (n,)
    assert torch.isfinite(src).all()


@pytest.mark.parametrize("rate", [limits.MIN_RATE, limits.MAX_RATE])
def test_encode_takes_the_edge_rates(codec, rate):
    data = codec.encode(synth(rate // 10, rate)[:, 0], rate)
    assert (_header(data).source_sample_rate, _header(data).source_num_samples) == (
        rate,
        rate // 10,
    )


def test_encode_reports_progress_in_tiles(codec):
    seen = []
    data = codec.encode(synth(16000 * 9, 16000)[:, 0], 16000, progress=lambda *a: seen.append(a))
    tiles = _header(data).num_tiles
    assert tiles == 3 and seen and seen[-1] == (tiles, tiles)


def test_encode_16k_reports_progress_in_tiles_too(codec):
    seen = []
    wave = torch.from_numpy(synth(16000 * 9, 16000)[:, 0])
    codec.encode_16k(wave, 16000, wave.numel(), progress=lambda *a: seen.append(a))
    assert seen and seen[-1] == (3, 3)


def test_tile_bits_reports_progress_per_network_batch(codec, monkeypatch):
    monkeypatch.setattr(codec_module, "NETWORK_BATCH", 2)
    seen = []
    bits = codec.tile_bits(torch.rand(5, 256, 256), progress=lambda *a: seen.append(a))
    assert bits.shape[0] == 5 and seen == [(2, 5), (4, 5), (5, 5)]


def test_decode_reports_the_networks_then_griffin_lim(codec):
    data = codec.encode(synth(16000 * 6, 16000)[:, 0], 16000)
    seen = []
    codec.decode(data, FAST, progress=lambda *a: seen.append(a))
    assert seen == [(2, 4), (4, 4)]  # 2 tiles: both through the networks, then phase
    assert all(type(v) is int for pair in seen for v in pair)


def test_decode_is_its_stages_in_order(codec):
    # decode_logmel + frontend.synthesise is how benchmarks time the stages apart.
    data = codec.encode(synth(16000 * 6, 16000)[:, 0], 16000)
    seen = []
    logmel = codec.decode_logmel(codec.open(io.BytesIO(data)), lambda *a: seen.append(a))
    assert logmel.shape == (MEL.n_mels, 2 * 256) and seen == [(2, 2)]
    options = DecodeOptions(gl_iters=2, match_level=False)
    wave = frontend.synthesise(logmel, 16000 * 6, 2, options.gl_momentum)
    assert torch.equal(codec.decode(data, options)[0], wave)
    # Each synthesis option reaches synthesis.
    spread = DecodeOptions(gl_iters=2, match_level=False, inverse_mel="interp")
    assert not torch.equal(codec.decode(data, spread)[0], wave)


def test_decode_to_another_rate(codec):
    n = 20_000
    data = codec.encode(synth(n, 16000)[:, 0], 16000)
    out, rate = codec.decode(data, DecodeOptions(gl_iters=1, sample_rate=22050))
    assert rate == 22050
    assert out.shape == (limits.resampled_length(n, 16000, 22050),)
    # The 16 kHz decode, resampled: the same audio at the asked rate.
    at_16k, _ = codec.decode(data, DecodeOptions(gl_iters=1))
    expected = audio.fit_length(audio.resample(at_16k, 16000, 22050), out.numel())
    assert (out - expected).abs().max() < 1e-4 * expected.abs().max()


def test_the_decoders_frames_are_the_frames_asked_for(codec, monkeypatch):
    data = codec.encode(synth(16000 * 13, 16000)[:, 0], 16000)  # 4 tiles
    sources = []

    def recording(logmel_at, *args, **kwargs):
        sources.append(logmel_at)
        return synthesis_blocks(logmel_at, *args, **kwargs)

    synthesis_blocks = frontend.synthesis_blocks
    monkeypatch.setattr(frontend, "synthesis_blocks", recording)
    codec.decode(data, FAST)
    (logmel_at,) = sources
    whole = logmel_at(0, 4 * 256)
    assert whole.shape == (MEL.n_mels, 4 * 256)
    for begin, stop in [(0, 100), (300, 600), (700, 1024), (256, 512)]:
        assert torch.equal(logmel_at(begin, stop), whole[:, begin:stop])


def test_encode_accepts_torch_and_channels_last(codec):
    wave = synth(9000, 16000, 2)
    a = codec.encode(wave, 16000)
    b = codec.encode(torch.from_numpy(wave), 16000)
    assert a == b
    assert _header(a).num_samples == 9000


@pytest.mark.parametrize(
    "change, rate, message",
    [
        (None, 4000, "sample rate 4000 Hz"),
        (None, 192_001, "sample rate 192001 Hz"),
        (float("nan"), 16000, "NaN or infinite samples .first at sample 123"),
        (float("inf"), 16000, "NaN or infinite samples .first at sample 123"),
        ("empty", 16000, r"non-empty waveform .* not \(0, 1\)"),
        ("no channels", 16000, r"non-empty waveform .* not \(20000, 0\)"),
    ],
)
def test_encode_refuses_what_decode_would_refuse(codec, change, rate, message):
    from melcodec.errors import AudioError

    wave = synth(20_000, 16000)[:, 0].copy()
    if change == "empty":
        wave = wave[:0]
    elif change == "no channels":
        wave = np.zeros((20_000, 0), np.float32)
    elif change is not None:
        wave[123] = change
    with pytest.raises(AudioError, match=message):
        codec.encode(wave, rate)


def test_silence_decodes_to_silence(codec):
    data = codec.encode(np.zeros(40_000, dtype=np.float32), 16000)
    out, _ = codec.decode(data, DecodeOptions(gl_iters=4))
    assert out.shape == (40_000,)
    assert torch.isfinite(out).all()
    assert out.abs().max() < 1e-4


def test_silent_source_rate_decode_is_silent(codec):
    data = codec.encode(np.zeros((7_000, 2), dtype=np.float32), 44100)
    out, rate = codec.decode(data, DecodeOptions(gl_iters=1, sample_rate="source"))
    assert (rate, out.shape) == (44100, (7_000,))
    assert out.abs().max() < 1e-4


# ---------------------------------------------------------------------------
# Size bound
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("prob_id", [0, 1])
def test_each_tile_at_most_4096_bytes(tiny_loaded, prob_id):
    c = Codec(tiny_loaded, prob_model_id=prob_id)
    wave = np.concatenate([synth(16000 * 5, 16000, seed=1), 0.9 * np.sign(synth(16000 * 4, 16000))])
    data = c.encode(wave[:, 0], 16000)
    reader = bitstream.Reader(io.BytesIO(data))
    header = reader.header
    assert header.prob_model_id == prob_id
    assert header.num_tiles == 3
    payloads = [len(reader.chunk(i).payload) for i in range(3)]
    assert max(payloads) <= RAW_BYTES
    overhead = bitstream.header_size(header) + header.num_tiles * bitstream.chunk_overhead(header)
    assert len(data) <= RAW_BYTES * header.num_tiles + overhead
    if prob_id == 0:
        assert payloads == [RAW_BYTES] * 3
        assert len(data) == RAW_BYTES * 3 + overhead


def test_static_bernoulli_file_round_trips_bits(codec):
    # The fixture's table was fitted to this model on similar audio: tiles get range coded.
    wave = synth(16000 * 9, 16000, seed=101)[:, 0]
    analysis = frontend.analyse(torch.from_numpy(wave))
    bits = codec.tile_bits(analysis.scaled)
    data = codec.encode(wave, 16000)
    reader = codec.open(io.BytesIO(data))
    assert reader.header.prob_model_id == entropy.StaticBernoulli.id
    assert any(reader.chunk(i).coding == entropy.RANGE_CODED for i in range(len(reader)))
    for i in range(len(reader)):
        got, lo, hi = codec.read_bits(reader, i)
        np.testing.assert_array_equal(got, bits[i])
        assert (lo, hi) == (
            pytest.approx(float(analysis.lo[i]), abs=0),
            pytest.approx(float(analysis.hi[i]), abs=0),
        )


def test_uniform_file_decodes_with_table_codec(codec, uniform_codec):
    # A file's probability model id comes from its header, not from the codec's default.
    wave = synth(20_000, 16000)[:, 0]
    data = uniform_codec.encode(wave, 16000)
    assert _header(data).prob_model_id == 0
    a, _ = uniform_codec.decode(data, FAST)
    b, _ = codec.decode(data, FAST)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# Tiles are independent (eval-mode BatchNorm)
# ---------------------------------------------------------------------------


def test_multi_tile_file_is_its_tiles_one_by_one(codec):
    wave = torch.from_numpy(synth(16000 * 12, 16000, seed=4)[:, 0])
    scaled = frontend.analyse(wave).scaled
    assert len(scaled) == 3
    batch_bits = codec.tile_bits(scaled)
    with torch.no_grad():
        z_batch = codec.model.net.encoder(scaled.unsqueeze(1))
    for i in range(3):
        alone = codec.tile_bits(scaled[i : i + 1])
        with torch.no_grad():
            z_alone = codec.model.net.encoder(scaled[i : i + 1].unsqueeze(1))
        torch.testing.assert_close(z_batch[i : i + 1], z_alone, rtol=0, atol=1e-5)
        # Bits equal, except (float rounding of another conv algorithm) where z is ~0.
        differ = batch_bits[i : i + 1] != alone
        assert (z_alone.abs().numpy()[differ] < 1e-5).all()
        assert differ.sum() <= 3

    decoded = codec.decode_tiles(batch_bits)
    assert decoded.shape == (3, 256, 256)
    for i in range(3):
        alone = codec.decode_tiles(batch_bits[i : i + 1])
        torch.testing.assert_close(decoded[i : i + 1], alone, rtol=0, atol=1e-5)

    # And the file's bits are exactly the batch's bits, tile by tile.
    reader = codec.open(io.BytesIO(codec.encode(wave.numpy(), 16000)))
    for i in range(3):
        np.testing.assert_array_equal(codec.read_bits(reader, i)[0], batch_bits[i])


# ---------------------------------------------------------------------------
# Repeatability
# ---------------------------------------------------------------------------


def test_decode_is_repeatable_and_leaves_global_rng_alone(codec):
    data = codec.encode(synth(30_000, 16000, seed=8)[:, 0], 16000)
    options = DecodeOptions(gl_iters=3, seed=5)
    torch.manual_seed(77)
    state = torch.get_rng_state()
    a, _ = codec.decode(data, options)
    assert torch.equal(torch.get_rng_state(), state)
    b, _ = codec.decode(data, options)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)
    # With a random phase start the seed is what fixes the phase: another seed gives
    # another waveform.
    options = DecodeOptions(gl_iters=3, seed=5, phase_start="random")
    c, _ = codec.decode(data, options)
    assert torch.equal(c, codec.decode(data, options)[0])
    d, _ = codec.decode(data, DecodeOptions(gl_iters=3, seed=6, phase_start="random"))
    assert not torch.equal(c, d)


def test_encode_is_deterministic(codec):
    wave = synth(30_000, 22050, 2, seed=8)
    assert codec.encode(wave, 22050) == codec.encode(wave.copy(), 22050)


# ---------------------------------------------------------------------------
# Entropy coding
# ---------------------------------------------------------------------------

SHAPE = (128, 16, 16)


def test_static_bernoulli_round_trip_exact():
    rng = np.random.default_rng(0)
    table = rng.integers(1, entropy.PROB_ONE, SHAPE)
    model = entropy.StaticBernoulli(table)
    for p in (0.5, 0.1, 0.97):
        bits = (rng.random(SHAPE) < p).astype(np.uint8)
        coding, payload = model.encode(bits)
        assert len(payload) <= RAW_BYTES
        np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), bits)


def test_static_bernoulli_compresses_matching_bits():
    rng = np.random.default_rng(1)
    p_one = np.where(rng.random(SHAPE) < 0.5, 0.05, 0.95)
    bits = (rng.random(SHAPE) < p_one).astype(np.uint8)
    table = entropy.table_from_counts(torch.from_numpy(bits.astype(np.int64)) * 19, 20)
    assert table.dtype == torch.int32 and table.min() >= 1 and table.max() < entropy.PROB_ONE
    model = entropy.StaticBernoulli(table)
    coding, payload = model.encode(bits)
    assert coding == entropy.RANGE_CODED
    # ~0.05 * 4.3 + 0.95 * 0.074 bits per bit: far below the raw 4096 bytes.
    assert len(payload) < RAW_BYTES // 2
    np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), bits)


def test_static_bernoulli_falls_back_to_raw():
    table = np.full(SHAPE, entropy.PROB_ONE - 1)  # P(1) ~ 1 everywhere
    model = entropy.StaticBernoulli(table)
    bits = np.zeros(SHAPE, dtype=np.uint8)  # every bit the unlikely one
    coding, payload = model.encode(bits)
    assert coding == entropy.RAW
    assert len(payload) == RAW_BYTES
    np.testing.assert_array_equal(model.decode(coding, payload, SHAPE), bits)
    rng = np.random.default_rng(2)
    for _ in range(5):
        bits = rng.integers(0, 2, SHAPE, dtype=np.uint8)
        coding, payload = model.encode(bits)
        assert len(payload) <= RAW_BYTES


def test_uniform_bits_are_packed_msb_first():
    bits = np.zeros(SHAPE, dtype=np.uint8)
    bits[0, 0, 0] = 1
    coding, payload = entropy.UniformBits().encode(bits)
    assert coding == entropy.RAW and len(payload) == RAW_BYTES and payload[0] == 0x80
    np.testing.assert_array_equal(entropy.UniformBits().decode(coding, payload, SHAPE), bits)


def test_bad_tables_and_ids_rejected():
    from melcodec.errors import FormatError, ModelError

    outside = "^probability table has values outside 1..65535$"
    with pytest.raises(ModelError, match=outside):
        entropy.StaticBernoulli(np.zeros(SHAPE))
    with pytest.raises(ModelError, match=outside):
        entropy.StaticBernoulli(np.full(SHAPE, entropy.PROB_ONE))
    entropy.StaticBernoulli(np.full(SHAPE, entropy.PROB_ONE - 1))  # the edges are allowed
    entropy.StaticBernoulli(np.ones(SHAPE))
    for tables in (None, {}, {"other": 1}):
        with pytest.raises(ModelError, match="^this model file has no static-bernoulli"):
            entropy.probability_model(1, tables)
        with pytest.raises(ModelError, match="^this model file has no checkerboard-mix "):
            entropy.probability_model(4, tables)
    with pytest.raises(FormatError, match="^unknown probability model id 99$"):
        entropy.probability_model(99, None)
    with pytest.raises(FormatError):
        entropy.UniformBits().decode(entropy.RAW, b"\0" * 100, SHAPE)


@pytest.mark.parametrize(
    "size, p, coding, length",
    [
        (32, 0.1, entropy.RAW, 4),  # the coded tile (one 4-byte word) ties the raw 4 bytes: raw
        (40, 0.1, entropy.RANGE_CODED, 4),  # one word beats 5 raw bytes
        (72, 0.15, entropy.RANGE_CODED, 8),  # two words beat 9 raw bytes
    ],
)
def test_static_bernoulli_chooses_raw_on_ties(size, p, coding, length):
    bits = (np.random.default_rng(0).random(size) < p).astype(np.uint8)
    model = entropy.StaticBernoulli(np.full(size, int(p * entropy.PROB_ONE)))
    got, payload = model.encode(bits)
    assert (got, len(payload)) == (coding, length)
    np.testing.assert_array_equal(model.decode(got, payload, (size,)), bits)


def test_static_bernoulli_decodes_to_uint8_and_refuses_malformed_chunks():
    from melcodec.errors import FormatError

    model = entropy.StaticBernoulli(np.full((8, 8), 3000))
    bits = np.zeros((8, 8), np.uint8)
    bits[1, 2] = 1
    coding, payload = model.encode(bits)
    assert coding == entropy.RANGE_CODED
    decoded = model.decode(coding, payload, (8, 8))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, bits)
    with pytest.raises(FormatError, match=r"latent shape \(4, 16\) does not match the table"):
        model.decode(coding, payload, (4, 16))
    for bad_coding, bad_payload in [(entropy.RANGE_CODED, b"abc"), (7, b"abcd")]:
        with pytest.raises(FormatError, match="^range-coded payload is malformed$"):
            model.decode(bad_coding, bad_payload, (8, 8))


def test_probability_model_errors_say_what_is_wrong():
    from melcodec.errors import FormatError

    with pytest.raises(FormatError, match="uniform model cannot read coding 1"):
        entropy.UniformBits().decode(entropy.RANGE_CODED, b"", SHAPE)
    with pytest.raises(FormatError, match="raw payload has 3 bytes, expected 4$"):
        entropy.unpack(b"abc", (4, 8))
    with pytest.raises(FormatError, match="raw payload has 3 bytes, expected 5$"):
        entropy.unpack(b"abc", (33,))
    model = entropy.StaticBernoulli(np.full((2, 4), 100))
    with pytest.raises(ValueError, match=r"bits of shape \(8,\), table of shape \(2, 4\)"):
        model.encode(np.zeros(8, np.uint8))


# ---------------------------------------------------------------------------
# Griffin-Lim
# ---------------------------------------------------------------------------

HOP, N_FFT = MEL.hop_length, MEL.n_fft


def _stft(wave: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    return torch.stft(wave, N_FFT, HOP, window=window, center=False, return_complex=True)


def test_griffinlim_alignment_with_true_phase():
    x = torch.from_numpy(synth(16000 * 3, 16000, seed=6)[:, 0])
    spec = _stft(x)
    mag = spec.abs()
    phase = spec / mag.clamp_min(1e-30)
    gen = torch.Generator().manual_seed(0)
    wave, angles = griffinlim._run(mag, phase, 0, 0.99, gen, MEL, "random")
    frames = mag.shape[1]
    covered = (frames - 1) * HOP + N_FFT
    assert wave.numel() >= covered
    assert angles.shape == mag.shape
    inner = slice(N_FFT, covered - N_FFT)
    assert (wave[inner] - x[inner]).abs().max() < 1e-4
    # One sample off is far off: the check above really tests the alignment.
    assert (wave[1:][inner] - x[inner]).abs().max() > 1e-2


def test_griffinlim_short_input_exact_length():
    mag = _stft(torch.from_numpy(synth(4000, 16000)[:, 0])).abs()
    for n in (1, 1023, 1024 + 130, 1500):
        out = griffinlim.griffin_lim(mag[:, :1], n, n_iter=2)
        assert out.shape == (n,) and torch.isfinite(out).all()


def test_griffinlim_long_input_in_blocks(monkeypatch):
    n = 16000 * 17 + 77
    x = torch.from_numpy(synth(n, 16000, seed=2)[:, 0])
    mag = _stft(x).abs()
    frames = mag.shape[1]

    def frame_error(wave):
        rebuilt = _stft(wave).abs()
        return (rebuilt - mag).norm(dim=0) / mag.norm(dim=0)

    whole = griffinlim.griffin_lim(mag, n, n_iter=8, seed=0)
    monkeypatch.setattr(griffinlim, "BLOCK_FRAMES", 300)
    monkeypatch.setattr(griffinlim, "OVERLAP_FRAMES", 16)
    assert frames > 3 * 300
    seen = []
    out = griffinlim.griffin_lim(mag, n, n_iter=8, seed=0, progress=lambda *a: seen.append(a))
    assert seen == [(min(stop, frames), frames) for stop in range(300, frames + 284, 284)]
    assert out.shape == (n,)
    assert torch.isfinite(out).all()
    assert out.abs().max() < 4 * x.abs().max()

    # Block k starts at frame k * (300 - 16); its crossfade spans 16 frames.
    joins = range(284, frames - 16, 284)
    step = out.diff().abs()
    typical = step.quantile(0.999)
    err, err_whole = frame_error(out), frame_error(whole)
    for j in joins:
        around = slice(j * HOP - 2 * HOP, (j + 16) * HOP + 2 * HOP)
        assert step[around].max() < 2 * typical, f"jump at the block join near frame {j}"
        near = slice(j - 4, j + 20)
        assert err[near].max() < 1.25 * err_whole[near].max() + 0.05, f"join at frame {j}"
    # Away from joins the blocks converge as well as one long run.
    assert err.median() < 1.2 * err_whole.median()
    # The first block is a plain run up to its first crossfade, from sample 0 on.
    gen = torch.Generator().manual_seed(0)
    first, angles = griffinlim._run(mag[:, :300], None, 8, 0.99, gen, MEL, "pghi")
    torch.testing.assert_close(out[: 280 * HOP], first[: 280 * HOP], rtol=0, atol=0)
    # The second block starts from the first's last 16 phases, crossfades linearly
    # over those 16 frames, and is copied as it is after them.
    second, _ = griffinlim._run(mag[:, 284:584], angles[:, -16:], 8, 0.99, gen, MEL, "pghi")
    ramp = torch.linspace(0, 1, 16 * HOP)
    fade = slice(284 * HOP, 300 * HOP)
    torch.testing.assert_close(out[fade], first[fade] * (1 - ramp) + second[: 16 * HOP] * ramp)
    torch.testing.assert_close(out[300 * HOP : 560 * HOP], second[16 * HOP : 276 * HOP])
    # The last block reaches the end: nothing is cut off the tail.
    assert out[-HOP:].abs().max() > 0.1 * x[-HOP:].abs().max()
    # Blocks draw from the decode's own generator, never the global one.
    torch.manual_seed(1)
    a = griffinlim.griffin_lim(mag, n, n_iter=1, seed=0, start="random")
    torch.manual_seed(2)
    assert torch.equal(a, griffinlim.griffin_lim(mag, n, n_iter=1, seed=0, start="random"))


def test_griffinlim_defaults_are_the_decoders():
    # A direct API caller gets what `decode` does by default: 16 iterations at
    # momentum 0.99 (melcodec.defaults), not a setting of its own.
    mag = _stft(torch.from_numpy(synth(4000, 16000)[:, 0])).abs()
    plain = griffinlim.griffin_lim(mag, 4000)
    assert torch.equal(plain, griffinlim.griffin_lim(mag, 4000, 16, 0.99))
    assert not torch.equal(plain, griffinlim.griffin_lim(mag, 4000, 15, 0.99))
    assert not torch.equal(plain, griffinlim.griffin_lim(mag, 4000, 16, 0.98))


def test_griffinlim_seeded():
    mag = _stft(torch.from_numpy(synth(8000, 16000)[:, 0])).abs()
    a = griffinlim.griffin_lim(mag, 8000, n_iter=2, seed=3, start="random")
    b = griffinlim.griffin_lim(mag, 8000, n_iter=2, seed=3, start="random")
    c = griffinlim.griffin_lim(mag, 8000, n_iter=2, seed=4, start="random")
    assert torch.equal(a, b) and not torch.equal(a, c)
    # The random start is uniform on the circle (std of the angle pi / sqrt(3) = 1.81).
    gen = torch.Generator().manual_seed(0)
    _, start = griffinlim._run(mag, None, 0, 0.99, gen, MEL, "random")
    assert 1.7 < float(start.angle().std()) < 1.9
    with pytest.raises(ValueError, match="unknown phase start 'zero'"):
        griffinlim.griffin_lim(mag, 8000, n_iter=0, start="zero")


def test_decoding_does_not_change_how_a_codec_encodes(codec, uniform_codec):
    # Decoding a file made with another probability model must not switch the
    # codec's own probability model for later encodes.
    wave = synth(20_000, 16000)[:, 0]
    assert _header(codec.encode(wave, 16000)).prob_model_id == 1
    codec.decode(uniform_codec.encode(wave, 16000), FAST)
    assert _header(codec.encode(wave, 16000)).prob_model_id == 1


def test_duration_limit_is_shared_by_encoder_and_decoder(tiny_loaded):
    from melcodec.errors import AudioError, FormatError

    wave = synth(32_000, 16000)[:, 0]  # 2 s
    with pytest.raises(AudioError, match="over the limit of 0.0005 h"):
        Codec(tiny_loaded, max_hours=1.8 / 3600).encode(wave, 16000)
    data = Codec(tiny_loaded, max_hours=2.1 / 3600).encode(wave, 16000)
    codec = Codec(tiny_loaded)
    with pytest.raises(FormatError, match="over the limit .* --max-hours"):
        codec.decode(data, DecodeOptions(gl_iters=0, max_hours=1.8 / 3600))
    out, _ = codec.decode(data, DecodeOptions(gl_iters=0, max_hours=2.1 / 3600))
    assert out.numel() == 32_000
    # To the sample: a limit one sample short of the file refuses it.
    with pytest.raises(FormatError, match="over the limit"):
        codec.decode(data, DecodeOptions(gl_iters=0, max_hours=31_999 / 16000 / 3600))


def test_decoder_precision_comes_from_the_environment(tiny_loaded, monkeypatch):
    from melcodec.errors import UsageError

    monkeypatch.setenv("MELCODEC_DECODER_PRECISION", "float32")
    assert Codec(tiny_loaded).fast_decoder.precision == "float32"
    assert Codec(tiny_loaded, decoder_precision="bfloat16").fast_decoder.precision == "bfloat16"
    monkeypatch.setenv("MELCODEC_DECODER_PRECISION", "float8")
    with pytest.raises(UsageError, match="unknown decoder precision 'float8'"):
        Codec(tiny_loaded)
