"""Long files in pieces against whole-file processing: what the block joins cost.

melcodec encodes and decodes in blocks so that memory does not grow with the
file (resampler blocks, groups of tiles, level-matching windows, limiter
windows; Griffin-Lim has always run in blocks). Here the same real music is
coded twice in one process: as `melcodec encode`/`decode` do it, and with every
one of those blocks made as long as the file (whole-file processing). Reported:
latent bits and tile ranges that differ, and the decoded 16-bit files compared
sample by sample, overall and within 10 ms of every join.

    python bench/seams.py [--minutes 3] [--rate 44100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from common import machine, save
from memory import music

from melcodec import files, frontend, limiter, loudness, resampler
from melcodec.codec import Codec, DecodeOptions
from melcodec.melconfig import MEL

HUGE = 1 << 40
# The decode compared: to the source's rate, as a listener would ask for it.
OPTIONS = DecodeOptions(sample_rate="source")


@contextlib.contextmanager
def whole_file():
    """Every block of the streaming stages as long as any file: whole-file processing."""
    saved = [
        (resampler, "STREAM_BLOCK"),
        (frontend, "GROUP_TILES"),
        (loudness, "WINDOW_SPANS"),
        (limiter, "WINDOW"),
    ]
    values = [getattr(m, n) for m, n in saved]
    for m, n in saved:
        setattr(m, n, HUGE)
    try:
        yield
    finally:
        for (m, n), v in zip(saved, values, strict=True):
            setattr(m, n, v)


def joins(rate: int, length: int) -> np.ndarray:
    """Output sample positions (at ``rate``) of every block join of every stage."""
    length16 = length * MEL.sample_rate // rate + 1
    span = frontend.level_span(frontend.LEVEL_SPANS)
    at16 = [frontend.GROUP_TILES * frontend.TILE_HOP, loudness.WINDOW_SPANS * span]
    at_rate = [limiter.WINDOW]
    if rate != MEL.sample_rate:
        at16.append(resampler.Stream(rate, MEL.sample_rate).block)
        at_rate.append(resampler.Stream(MEL.sample_rate, rate).block)
    points = [p * rate // MEL.sample_rate for step in at16 for p in range(step, length16, step)]
    points += [p for step in at_rate for p in range(step, length, step)]
    return np.array(sorted(points), dtype=np.int64)


def bits_of(codec: Codec, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    reader = codec.open(io.BytesIO(data))
    rows = [codec.read_bits(reader, i) for i in range(len(reader))]
    return np.stack([r[0] for r in rows]), np.array([(r[1], r[2]) for r in rows])


def decode_pcm(codec: Codec, mlc: Path, out: Path) -> np.ndarray:
    files.decode_file(mlc, out, codec, OPTIONS, force=True)
    return sf.read(out, dtype="int16")[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=44100)
    args = ap.parse_args()
    torch.manual_seed(0)
    codec = Codec.load()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = tmp / "in.wav"
        sf.write(wav, music(args.minutes * 60, args.rate), args.rate, subtype="PCM_16")
        streamed = files.encode_file(wav, tmp / "streamed.mlc", codec).read_bytes()
        with whole_file():
            whole = files.encode_file(wav, tmp / "whole.mlc", codec).read_bytes()
        bits_s, ranges_s = bits_of(codec, streamed)
        bits_w, ranges_w = bits_of(codec, whole)
        # Both decodes start from the streamed file, so only the decoder's pieces differ.
        got = decode_pcm(codec, tmp / "streamed.mlc", tmp / "streamed.wav")
        with whole_file():
            ref = decode_pcm(codec, tmp / "streamed.mlc", tmp / "whole.wav")
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    near = np.zeros(diff.size, bool)
    reach = args.rate // 100  # 10 ms each side of a join
    points = joins(args.rate, diff.size)
    for p in points:
        near[max(0, p - reach) : p + reach] = True
    signal = float(np.sqrt(np.mean(ref.astype(np.float64) ** 2)))
    error = float(np.sqrt(np.mean(diff.astype(np.float64) ** 2)))
    payload = {
        "minutes": args.minutes,
        "rate": args.rate,
        "machine": machine(),
        "encode": {
            "bytes_identical": streamed == whole,
            "tiles": int(len(bits_s)),
            "latent_bits_differing": int((bits_s != bits_w).sum()),
            "latent_bits": int(bits_s.size),
            "max_range_difference": float(np.abs(ranges_s - ranges_w).max()),
        },
        "decode": {
            "samples": int(diff.size),
            "joins": int(len(points)),
            "samples_differing": int((diff > 0).sum()),
            "max_lsb": int(diff.max()),
            "max_lsb_near_joins": int(diff[near].max()) if near.any() else 0,
            "max_lsb_elsewhere": int(diff[~near].max()) if (~near).any() else 0,
            "snr_db": 20 * np.log10(signal / error) if error else float("inf"),
        },
    }
    e, d = payload["encode"], payload["decode"]
    m = payload["machine"]
    table = "\n".join(
        [
            f"{args.minutes:g} min of real music (the music-dev clips in a row) at "
            f"{args.rate} Hz, default model, coded in pieces as `melcodec` does and with "
            f"every streaming block as long as the file; {m['cpu']}, {m['date']}. "
            "`python bench/seams.py`.",
            "",
            "| | in pieces vs whole file |",
            "|---|---|",
            f"| .mlc bytes identical | {'yes' if e['bytes_identical'] else 'no'} |",
            f"| latent bits differing | {e['latent_bits_differing']:,} of "
            f"{e['latent_bits']:,} ({e['tiles']} tiles) |",
            f"| largest tile min/max difference | {e['max_range_difference']:.2g} |",
            f"| decoded 16-bit samples differing | {d['samples_differing']:,} of "
            f"{d['samples']:,} |",
            f"| largest difference, within 10 ms of a join ({d['joins']} joins) | "
            f"{d['max_lsb_near_joins']} LSB |",
            f"| largest difference elsewhere | {d['max_lsb_elsewhere']} LSB |",
            f"| signal to difference | {d['snr_db']:.1f} dB |",
        ]
    )
    save("seams", payload, table)


if __name__ == "__main__":
    main()
