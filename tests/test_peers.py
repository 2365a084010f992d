"""Peer codecs for eval and the report: alignment, container overhead, round trips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import synth

from melcodec import benchmark, peers

needs_tools = pytest.mark.skipif(
    not (shutil.which("opusenc") and shutil.which("lame")),
    reason="opus-tools and lame are not installed (.ci/run installs them)",
)


def _music_like(n: int = 16000, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(synth(n, 16000, seed=seed)[:, 0])


@pytest.mark.parametrize("lag", [0, 37, 1152, -25])
def test_align_finds_a_known_delay(lag):
    ref = _music_like()
    delayed = torch.nn.functional.pad(ref, (lag, 0)) if lag >= 0 else ref[-lag:]
    aligned, found = peers.align(delayed, ref)
    assert found == lag and aligned.numel() == ref.numel()
    torch.testing.assert_close(aligned[2000:-2000], ref[2000:-2000])


def test_ogg_packet_sizes_follow_the_lacing():
    def page(packets: list[bytes]) -> bytes:
        lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
        return b"OggS" + bytes(22) + bytes([len(lacing)]) + lacing + b"".join(packets)

    stream = page([b"a" * 19, b"b" * 300]) + page([b"c" * 10])
    assert peers._ogg_packets(stream) == [19, 300, 10]


@needs_tools
@pytest.mark.parametrize("system", [peers.Opus(8), peers.Opus(6, wideband=True), peers.Mp3(8)])
def test_peer_round_trip_is_aligned_and_near_its_bitrate(system, make_audio):
    path = make_audio("music.wav", seconds=3.0, rate=16000)
    row = benchmark.measure(system, path)
    # align() clamps to +-MAX_LAG, so a lag at the clamp means it found nothing.
    assert abs(row["lag_samples"]) < peers.MAX_LAG
    # What each codec's decoder delays by (MP3: lame's 1,152-sample frame), to a hop.
    assert abs(row["lag_samples"] - (0 if isinstance(system, peers.Opus) else 1152)) < 300
    audio_kbps = (row["bytes"] - row["overhead_bytes"]) * 8 / row["seconds"] / 1000
    assert audio_kbps < system.kbps * 1.5
    assert 0 < row["e2e_mse"] < 0.2 and row["e2e_msssim"] > 0.3
    assert np.isnan(row["spec_nlpd"])  # peers have no spectrogram of their own


def test_griffin_lim_ceiling_has_no_bitstream(make_audio):
    row = benchmark.measure(peers.GriffinLimCeiling(gl_iters=4), make_audio("x.wav", seconds=1))
    assert row["bytes"] is None and row["kbit_per_s"] is None
    assert row["spec_mse"] == 0 and row["e2e_mse"] < 0.01


def test_missing_tools_are_reported_before_any_work(monkeypatch):
    monkeypatch.setattr(peers.shutil, "which", lambda tool: None)
    with pytest.raises(peers.UsageError, match="opus-tools, lame"):
        peers.default_peers()
