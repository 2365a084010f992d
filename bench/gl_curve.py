"""Griffin-Lim quality versus time, to choose decode's default iteration count.

For each music-dev clip: the original log-mel (no network, no bits) through
inverse mel and Griffin-Lim, re-analysed, and compared with the original in the
spectrogram domain (both scaled with the original's min and max). This is the
ceiling that phase reconstruction puts on any mel codec.

    python bench/gl_curve.py [--iters 0,4,8,16,32,64,128] [--momentum 0.99]
    python bench/gl_curve.py --model default     # end to end: through the codec first
"""

from __future__ import annotations

import argparse
import io
import time

import torch
from common import machine, median, music_dev, save

from melcodec import Codec, audio, frontend, mel, metrics, tiles
from melcodec.griffinlim import griffin_lim


def rescore(original: frontend.Analysis, wave: torch.Tensor) -> dict[str, float]:
    again = mel.log_mel(audio.fit_length(wave, mel.padded_length(tiles.TILE_FRAMES)))
    lo, hi = original.lo[0], original.hi[0]
    y = ((again - lo) / (hi - lo)).clamp(0, 1)[None, None]
    x = original.scaled[:1, None]
    return {k: float(fn(y, x)) for k, fn in metrics.METRICS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", default="0,4,8,16,32,64,128")
    ap.add_argument("--momentum", type=float, default=0.99)
    ap.add_argument("--model", help="decode through this model's codec first (end to end)")
    args = ap.parse_args()
    codec = Codec.load(args.model) if args.model else None
    iters = [int(i) for i in args.iters.split(",")]
    clips = music_dev()
    rows = {n: {"seconds": [], "mse": [], "nlpd": [], "msssim": []} for n in iters}
    for k, path in enumerate(clips, 1):
        wave, _, _ = frontend.load(path)
        analysis = frontend.analyse(wave)
        if codec:
            blob = codec.encode_16k(wave, 16000, wave.numel())
            logmel = codec.decode_logmel(codec.open(io.BytesIO(blob)))
        else:
            logmel = tiles.join(tiles.unscale(analysis.scaled, analysis.lo, analysis.hi))
        mag = mel.inverse_log_mel(logmel)
        for n in iters:
            t0 = time.perf_counter()
            out = griffin_lim(mag, wave.numel(), n, args.momentum, seed=0)
            rows[n]["seconds"].append(time.perf_counter() - t0)
            for key, value in rescore(analysis, out).items():
                rows[n][key].append(value)
        print(f"clip {k}/{len(clips)}", flush=True)
    duration = mel.padded_length(tiles.TILE_FRAMES) / mel.MEL.sample_rate
    summary = {
        n: {
            "gl_seconds_median": median(r["seconds"]),
            "realtime_factor": duration / median(r["seconds"]),
            **{k: sum(r[k]) / len(r[k]) for k in ("mse", "nlpd", "msssim")},
        }
        for n, r in rows.items()
    }
    what = f"Model `{args.model}` end to end" if codec else "Griffin-Lim ceiling"
    lines = [
        f"{what} on {len(clips)} music-dev clips (momentum {args.momentum}); "
        f"{machine()['cpu']}, {machine()['torch_threads']} threads, {machine()['date']}",
        "",
        "| iterations | GL time per 4.2 s clip (median) | x real time | MSE | NLPD | MS-SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for n, s in summary.items():
        lines.append(
            f"| {n} | {s['gl_seconds_median'] * 1000:.0f} ms | {s['realtime_factor']:.0f} | "
            f"{s['mse']:.5f} | {s['nlpd']:.3f} | {s['msssim']:.4f} |"
        )
    name = f"gl_curve_{args.model}" if codec else "gl_curve"
    payload = {"machine": machine(), "model": args.model, "momentum": args.momentum}
    save(name, {**payload, "summary": summary}, "\n".join(lines))


if __name__ == "__main__":
    main()
