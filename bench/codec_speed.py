"""Encode and decode speed of the codec as real-time factors, on music-dev.

Medians over clips of (clip duration / wall time); decode is split into the
network (bits -> tiles), inverse mel, the phase start (PGHI), Griffin-Lim
with that start, and the level match. Also records each file's size against
the 4,096-byte-per-tile bound.

    python bench/codec_speed.py [--model default] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from common import machine, median, music_dev, save

from melcodec import Codec, audio, bitstream, frontend, loudness, mel
from melcodec.codec import DEFAULT_GL_ITERS, DEFAULT_GL_MOMENTUM, DecodeOptions
from melcodec.griffinlim import griffin_lim
from melcodec.pghi import phase_start
from melcodec.zoo import DEFAULT_MODEL


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--repeats", type=int, default=5, help="runs per clip; the median is kept")
    args = ap.parse_args()
    codec = Codec.load(args.model)
    # The same decode with the decoder network in float32, side by side.
    codec32 = Codec(codec.model, decoder_precision="float32")
    keys = (
        "encode",
        "decode",
        "decode_float32",
        "network",
        "inverse_mel",
        "pghi",
        "griffin_lim",
        "level",
    )
    rtf: dict[str, list[float]] = {k: [] for k in keys}
    sizes = []
    for path in music_dev():
        data, rate = audio.read_audio(path)
        seconds = data.shape[0] / rate
        runs: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(args.repeats):
            blob, t_enc = timed(codec.encode, data, rate)
            (wave, _), t_dec = timed(codec.decode, blob)
            _, t_dec32 = timed(codec32.decode, blob)
            reader = codec.open(io.BytesIO(blob))
            logmel, t_net = timed(codec.decode_logmel, reader)
            mag, t_inv = timed(mel.inverse_log_mel, logmel)
            n = reader.header.num_samples
            gen = torch.Generator().manual_seed(0)
            _, t_pghi = timed(phase_start, mag, mel.MEL.hop_length, mel.MEL.n_fft, gen)
            out, t_gl = timed(griffin_lim, mag, n, DEFAULT_GL_ITERS, DEFAULT_GL_MOMENTUM)
            h = reader.header
            levels = b"".join(reader.chunk(i).levels for i in range(len(reader)))
            codes = np.frombuffer(levels, np.uint8)
            _, t_lev = timed(loudness.match, out, codes, frontend.level_span(h.level_spans))
            times = (t_enc, t_dec, t_dec32, t_net, t_inv, t_pghi, t_gl, t_lev)
            for k, t in zip(keys, times, strict=True):
                runs[k].append(seconds / t)
        for k in keys:
            rtf[k].append(median(runs[k]))
        count = frontend.num_tiles(reader.header.num_samples)
        source, _ = codec.decode(blob, DecodeOptions(sample_rate="source"))
        exact = wave.numel() == reader.header.num_samples and source.numel() == data.shape[0]
        sizes.append({"clip": path.name, "bytes": len(blob), "tiles": count, "exact_length": exact})
    summary = {k: median(v) for k, v in rtf.items()}
    worst = max(s["bytes"] - 4096 * s["tiles"] for s in sizes)
    m = machine()
    name_len = len(codec.model.name.encode())
    lines = [
        f"Codec speed on {len(sizes)} music-dev clips (4.2 s each), model `{codec.model.name}`, "
        f"{args.repeats} runs per clip; {m['cpu']}, {m['torch_threads']} threads, "
        f"torch {m['torch']}, {m['date']}. x real time = audio seconds per wall second "
        "(median over clips).",
        "",
        "| stage | x real time |",
        "|---|---|",
        f"| encode (resample, mel, encoder, coding, container) | {summary['encode']:.1f} |",
        f"| decode, whole ({DEFAULT_GL_ITERS} Griffin-Lim iterations; decoder network in "
        f"{codec.fast_decoder.precision}) | {summary['decode']:.1f} |",
        f"| decode, whole, decoder network in float32 | {summary['decode_float32']:.1f} |",
        f"| decode: bits -> mel tiles (entropy decoding, network) | {summary['network']:.1f} |",
        f"| decode: inverse mel (truncated-SVD pseudo-inverse) | {summary['inverse_mel']:.0f} |",
        f"| decode: phase start alone (PGHI) | {summary['pghi']:.0f} |",
        f"| decode: PGHI start + {DEFAULT_GL_ITERS} Griffin-Lim iterations "
        f"| {summary['griffin_lim']:.1f} |",
        f"| decode: level envelope match | {summary['level']:.0f} |",
        "",
        f"File size: at most {worst:+d} bytes against 4,096 bytes per tile "
        f"(container: {bitstream.header_size(reader.header) - 4 * count} bytes per file with a "
        f"{name_len}-byte model name, plus {4 + bitstream.chunk_overhead(reader.header)} bytes "
        "per tile). "
        f"Decoded length exact at 16 kHz and at the source rate: "
        f"{sum(s['exact_length'] for s in sizes)} of {len(sizes)} clips.",
    ]
    payload = {
        "machine": m,
        "model": codec.model.name,
        "decoder_precision": codec.fast_decoder.precision,
        "realtime_factor": summary,
        "files": sizes,
    }
    save("codec_speed", payload, "\n".join(lines))


if __name__ == "__main__":
    main()
