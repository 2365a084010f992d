"""The front end's fixed parameters, without torch: the mel analysis and the tile size.

Every model is trained on spectrograms made with these; a file records them and a
decoder refuses others (bitstream.py). Torch-free so that quick commands
(``melcodec models``, ``info --no-decode``) can use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 260
    n_mels: int = 256
    f_min: float = 0.0
    f_max: float = 8000.0
    log_eps: float = 0.001

    def to_dict(self) -> dict:
        return asdict(self)


MEL = MelConfig()
# Frames per tile: the autoencoder's input is 256 mel bands x 256 frames (4.16 s).
TILE_FRAMES = 256
