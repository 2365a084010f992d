"""What melcodec accepts, in one place: the encoder and the decoder refuse the same.

Plain constants and integer arithmetic, no torch: the container's checks
(``bitstream.validate``) run before anything heavy is imported or allocated.
"""

from __future__ import annotations

import math

MIN_RATE = 8000
MAX_RATE = 192000
# The container's ceiling on tiles; the duration limit below is far lower.
MAX_TILES = 1 << 24
# Longest signal a file may hold, in seconds at the mel rate: decoding is bounded
# work per file. Raise it with --max-hours (or ``max_seconds``) for longer recordings.
MAX_SECONDS = 24 * 3600
# Largest |log-mel| a tile's min or max may claim: exp(50) is far above any finite
# PCM input's spectrum and far below float32's range, so nothing overflows downstream.
MAX_LOG_MEL = 50.0


def resampled_length(num_samples: int, orig_rate: int, new_rate: int) -> int:
    """Sample count after ``audio.resample`` (torchaudio rounds up)."""
    if orig_rate == new_rate:
        return num_samples
    return -(-num_samples * new_rate // orig_rate)


def frames_to_cover(num_samples: int, n_fft: int, hop_length: int) -> int:
    """Frames needed so that synthesis can rebuild every sample.

    A frame's synthesis reaches half a hop past its window's centre region, so
    samples up to ``hop/2`` beyond the last window are still reconstructed (from the
    edge frame). This keeps the paper's 67,328-sample clip at exactly 256 frames.
    """
    uncovered = num_samples - n_fft - hop_length // 2
    return 1 if uncovered <= 0 else math.ceil(uncovered / hop_length) + 1


def num_tiles(num_samples: int, n_fft: int, hop_length: int, tile_frames: int) -> int:
    return math.ceil(frames_to_cover(num_samples, n_fft, hop_length) / tile_frames)
