"""The three-call API: ``compress``, ``decompress`` and ``unpack``.

    import melcodec
    data = melcodec.compress("msssim-music", wave, 44100)   # -> .mlc bytes
    wave, rate = melcodec.decompress(data)                  # model named in the file
    header, chunks = melcodec.unpack(data)                  # the container, no model

``Codec`` stays for callers that want the stages (bits, tiles, log-mel).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch

from . import bitstream
from .codec import Codec, DecodeOptions
from .zoo import DEFAULT_MODEL, LoadedModel, load_model, resolve_name


@lru_cache(maxsize=4)
def _codec(name_or_path: str) -> Codec:
    # Loading a model costs a hash and a state dict: reuse it across calls.
    return Codec(load_model(name_or_path))


def _as_codec(model: str | LoadedModel | Codec) -> Codec:
    if isinstance(model, Codec):
        return model
    if isinstance(model, LoadedModel):
        return Codec(model)
    return _codec(str(model))


def compress(
    model: str | LoadedModel | Codec | None,
    wave: np.ndarray | torch.Tensor,
    sample_rate: int,
) -> bytes:
    """Waveform ``[samples]`` or ``[samples, channels]`` -> .mlc bytes.

    ``model`` is a shipped name, a model file's path, a loaded model or a
    Codec; None is the default model. Channels are mixed down to mono.
    """
    return _as_codec(model or DEFAULT_MODEL).encode(wave, sample_rate)


def decompress(
    data: bytes,
    model: str | LoadedModel | Codec | None = None,
    options: DecodeOptions | None = None,
) -> tuple[np.ndarray, int]:
    """.mlc bytes -> (float32 waveform ``[samples]``, sample rate).

    The model defaults to the one the file names (a shipped model); the rate to
    16 kHz (``DecodeOptions(sample_rate="source")`` gives the input's).
    """
    options = options or DecodeOptions()
    if model is None:
        model = named_model(data, options)
    wave, rate = _as_codec(model).decode(data, options)
    return wave.numpy().astype(np.float32, copy=False), rate


def named_model(data: bytes, options: DecodeOptions):
    """The installed model file that the header of ``data`` names (never a path)."""
    header = bitstream.Reader(io.BytesIO(data), options.max_hours * 3600).header
    return resolve_name(header.model_name)


def unpack(data: bytes) -> tuple[bitstream.Header, list[bitstream.Chunk]]:
    """.mlc bytes -> (header, chunks), every CRC and field checked; no model needed."""
    reader = bitstream.Reader(io.BytesIO(data))
    return reader.header, [reader.chunk(i) for i in range(len(reader))]
