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

from .api import compress, decompress, unpack
from .bitstream import Chunk, Header
from .codec import Codec, DecodeOptions
from .errors import AudioError, FormatError, MelcodecError, ModelError, UsageError
from .files import decode_file, encode_file
from .mel import MEL, MelConfig
from .zoo import LoadedModel, load_model

__all__ = [
    "MEL",
    "AudioError",
    "Chunk",
    "Header",
    "Codec",
    "DecodeOptions",
    "FormatError",
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
