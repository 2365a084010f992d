"""The front end's fixed parameters, without torch: the mel analysis and the tile size.

Every model is trained on spectrograms made with these; a file records them and a
decoder refuses others (bitstream.py). Torch-free so that quick commands
(``melcodec models``, ``info --no-decode``) can use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MelConfig:
    """A mel analysis, magnitude (power 1). :data:`MEL` is the paper's, the one every
    model is trained on. No field has a default: a MelConfig for any other analysis
    states every value instead of taking the paper's unnoticed."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    log_eps: float

    def to_dict(self) -> dict:
        return asdict(self)


# The paper's (Namgyal et al. 2023).
MEL = MelConfig(
    sample_rate=16000,
    # The Hann window is as long as the FFT.
    n_fft=1024,
    # With center=False, 67,328 samples (the paper's 4.208 s clips) give 256 frames.
    hop_length=260,
    # More bands than 513 FFT bins can fill: band 0 is an all-zero filter (mel.py).
    n_mels=256,
    f_min=0.0,
    f_max=8000.0,
    # The spectrogram is log(mel + log_eps), then scaled to [0, 1] per tile.
    log_eps=0.001,
)
# Frames per tile: the autoencoder's input is 256 mel bands x 256 frames (4.16 s).
TILE_FRAMES = 256
