"""The encode/decode pipeline: waveform <-> .mlc bytes with one model.

encode: 16 kHz mono -> scaled log-mel tiles -> encoder bits -> probability
        model -> chunks -> container
decode: container -> bits -> decoder -> unscale -> inverse mel -> phase start
        (PGHI) + Griffin-Lim -> level envelope matched
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from . import audio, bitstream, entropy, frontend, limits, mel, resampler, tiles
from .defaults import DEFAULT_GL_ITERS, DEFAULT_GL_MOMENTUM
from .errors import AudioError, FormatError, ModelError, UsageError
from .mel import DEFAULT_INVERSE, MEL
from .melconfig import TILE_FRAMES
from .model import DOWNSAMPLING, FastDecoder
from .zoo import DEFAULT_MODEL, LoadedModel, load_model

# Tiles through the networks at once: bounds memory on hour-long files.
NETWORK_BATCH = 8
LEVEL_SPANS = frontend.LEVEL_SPANS


@dataclass
class DecodeOptions:
    gl_iters: int = DEFAULT_GL_ITERS
    gl_momentum: float = DEFAULT_GL_MOMENTUM
    seed: int = 0
    # None: 16 kHz; "source": the rate in the header; or an integer rate.
    sample_rate: int | str | None = None
    # "pghi" (phase-gradient integration) or "random", Griffin-Lim's starting phase.
    phase_start: str = "pghi"
    # Match the level envelope a file carries (version 2 files); False hears the model's own.
    match_level: bool = True
    # The inverse mel filterbank, "METHOD[:STRENGTH]" (mel.inverse_matrix); "pinv" is 0.1's.
    inverse_mel: str = DEFAULT_INVERSE
    # Longest audio a file may claim; longer files are refused before any work.
    max_hours: float = limits.MAX_SECONDS / 3600


class Codec:
    """A model plus its probability model: ``encode(wave, rate)``, ``decode(data)``.

    ``max_hours`` bounds the audio it encodes into one file (24 h, as a decoder
    accepts by default: ``DecodeOptions.max_hours``). ``decoder_precision``
    ("auto", "float32", "bfloat16"; default from $MELCODEC_DECODER_PRECISION,
    else "auto") is the decoder network's
    arithmetic; see :class:`model.FastDecoder`. Encoding is always float32, so
    the bits a file holds do not depend on the machine's instruction set.
    """

    def __init__(
        self,
        model: LoadedModel,
        prob_model_id: int | None = None,
        decoder_precision: str | None = None,
        max_hours: float = limits.MAX_SECONDS / 3600,
    ):
        self.model = model
        # Longest audio a file may hold (bitstream.validate).
        self.max_seconds = max_hours * 3600
        if prob_model_id is None:
            prob_model_id = entropy.best_model_id(model.probability)
        self.prob = entropy.probability_model(prob_model_id, model.probability)
        c = model.net.cfg.latent_channels
        side = MEL.n_mels // DOWNSAMPLING
        self.latent_shape = (c, side, side)
        precision = decoder_precision or os.environ.get("MELCODEC_DECODER_PRECISION", "auto")
        try:
            self.fast_decoder = FastDecoder(model.net.decoder, precision)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL) -> Codec:
        return cls(load_model(name_or_path))

    # -- encoding ---------------------------------------------------------
    def encode(
        self, wave: torch.Tensor | np.ndarray, sample_rate: int, progress: Callable | None = None
    ) -> bytes:
        """Waveform ``[samples]`` or ``[samples, channels]`` at any rate -> .mlc bytes."""
        data = np.asarray(wave, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
            raise AudioError(
                f"expected a non-empty waveform [samples] or [samples, channels], not {data.shape}"
            )
        return self.encode_blocks([data], sample_rate, data.shape[0], progress)

    def encode_blocks(
        self,
        blocks: Iterable[np.ndarray],
        sample_rate: int,
        frames: int,
        progress: Callable | None = None,
    ) -> bytes:
        """Audio in consecutive blocks ``[samples, channels]`` -> .mlc bytes, in bounded memory.

        ``frames`` (the samples the blocks hold in all) sizes the progress, in tiles.
        The bytes do not depend on how the audio is cut into blocks.
        """
        # What the decoder would refuse, refused before anything is written.
        if not limits.MIN_RATE <= sample_rate <= limits.MAX_RATE:
            raise AudioError(
                f"sample rate {sample_rate} Hz is outside {limits.MIN_RATE}-{limits.MAX_RATE} Hz"
            )
        total = frontend.num_tiles(-(-frames * MEL.sample_rate // sample_rate))
        resample = resampler.Stream(sample_rate, MEL.sample_rate)
        cutter = frontend.Cutter()
        chunks: list[bitstream.Chunk] = []
        source_samples = 0
        for block in blocks:
            if not np.isfinite(block).all():
                first = source_samples + int(np.argmax(~np.isfinite(block).all(axis=1)))
                raise AudioError(
                    f"waveform contains NaN or infinite samples (first at sample {first})"
                )
            source_samples += block.shape[0]
            for group in cutter.push(resample.push(audio.to_mono(block))):
                chunks += self._code(group, progress, total)
        for group in cutter.push(resample.finish()) + cutter.finish():
            chunks += self._code(group, progress, total)
        if not source_samples:
            raise AudioError("expected a non-empty waveform, not 0 samples")
        return self._container(sample_rate, source_samples, cutter.received, chunks)

    def encode_16k(
        self,
        wave: torch.Tensor,
        source_rate: int,
        source_samples: int,
        progress: Callable | None = None,
    ) -> bytes:
        """A 16 kHz waveform (resampled from ``source_rate``) -> .mlc bytes."""
        groups = frontend._all_groups(wave)
        total = sum(len(g.levels) for g in groups)
        chunks = [c for g in groups for c in self._code(g, progress, total)]
        return self._container(source_rate, source_samples, wave.numel(), chunks)

    def _container(
        self, source_rate: int, source_samples: int, samples: int, chunks: list[bitstream.Chunk]
    ) -> bytes:
        header = self._header(source_rate, source_samples, samples, len(chunks))
        out = io.BytesIO()
        try:
            bitstream.write(out, header, chunks, self.max_seconds)
        except FormatError as exc:
            # What a decoder would refuse is refused here, before any file exists.
            raise AudioError(f"cannot encode: {exc}") from None
        return out.getvalue()

    def _code(
        self, group: frontend.Group, progress: Callable | None, total: int
    ) -> list[bitstream.Chunk]:
        """One group of analysed tiles -> its chunks."""
        analysis = group.analysis
        bits = self.tile_bits(analysis.scaled)
        chunks = []
        for i, (coding, payload) in enumerate(entropy.encode_tiles(self.prob, bits)):
            lo, hi = float(analysis.lo[i]), float(analysis.hi[i])
            chunks.append(bitstream.Chunk(lo, hi, coding, payload, group.levels[i].tobytes()))
        if progress:
            progress(min(group.first + len(bits), total), total)
        return chunks

    def tile_bits(self, scaled: torch.Tensor, progress: Callable | None = None) -> np.ndarray:
        """Scaled tiles ``[n, 256, 256]`` -> bits ``[n, C, 16, 16]`` (uint8)."""
        out = []
        for i in range(0, len(scaled), NETWORK_BATCH):
            x = scaled[i : i + NETWORK_BATCH].unsqueeze(1)
            out.append(self.model.net.encode_bits(x).numpy())
            if progress:
                progress(min(i + NETWORK_BATCH, len(scaled)), len(scaled))
        return np.concatenate(out)

    def _header(self, source_rate: int, source_samples: int, samples: int, count: int):
        return bitstream.Header(
            model_name=self.model.name,
            model_sha256=self.model.sha256,
            prob_model_id=self.prob.id,
            tile_frames=tiles.TILE_FRAMES,
            **MEL.to_dict(),
            source_sample_rate=source_rate,
            source_num_samples=source_samples,
            num_samples=samples,
            num_tiles=count,
            level_spans=LEVEL_SPANS,
        )

    # -- decoding ---------------------------------------------------------
    def decode(
        self, data: bytes, options: DecodeOptions | None = None, progress: Callable | None = None
    ) -> tuple[torch.Tensor, int]:
        """.mlc bytes -> (waveform, sample rate).

        ``progress(done, total)`` counts in tiles: each through the networks, then
        through Griffin-Lim.
        """
        decoded = self.decode_blocks(data, options, progress)
        return torch.cat([torch.zeros(0), *decoded.blocks]), decoded.rate

    def decode_blocks(
        self, data: bytes, options: DecodeOptions | None = None, progress: Callable | None = None
    ) -> Decoded:
        """:meth:`decode` in pieces, in memory bounded by a few Griffin-Lim blocks.

        The file is parsed and every chunk's CRC checked before this returns;
        the audio is made as the pieces are taken.
        """
        options = options or DecodeOptions()
        reader = self.open(io.BytesIO(data), options.max_hours * 3600)
        h = reader.header
        # Each chunk read (and CRC-checked) once, for its bits and its level envelope.
        chunks = [reader.chunk(i) for i in range(len(reader))]
        mel.parse_inverse(options.inverse_mel)
        rate = h.sample_rate if options.sample_rate is None else options.sample_rate
        rate = h.source_sample_rate if rate == "source" else int(rate)
        if rate == h.source_sample_rate:
            length = h.source_num_samples
        else:
            length = limits.resampled_length(h.num_samples, h.sample_rate, rate)
        return Decoded(rate, length, self._blocks(h, chunks, options, rate, length, progress))

    def _blocks(
        self,
        h: bitstream.Header,
        chunks: list[bitstream.Chunk],
        options: DecodeOptions,
        rate: int,
        length: int,
        progress: Callable | None,
    ) -> Iterator[torch.Tensor]:
        count = len(chunks)
        steps = {"networks": 0, "phase": 0}

        def report() -> None:
            if progress:
                progress(steps["networks"] + steps["phase"], 2 * count)

        cache: dict[int, torch.Tensor] = {}

        def logmel_at(begin: int, stop: int) -> torch.Tensor:
            first, last = begin // TILE_FRAMES, -(-stop // TILE_FRAMES)
            for index in [t for t in cache if t < first]:
                del cache[index]
            missing = [t for t in range(first, last) if t not in cache]
            for i in range(0, len(missing), NETWORK_BATCH):
                batch = missing[i : i + NETWORK_BATCH]
                decoded = self._logmel_tiles(h, [chunks[t] for t in batch])
                cache.update(zip(batch, decoded, strict=True))
                steps["networks"] += len(batch)
                report()
            joined = torch.cat([cache[t] for t in range(first, last)], dim=1)
            return joined[:, begin - first * TILE_FRAMES : stop - first * TILE_FRAMES]

        def phase(done: int, frames: int) -> None:
            steps["phase"] = count * done // frames
            report()

        levels = None
        if h.level_spans and options.match_level:
            levels = np.stack([np.frombuffer(c.levels, np.uint8) for c in chunks])
        pieces = frontend.synthesis_blocks(
            logmel_at,
            count * TILE_FRAMES,
            h.num_samples,
            options.gl_iters,
            options.gl_momentum,
            options.seed,
            phase,
            options.phase_start,
            levels,
            options.inverse_mel,
        )
        if rate != h.sample_rate:
            pieces = _resampled(pieces, h.sample_rate, rate)
        yield from frontend.exactly(pieces, length)

    def open(self, fh, max_seconds: float = limits.MAX_SECONDS) -> bitstream.Reader:
        """Parse a container and check that it was made with this model and front end."""
        reader = bitstream.Reader(fh, max_seconds)
        h = reader.header
        entropy.refuse_retired(h.prob_model_id)
        if h.model_name != self.model.name or not self.model.decodes(
            h.model_sha256, h.prob_model_id
        ):
            raise ModelError(
                f"file was made with model {h.model_name!r} ({h.model_sha256.hex()[:12]}), "
                f"not {self.model.name!r} ({self.model.sha256.hex()[:12]}): pass --model"
            )
        if bitstream.front_end(h) != bitstream.front_end(self._header(0, 0, 0, 0)):
            raise FormatError("file uses mel parameters this version cannot decode")
        self._prob_for(h.prob_model_id)
        return reader

    def _prob_for(self, model_id: int):
        """The probability model a file names; the codec's own stays as it is."""
        if model_id == self.prob.id:
            return self.prob
        return entropy.probability_model(model_id, self.model.probability)

    def read_bits(self, reader: bitstream.Reader, index: int) -> tuple[np.ndarray, float, float]:
        chunk = reader.chunk(index)
        return self._chunk_bits(reader.header, chunk), chunk.lo, chunk.hi

    def _chunk_bits(self, header: bitstream.Header, chunk: bitstream.Chunk) -> np.ndarray:
        prob = self._prob_for(header.prob_model_id)
        return prob.decode(chunk.coding, chunk.payload, self.latent_shape)

    def decode_tiles(self, bits: np.ndarray, progress: Callable | None = None) -> torch.Tensor:
        """Bits ``[n, C, 16, 16]`` -> scaled tiles ``[n, 256, 256]``."""
        out = []
        for i in range(0, len(bits), NETWORK_BATCH):
            b = torch.from_numpy(np.ascontiguousarray(bits[i : i + NETWORK_BATCH]))
            out.append(self.fast_decoder.decode_bits(b)[:, 0])
            if progress:
                progress(min(i + NETWORK_BATCH, len(bits)), len(bits))
        return torch.cat(out)

    def decode_logmel(
        self, reader: bitstream.Reader, progress: Callable | None = None
    ) -> torch.Tensor:
        chunks = [reader.chunk(i) for i in range(len(reader))]
        return tiles.join(self._logmel_tiles(reader.header, chunks, progress))

    def _logmel_tiles(
        self,
        header: bitstream.Header,
        chunks: list[bitstream.Chunk],
        progress: Callable | None = None,
    ) -> torch.Tensor:
        """Chunks -> their log-mel tiles ``[n, n_mels, 256]``."""
        prob = self._prob_for(header.prob_model_id)
        coded = [(c.coding, c.payload) for c in chunks]
        bits = entropy.decode_tiles(prob, coded, self.latent_shape)
        lo = torch.tensor([c.lo for c in chunks])
        hi = torch.tensor([c.hi for c in chunks])
        return tiles.unscale(self.decode_tiles(bits, progress), lo, hi)


@dataclass
class Decoded:
    """A decode in progress: its rate, its length, and its samples as they are made."""

    rate: int
    samples: int
    blocks: Iterator[torch.Tensor]


def _resampled(pieces: Iterable[torch.Tensor], old: int, new: int) -> Iterator[torch.Tensor]:
    stream = resampler.Stream(old, new)
    for piece in pieces:
        yield stream.push(piece)
    yield stream.finish()
