"""melcodec: a lossy audio codec from perceptually trained mel-spectrogram autoencoders.

The public API::

    import melcodec
    codec = melcodec.Codec.load()                 # the default model, or a name or path
    data = codec.encode(waveform, sample_rate)    # -> .mlc bytes
    waveform, rate = codec.decode(data)
    melcodec.encode_file("song.wav", "song.mlc")
    melcodec.decode_file("song.mlc", "out.wav")
"""

from .codec import Codec, DecodeOptions
from .errors import AudioError, FormatError, MelcodecError, ModelError, UsageError
from .files import decode_file, encode_file
from .mel import MEL, MelConfig
from .zoo import LoadedModel, load_model

__all__ = [
    "MEL",
    "AudioError",
    "Codec",
    "DecodeOptions",
    "FormatError",
    "LoadedModel",
    "MelConfig",
    "MelcodecError",
    "ModelError",
    "UsageError",
    "decode_file",
    "encode_file",
    "load_model",
]
__version__ = "0.1.0"
