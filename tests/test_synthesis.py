"""What the listener gets: the inverse mel, the phase start, fast Griffin-Lim's momentum,
the level envelope, and the limiter, each pinned by a test that fails without it.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import invoke, synth

from melcodec import audio, bitstream, frontend, griffinlim, limiter, listening, loudness, mel
from melcodec.codec import LEVEL_SPANS, Codec, DecodeOptions
from melcodec.mel import MEL

V1_FILE = Path(__file__).resolve().parent / "golden" / "v1-default-static.mlc"
# The codec's level span, and a shorter one for the envelope's own tests.
CODEC_SPAN = loudness.SEGMENT_FRAMES * MEL.hop_length
SPAN = 16 * MEL.hop_length


def _signal(seconds: float = 2.0, seed: int = 4) -> torch.Tensor:
    return torch.from_numpy(synth(int(16000 * seconds), 16000, seed=seed)[:, 0])


def _stft_mag(x: torch.Tensor) -> torch.Tensor:
    """The uncentred analysis STFT magnitude griffin_lim inverts, covering all of ``x``."""
    window = torch.hann_window(MEL.n_fft)
    padded = audio.fit_length(x, x.numel() + MEL.n_fft)
    return torch.stft(
        padded, MEL.n_fft, MEL.hop_length, window=window, center=False, return_complex=True
    ).abs()


# ---------------------------------------------------------------------------
# Inverse mel
# ---------------------------------------------------------------------------


def test_inverse_mel_inverts_and_does_not_amplify_errors():
    x = _signal()
    padded = audio.fit_length(x, mel.padded_length(100))
    logmel = mel.log_mel(padded)
    target = torch.exp(logmel) - MEL.log_eps
    fb = mel.filterbank().float()
    exact = mel.inverse_log_mel(logmel)
    # An inverse: the mel of what it returns is the mel it was given.
    assert float((fb @ exact - target).norm() / target.norm()) < 1e-3
    # Small decoder errors stay small: 5 % noise on the log-mel leaves the linear
    # spectrum's energy where it was (the pseudo-inverse makes it 3.9x).
    noise = 0.05 * torch.randn(logmel.shape, generator=torch.Generator().manual_seed(0))
    noisy = mel.inverse_log_mel(logmel + noise)
    assert float(noisy.norm() / exact.norm()) < 1.1
    assert (noisy >= 0).all()


def test_pseudo_inverse_is_what_the_regularised_one_avoids():
    # The comparison that chose the inverse (bench/results/inverse_mel.md), in small.
    inv = mel.inverse_matrix("tsvd", 1e-2)
    singular = torch.linalg.svdvals(mel.filterbank())
    relative = singular / singular[0]
    # Rank 229 of 256, and one more direction between 1e-6 and 1e-4 (docs/synthesis.md).
    assert int((relative > 1e-2).sum()) == int((relative > 1e-4).sum()) == 229
    assert int((relative > 1e-6).sum()) == 230
    assert float(mel.inverse_matrix("pinv").abs().max()) > 1000
    assert float(inv.abs().max()) < 2
    with pytest.raises(ValueError, match="unknown inverse"):
        mel.inverse_matrix("nonsense")


def test_inverse_specs_are_parsed_and_checked_before_any_work():
    assert mel.parse_inverse("tsvd:0.01") == ("tsvd", 0.01)
    assert mel.parse_inverse("pinv") == ("pinv", 0.0)
    assert mel.parse_inverse("tikhonov:0.001") == ("tikhonov", 0.001)
    assert mel.parse_inverse("nnls:20") == ("nnls", 20.0)
    for spec in ["tsvd:x", "tsvd:0.01:3"]:
        with pytest.raises(ValueError, match=f"bad inverse mel strength in '{spec}'"):
            mel.parse_inverse(spec)
    with pytest.raises(ValueError, match="unknown inverse mel method 'nonsense'"):
        mel.parse_inverse("nonsense:1")
    with pytest.raises(ValueError, match="'tikhonov' is singular: give it a strength > 0"):
        mel.parse_inverse("tikhonov")
    # A method without a strength is that method at strength 0.
    logmel = mel.log_mel(audio.fit_length(_signal(), mel.padded_length(20)))
    assert torch.equal(
        mel.inverse_log_mel(logmel, method="tsvd"),
        mel.inverse_log_mel(logmel, method="tsvd", strength=0.0),
    )


def test_synthesis_uses_the_inverse_it_is_given():
    logmel = mel.log_mel(audio.fit_length(_signal(), mel.padded_length(60)))
    n = mel.padded_length(60)

    def synth_with(inverse):
        return frontend.synthesise(logmel, n, 2, 0.99, inverse=inverse)

    default = synth_with(mel.DEFAULT_INVERSE)
    assert torch.equal(synth_with("tsvd:0.01"), default)
    spread = synth_with("interp")
    assert not torch.allclose(spread, default, atol=1e-3)
    mag = mel.inverse_log_mel(logmel, method="interp")
    assert torch.equal(spread, griffinlim.griffin_lim(mag, n, 2, 0.99))


def test_nnls_inverse_descends_from_the_band_spread_and_stays_non_negative():
    x = _signal()
    logmel = mel.log_mel(audio.fit_length(x, mel.padded_length(40)))
    target = torch.exp(logmel) - MEL.log_eps
    fb = mel.filterbank().float()

    def residual(spec):
        return float((fb @ spec - target).norm() / target.norm())

    spread = mel.inverse_log_mel(logmel, method="interp")
    assert torch.equal(mel.inverse_log_mel(logmel, method="nnls", strength=0), spread)
    ten = mel.inverse_log_mel(logmel, method="nnls", strength=10)
    fifty = mel.inverse_log_mel(logmel, method="nnls", strength=50)
    assert residual(spread) > residual(ten) > residual(fifty)
    assert residual(fifty) < 0.5 * residual(spread)
    # The step is 1 / ||F||^2 (the largest that always descends): pinned by the path.
    assert residual(ten) == pytest.approx(0.02218, rel=0.01)
    assert residual(fifty) == pytest.approx(0.001249, rel=0.02)
    assert (fifty >= 0).all() and (fifty == 0).any()  # the projection clips, not a shift
    assert mel.parse_inverse("nnls:50") == ("nnls", 50.0)


# ---------------------------------------------------------------------------
# Phase: PGHI start and fast Griffin-Lim's momentum
# ---------------------------------------------------------------------------


def test_pghi_start_is_far_closer_than_a_random_one():
    x = _signal()
    mag = _stft_mag(x)
    pghi = griffinlim.griffin_lim(mag, x.numel(), 0, start="pghi")
    random = griffinlim.griffin_lim(mag, x.numel(), 0, start="random")
    sc_pghi = listening.spectral_convergence(pghi, x)
    sc_random = listening.spectral_convergence(random, x)
    # Measured: 0.036 against 0.62.
    assert sc_pghi < 0.1 < 0.5 < sc_random


def test_pghi_start_follows_onsets_and_sweeps():
    # Clicks and chirp bursts: their phase comes from the frequency direction (group
    # delay), which a steady harmonic signal barely uses.
    t = np.arange(32000) / 16000
    x = (0.3 * np.sin(2 * np.pi * (200 * t + 800 * t**2)) * (t % 0.25 < 0.05)).astype(np.float32)
    x[::1600] += 0.8
    x = torch.from_numpy(x)
    mag = _stft_mag(x)
    pghi = griffinlim.griffin_lim(mag, x.numel(), 0, start="pghi")
    random = griffinlim.griffin_lim(mag, x.numel(), 0, start="random")
    # Measured: 0.15 against 0.66 (0.44 with the group delay's sign flipped).
    assert listening.spectral_convergence(pghi, x) < 0.25
    assert listening.spectral_convergence(random, x) > 0.5


def test_momentum_speeds_up_griffin_lim():
    x = _signal()
    mag = _stft_mag(x)
    fast = griffinlim.griffin_lim(mag, x.numel(), 8, momentum=0.99, start="random")
    plain = griffinlim.griffin_lim(mag, x.numel(), 8, momentum=0.0, start="random")
    # Measured: 0.191 against 0.248 after 8 iterations.
    assert listening.spectral_convergence(fast, x) < 0.85 * listening.spectral_convergence(plain, x)


def test_pghi_blocks_join_like_one_block(monkeypatch):
    x = _signal(6.0, seed=2)
    mag = _stft_mag(x)
    whole = griffinlim.griffin_lim(mag, x.numel(), 0)
    monkeypatch.setattr(griffinlim, "BLOCK_FRAMES", 128)
    monkeypatch.setattr(griffinlim, "OVERLAP_FRAMES", 16)
    blocks = griffinlim.griffin_lim(mag, x.numel(), 0)
    # Phase integration carries on from the previous block's phases.
    assert listening.spectral_convergence(blocks, x) < 1.5 * listening.spectral_convergence(
        whole, x
    )


def test_pghi_quiet_and_empty_inputs():
    gen = torch.Generator().manual_seed(0)
    from melcodec.pghi import phase_start

    for mag in (torch.zeros(513, 5), torch.ones(513, 1), torch.rand(513, 2)):
        angles = phase_start(mag, MEL.hop_length, MEL.n_fft, gen)
        assert angles.shape == mag.shape and torch.isfinite(torch.view_as_real(angles)).all()
        assert torch.allclose(angles.abs(), torch.ones(()), atol=1e-5)


# ---------------------------------------------------------------------------
# Level envelope
# ---------------------------------------------------------------------------


def test_envelope_codes_levels_in_half_db_steps():
    t = torch.arange(3 * SPAN) / 16000
    amplitudes = torch.tensor([0.5, 0.05, 0.0]).repeat_interleave(SPAN)
    wave = amplitudes * torch.sin(2 * torch.pi * 440 * t)
    codes = loudness.envelope(wave, 4, SPAN)
    assert codes.dtype == np.uint8 and codes.shape == (4,)
    rms = loudness.levels(codes)
    expected = np.array([0.5, 0.05]) / np.sqrt(2)
    assert np.abs(20 * np.log10(rms[:2] / expected)).max() <= 0.25 + 1e-9
    # Silence, and a span past the end of the signal, are code 0 and decode to 0.
    assert list(codes[2:]) == [0, 0] and list(rms[2:]) == [0, 0]


def _span_errors_db(y: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    full = x.numel() // SPAN
    return 20 * np.log10(
        loudness._rms(y.numpy(), SPAN, full) / loudness._rms(x.numpy(), SPAN, full)
    )


def test_match_restores_each_span_level():
    x = _signal(4.0)
    codes = loudness.envelope(x, 16, SPAN)
    too_loud = 3.0 * x * torch.linspace(0.5, 2.0, x.numel())
    fixed = loudness.match(too_loud, codes, SPAN)
    assert abs(listening.level_error_db(fixed, x)) < 0.2
    assert np.abs(_span_errors_db(fixed, x)).max() < 0.6
    # An abrupt 18 dB step inside a span: the repeated passes pull the spans around it
    # in (measured: worst span 2.0 dB, file 0.25 dB; one pass leaves 3.6 and 0.48).
    step = x.clone()
    step[30_000:] *= 8
    fixed = loudness.match(step, codes, SPAN)
    assert abs(listening.level_error_db(fixed, x)) < 0.35
    assert np.abs(_span_errors_db(fixed, x)).max() < 2.5


def test_silent_spans_stay_silent():
    x = _signal(4.0)
    x[SPAN * 4 : SPAN * 9] = 0
    codes = loudness.envelope(x, 16, SPAN)
    assert list(codes[4:9]) == [0] * 5
    noise = 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    out = loudness.match(x + noise, codes, SPAN)
    # Between the centres of the first and the last silent span the gain is 0.
    assert torch.equal(out[int(SPAN * 4.5) : int(SPAN * 8.5)], torch.zeros(SPAN * 4))
    assert listening.rms_db(out[: SPAN * 4]) > -30


def test_match_boost_is_capped():
    x = _signal(1.0)
    codes = loudness.envelope(x, 4, SPAN)
    whisper = loudness.match(x * 1e-4, codes, SPAN)
    gain = listening.rms_db(whisper) - listening.rms_db(x * 1e-4)
    assert gain == pytest.approx(loudness.MAX_GAIN_DB, abs=0.01)


def _oracle(codec: Codec, monkeypatch, change) -> list[torch.Tensor]:
    """Make ``codec``'s decoder network return the true input tiles, changed by
    ``change``: a perfect network with a known fault."""
    captured: list[torch.Tensor] = []
    tile_bits = codec.tile_bits

    def remember(scaled, progress=None):
        captured.append(scaled.clone())
        return tile_bits(scaled, progress)

    monkeypatch.setattr(codec, "tile_bits", remember)
    monkeypatch.setattr(codec, "decode_tiles", lambda bits, progress=None: change(captured[-1]))
    return captured


def test_level_drift_of_the_network_is_undone(codec, monkeypatch):
    _oracle(codec, monkeypatch, lambda tiles: (tiles + 0.1).clamp(0, 1))
    x = _signal(6.0, seed=3) * 0.5
    data = codec.encode(x, 16000)
    heard, _ = codec.decode(data)
    assert abs(listening.level_error_db(heard, x)) < 1.0
    # Without the envelope the same drift is several dB: the check above has teeth.
    drifted, _ = codec.decode(data, DecodeOptions(match_level=False))
    assert listening.level_error_db(drifted, x) > 3.0


def test_small_tile_errors_do_not_blow_up_the_output(codec, monkeypatch):
    gen = torch.Generator().manual_seed(1)
    _oracle(
        codec,
        monkeypatch,
        lambda tiles: (tiles + 0.03 * torch.randn(tiles.shape, generator=gen)).clamp(0, 1),
    )
    x = _signal(6.0, seed=5) * 0.5
    data = codec.encode(x, 16000)
    # The inverse alone, without the envelope's help (the pseudo-inverse peaks at ~40x).
    raw, _ = codec.decode(data, DecodeOptions(match_level=False))
    assert listening.peak(raw) < 3 * listening.peak(x)
    heard, _ = codec.decode(data)
    assert listening.peak(heard) < 2 * listening.peak(x)


def test_the_envelope_is_in_the_file_and_counted_in_its_size(codec):
    x = _signal(6.0) * 0.25
    data = codec.encode(x, 16000)
    reader = bitstream.Reader(io.BytesIO(data))
    assert reader.header.level_spans == LEVEL_SPANS
    levels = b"".join(reader.chunk(i).levels for i in range(len(reader)))
    assert levels == loudness.envelope(x, len(reader) * LEVEL_SPANS, CODEC_SPAN).tobytes()
    payload = sum(len(reader.chunk(i).payload) for i in range(len(reader)))
    overhead = bitstream.header_size(reader.header) + len(reader) * (13 + LEVEL_SPANS)
    assert len(data) == payload + overhead


# ---------------------------------------------------------------------------
# Limiter
# ---------------------------------------------------------------------------


def test_limiter_acts_only_around_overshoot():
    x = 0.3 * np.sin(np.arange(16000) * 0.05).astype(np.float32)
    x[8000:8100] *= 5.0  # peaks at 1.5
    out, report = limiter.limit(x, 16000)
    assert np.abs(out).max() <= limiter.CEILING + 1e-6
    assert report.acted and report.peak == pytest.approx(1.5, abs=1e-3)
    assert report.over_share == pytest.approx(np.mean(np.abs(x) > limiter.FULL_SCALE))
    # Far from the overshoot nothing changed, and not much changed near it.
    assert np.array_equal(out[:7000], x[:7000]) and np.array_equal(out[9200:], x[9200:])
    assert report.changed_share < 0.05
    assert "1.50" in report.message() and "+3.5 dBFS" in report.message()


def test_limiter_leaves_legal_audio_alone():
    x = np.linspace(-1.0, 1.0, 999, dtype=np.float32) * limiter.FULL_SCALE
    out, report = limiter.limit(x, 16000)
    assert np.array_equal(out, x) and not report.acted


def test_integer_output_is_limited_and_float_is_not(tmp_path):
    x = torch.from_numpy(4 * synth(16000, 16000, seed=2)[:, 0])
    report = audio.write_audio(tmp_path / "a.wav", x, 16000)
    data, _ = sf.read(tmp_path / "a.wav", dtype="float32")
    assert report.acted and listening.clipped_share(torch.from_numpy(data)) == 0
    assert audio.write_audio(tmp_path / "b.wav", x, 16000, float32=True) is None
    data, _ = sf.read(tmp_path / "b.wav", dtype="float32")
    assert np.array_equal(data, x.numpy())


def test_decode_says_when_the_limiter_acted(tmp_path, tiny_model_path):
    # A loud input through a random network: level-matched noise at RMS ~0.7 peaks
    # above full scale, so the limiter must act and say so.
    loud = np.clip(3 * synth(16000 * 3, 16000, seed=9), -1, 1)
    sf.write(tmp_path / "loud.wav", loud, 16000)
    model = ["--model", str(tiny_model_path)]
    mlc, out = tmp_path / "loud.mlc", tmp_path / "out.wav"
    assert invoke("encode", str(tmp_path / "loud.wav"), str(mlc), *model).exit_code == 0
    result = invoke("decode", str(mlc), str(out), *model)
    assert result.exit_code == 0, result.output
    assert "limiter: decoded peak" in result.output and "% of samples" in result.output
    data, _ = sf.read(out, dtype="float32")
    assert listening.clipped_share(torch.from_numpy(data)) == 0
    # Float output is written as synthesised, and nothing is said.
    result = invoke("decode", str(mlc), str(tmp_path / "f.wav"), "--float", *model)
    assert result.exit_code == 0 and "limiter" not in result.output
    assert np.abs(sf.read(tmp_path / "f.wav", dtype="float32")[0]).max() > 1


# ---------------------------------------------------------------------------
# Old files
# ---------------------------------------------------------------------------


def test_version_1_file_decodes_without_envelope(tmp_path):
    # Made by melcodec 0.1 from examples/chipdisko-excerpt.flac (first 4.208 s).
    data = V1_FILE.read_bytes()
    header = bitstream.Reader(io.BytesIO(data)).header
    assert header.version == (1, 0) and header.level_spans == 0
    codec = Codec.load("default")
    wave, rate = codec.decode(data)
    assert rate == 16000 and wave.numel() == header.num_samples
    assert torch.isfinite(wave).all() and listening.peak(wave) > 0.01
    out = tmp_path / "old.wav"
    result = invoke("decode", str(V1_FILE), str(out))
    assert result.exit_code == 0, result.output
    written, _ = sf.read(out, dtype="float32")
    assert listening.clipped_share(torch.from_numpy(written)) == 0
    info = invoke("info", str(V1_FILE), "--json")
    assert '"format_version": "1.0"' in info.output and '"level_envelope": "none"' in info.output


def test_info_reports_the_decoded_peak(tmp_path, tiny_model_path):
    x = 0.4 * synth(16000 * 2, 16000, seed=1)
    sf.write(tmp_path / "x.wav", x, 16000)
    model = ["--model", str(tiny_model_path)]
    mlc = tmp_path / "x.mlc"
    assert invoke("encode", str(tmp_path / "x.wav"), str(mlc), *model).exit_code == 0
    result = invoke("info", str(mlc), "--json", "--decode", *model)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    expected, _ = Codec.load(str(tiny_model_path)).decode(mlc.read_bytes())
    assert summary["decoded_peak"] == pytest.approx(listening.peak(expected), abs=1e-4)
    assert summary["format_version"] == "2.0" and summary["level_envelope"] == "4 values per tile"
    # By default info only reads the header (and so starts without torch).
    quick = invoke("info", str(mlc), "--json")
    assert quick.exit_code == 0 and "decoded_peak" not in quick.output
    # Without --model the file's model is looked up by name, and may not be installed.
    result = invoke("info", str(mlc), "--json", "--decode")
    assert result.exit_code == 0 and "not decoded" in result.output


# ---------------------------------------------------------------------------
# The decoder network's fast path
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_fast_decoder_matches_the_plain_decoder(tiny_loaded, precision):
    from melcodec.model import FastDecoder

    bits = (torch.rand(3, 128, 16, 16, generator=torch.Generator().manual_seed(2)) > 0.5).to(
        torch.uint8
    )
    net = copy.deepcopy(tiny_loaded.net)
    gen = torch.Generator().manual_seed(3)
    for m in net.modules():
        # Untrained BatchNorm is the identity; give it statistics worth folding.
        if isinstance(m, torch.nn.BatchNorm2d):
            for t in (m.running_mean, m.weight.data, m.bias.data):
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    plain = net.decode_bits(bits)
    fast = FastDecoder(net.decoder, precision)
    assert fast.precision == precision
    out = fast.decode_bits(bits)
    assert out.dtype == torch.float32 and out.shape == plain.shape
    tolerance = 1e-5 if precision == "float32" else 5e-3
    assert float((out - plain).abs().max()) < tolerance


def test_decoder_precision_is_checked(tiny_loaded):
    from melcodec.errors import UsageError
    from melcodec.model import native_bfloat16

    auto = Codec(tiny_loaded).fast_decoder.precision
    assert auto == ("bfloat16" if native_bfloat16() else "float32")
    with pytest.raises(UsageError, match="precision"):
        Codec(tiny_loaded, decoder_precision="float8")
