"""Other codecs as systems for ``melcodec eval`` and the report: Opus, MP3, and the
Griffin-Lim ceiling (the original mel through Griffin-Lim, no bits at all).

Peers get what our codec gets, 16 kHz mono, and their decoded audio is aligned
to the input (MP3 adds a fixed delay) before it is measured. Their container
overhead (Ogg pages and headers, MP3 frame headers and tags) is counted apart.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import audio, frontend, tiles
from .codec import DEFAULT_GL_ITERS, DecodeOptions
from .errors import UsageError
from .mel import MEL

# Opus encoder controls (opus_defines.h): OPUS_SET_BANDWIDTH and its wideband value.
_OPUS_SET_BANDWIDTH, _OPUS_WIDEBAND = 4008, 1103
MAX_LAG = 4096


def _run(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise UsageError(f"{cmd[0]} is not installed (Debian: opus-tools, lame)")
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode:
        raise UsageError(f"{cmd[0]} failed: {done.stderr.decode(errors='replace').strip()[:200]}")


class _ExternalCodec:
    """Encodes through temporary files with a command-line codec."""

    suffix = ""
    align = True
    has_bitstream = True

    def _encode_cmd(self, wav: Path, out: Path) -> list[str]:
        raise NotImplementedError

    def _decode_cmd(self, data: Path, wav: Path) -> list[str]:
        raise NotImplementedError

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            wav, out = Path(tmp) / "in.wav", Path(tmp) / f"out{self.suffix}"
            sf.write(wav, wave.numpy(), MEL.sample_rate, subtype="PCM_16")
            _run(self._encode_cmd(wav, out))
            return out.read_bytes()

    def decode(self, data: bytes) -> torch.Tensor:
        with tempfile.TemporaryDirectory() as tmp:
            src, wav = Path(tmp) / f"in{self.suffix}", Path(tmp) / "out.wav"
            src.write_bytes(data)
            _run(self._decode_cmd(src, wav))
            samples, rate = sf.read(wav, dtype="float32", always_2d=True)
        wave = torch.from_numpy(samples.mean(axis=1))
        return audio.resample(wave, rate, MEL.sample_rate)

    def reconstruct(self, scaled: torch.Tensor) -> None:
        return None  # no spectrogram of its own: measured end to end only


class Opus(_ExternalCodec):
    suffix = ".opus"

    def __init__(self, kbps: int, wideband: bool = False):
        self.kbps, self.wideband = kbps, wideband
        self.name = f"opus {kbps} kbit/s" + (" wideband" if wideband else "")

    def _encode_cmd(self, wav: Path, out: Path) -> list[str]:
        cmd = ["opusenc", "--quiet", "--bitrate", str(self.kbps)]
        if self.wideband:
            cmd += ["--set-ctl-int", f"{_OPUS_SET_BANDWIDTH}={_OPUS_WIDEBAND}"]
        return [*cmd, str(wav), str(out)]

    def _decode_cmd(self, data: Path, wav: Path) -> list[str]:
        return ["opusdec", "--quiet", "--rate", str(MEL.sample_rate), str(data), str(wav)]

    def overhead(self, data: bytes) -> int:
        """Bytes that are not audio packets: Ogg page headers, OpusHead and OpusTags."""
        return len(data) - sum(_ogg_packets(data)[2:])


class Mp3(_ExternalCodec):
    suffix = ".mp3"

    def __init__(self, kbps: int):
        self.kbps = kbps
        self.name = f"mp3 {kbps} kbit/s"

    def _encode_cmd(self, wav: Path, out: Path) -> list[str]:
        return ["lame", "--quiet", "-b", str(self.kbps), "--cbr", str(wav), str(out)]

    def _decode_cmd(self, data: Path, wav: Path) -> list[str]:
        return ["lame", "--quiet", "--decode", str(data), str(wav)]

    def overhead(self, data: bytes) -> int:
        """The Xing/LAME information frame (no audio) and any ID3 tags."""
        return _mp3_overhead(data)


class GriffinLimCeiling:
    """The original mel, no network and no bits, through the codec's synthesis
    (inverse mel, phase start, Griffin-Lim, the input's level envelope)."""

    name = "griffin-lim ceiling"
    align = False
    has_bitstream = False

    def __init__(
        self,
        gl_iters: int = DEFAULT_GL_ITERS,
        options: DecodeOptions | None = None,
        name: str = "griffin-lim ceiling",
    ):
        self.options = options or DecodeOptions(gl_iters=gl_iters)
        self.name = name

    def encode(self, wave: torch.Tensor, rate: int, length: int) -> bytes:
        self._wave = wave  # nothing is coded: the "stream" is the original itself
        return b""

    def decode(self, data: bytes) -> torch.Tensor:
        a = frontend.analyse(self._wave)
        logmel = tiles.join(tiles.unscale(a.scaled, a.lo, a.hi))
        o = self.options
        levels = frontend.level_envelope(self._wave, len(a.scaled)) if o.match_level else None
        return frontend.synthesise(
            logmel,
            a.num_samples,
            o.gl_iters,
            o.gl_momentum,
            o.seed,
            phase_start=o.phase_start,
            levels=levels,
            inverse=o.inverse_mel,
        )

    def reconstruct(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled

    def overhead(self, data: bytes) -> int:
        return 0


def align(decoded: torch.Tensor, reference: torch.Tensor, max_lag: int = MAX_LAG):
    """Shift ``decoded`` by the lag of its cross-correlation peak with ``reference``.

    Returns (aligned waveform of the reference's length, lag in samples).
    """
    n = reference.numel()
    a = np.zeros(n + 2 * max_lag)
    a[: min(decoded.numel(), a.size)] = decoded.numpy()[: a.size]
    size = 1 << int(np.ceil(np.log2(a.size + n)))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(reference.numpy(), size)), size)
    lags = np.r_[corr[: max_lag + 1], corr[-max_lag:]]
    lag = int(np.argmax(lags))
    lag = lag if lag <= max_lag else lag - lags.size
    shifted = decoded[lag:] if lag >= 0 else torch.nn.functional.pad(decoded, (-lag, 0))
    return audio.fit_length(shifted, n), lag


def _ogg_packets(data: bytes) -> list[int]:
    """Sizes of the packets in an Ogg stream (pages joined by their lacing values)."""
    sizes, current, pos = [], 0, 0
    while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
        count = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + count]
        for value in lacing:
            current += value
            if value < 255:
                sizes.append(current)
                current = 0
        pos += 27 + count + sum(lacing)
    return sizes


def _mp3_overhead(data: bytes) -> int:
    overhead, pos = 0, 0
    if data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        overhead = pos = 10 + size
    first = _mp3_frame_length(data, pos)
    if first and (b"Xing" in data[pos : pos + first] or b"Info" in data[pos : pos + first]):
        overhead += first
    if data[-128:-125] == b"TAG":
        overhead += 128
    return overhead


def _mp3_frame_length(data: bytes, pos: int) -> int:
    """Length of the MPEG-2/2.5 layer III frame at ``pos`` (lame's low rates), else 0."""
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return 0
    version = (data[pos + 1] >> 3) & 3  # 0: 2.5, 2: 2, 3: 1
    rates = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
    kbps_v1 = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    kbps_v2 = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
    index, rate_index = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3
    if version not in rates or rate_index == 3 or index in (0, 15):
        return 0
    kbps = (kbps_v1 if version == 3 else kbps_v2)[index]
    rate = rates[version][rate_index]
    padding = (data[pos + 2] >> 1) & 1
    return (144 if version == 3 else 72) * kbps * 1000 // rate + padding


def default_peers() -> list:
    """The peers of the README's comparison, at rates near ours.

    Raises a UsageError up front when their command-line tools are missing.
    """
    missing = [tool for tool in ("opusenc", "opusdec", "lame") if shutil.which(tool) is None]
    if missing:
        raise UsageError(
            f"peer codecs need {', '.join(missing)} (Debian: opus-tools, lame); "
            "install them or leave the peers out"
        )
    return [
        Opus(6),
        Opus(8),
        Opus(12),
        Opus(6, wideband=True),
        Opus(8, wideband=True),
        Mp3(8),
        GriffinLimCeiling(),
    ]
