"""melcodec: a lossy audio codec from perceptually trained mel-spectrogram autoencoders.

The public API::

    import melcodec
    data = melcodec.compress(None, waveform, sample_rate)  # default model -> .mlc bytes
    waveform, rate = melcodec.decompress(data)             # the model the file names
    header, chunks = melcodec.unpack(data)                 # the container alone
    melcodec.encode_file("song.wav", "song.mlc")
    melcodec.decode_file("song.mlc", "out.wav")

``Codec`` gives the stages: ``Codec.load(name).tile_bits(...)``, ``decode_tiles``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import AudioError, FormatError, MelcodecError, ModelError, UsageError

# Loaded on first use, so that ``melcodec --help`` and the container tools start
# without importing torch (a second of start-up).
_LAZY = {
    "compress": "api",
    "decompress": "api",
    "unpack": "api",
    "Chunk": "bitstream",
    "Header": "bitstream",
    "Codec": "codec",
    "DecodeOptions": "codec",
    "decode_file": "files",
    "encode_file": "files",
    "MEL": "mel",
    "MelConfig": "mel",
    "LoadedModel": "zoo",
    "load_model": "zoo",
}

if TYPE_CHECKING:
    from .api import compress, decompress, unpack
    from .bitstream import Chunk, Header
    from .codec import Codec, DecodeOptions
    from .files import decode_file, encode_file
    from .mel import MEL, MelConfig
    from .zoo import LoadedModel, load_model


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'melcodec' has no attribute {name!r}")


__all__ = [
    "MEL",
    "AudioError",
    "Chunk",
    "Codec",
    "DecodeOptions",
    "FormatError",
    "Header",
    "LoadedModel",
    "MelConfig",
    "MelcodecError",
    "ModelError",
    "UsageError",
    "compress",
    "decode_file",
    "decompress",
    "encode_file",
    "load_model",
    "unpack",
]
__version__ = "0.1.0"
