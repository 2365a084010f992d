"""What ``melcodec info`` prints: an .mlc file's header, size, real bitrate, and
the peak of its decoded audio."""

from __future__ import annotations

import os
from pathlib import Path

from . import bitstream
from .errors import MelcodecError, UsageError

# The ids of docs/format.md's table (entropy.py and context.py define them; named
# here so that header-only use imports no torch).
PROBABILITY_NAMES = {
    0: "uniform (0)",
    1: "static-bernoulli (1)",
    2: "context-bernoulli (2, retired)",
    3: "context-mix (3, retired)",
    4: "checkerboard-mix (4)",
}


def describe(path: str | os.PathLike, decode: bool = False, model: str | None = None) -> dict:
    """Header fields and sizes; with ``decode``, also the decoded audio's peak at the
    default decode settings (16 kHz) and what the limiter would do to a 16-bit file.
    The model is the one the file names, unless ``model`` is given."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        reader = bitstream.Reader(fh)
        chunks = [reader.chunk(i) for i in range(len(reader))]
    h = reader.header
    seconds = h.num_samples / h.sample_rate
    payload = sum(len(c.payload) for c in chunks)
    pixels = h.num_tiles * h.n_mels * h.tile_frames
    return {
        "file": str(path),
        "bytes": size,
        "model": h.model_name,
        "model_sha256": h.model_sha256.hex(),
        "probability_model": PROBABILITY_NAMES.get(h.prob_model_id, f"id {h.prob_model_id}"),
        # What the latents really cost: each chunk's payload, fields and level bytes apart.
        "payload_bits_per_tile": round(payload * 8 / h.num_tiles, 1) if h.num_tiles else None,
        "tiles": h.num_tiles,
        "raw_tiles": sum(c.coding == 0 for c in chunks),
        "duration_s": round(seconds, 3),
        "source_sample_rate": h.source_sample_rate,
        "source_samples": h.source_num_samples,
        "samples_16k": h.num_samples,
        "mel": f"{h.n_mels} bands, n_fft {h.n_fft}, hop {h.hop_length}, {h.sample_rate} Hz",
        "kbit_per_s": round(size * 8 / seconds / 1000, 3) if seconds else None,
        "payload_kbit_per_s": round(payload * 8 / seconds / 1000, 3) if seconds else None,
        "bits_per_pixel": round(size * 8 / pixels, 4),
        "overhead_bytes": size - payload,
        "format_version": "{}.{}".format(*h.version),
        "level_envelope": f"{h.level_spans} values per tile" if h.level_spans else "none",
    } | (_decoded_peak(path, model, h.model_name) if decode else {})


def _decoded_peak(path: Path, model: str | None, named: str) -> dict:
    # Imported here: header-only use should not pay for the codec's imports.
    from .codec import Codec
    from .limiter import limit
    from .mel import MEL
    from .zoo import load_model, resolve_name

    try:
        codec = Codec(load_model(model) if model else load_model(resolve_name(named)))
        wave, _ = codec.decode(path.read_bytes())
    except MelcodecError as exc:
        return {"decoded_peak": f"not decoded: {exc}"}
    report = limit(wave.numpy(), MEL.sample_rate)[1]
    return {
        "decoded_peak": round(report.peak, 4),
        "limited_16bit_share": round(report.changed_share, 6),
    }
