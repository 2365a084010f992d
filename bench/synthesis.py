"""Synthesis variants side by side: inverse mel, phase start, iterations, level envelope.

For each music-dev clip and each source of log-mel tiles (the exact tiles, the
Griffin-Lim ceiling; or a model's decoded tiles), every variant synthesises
audio, which is then rendered as `melcodec decode` writes it (16-bit WAV,
through the limiter) and compared with the input: RMS level error, the share
of samples at full scale in the file, the peak before the limiter, spectral
convergence on the linear STFT, and the mel metrics end to end (re-analysed,
scaled with the original's min and max). One process, so the timings compare.

    python bench/synthesis.py --name inverse_mel \\
        --variants pinv/random/32/off,interp/random/32/off,interp/pghi/16/on
    (a variant is INVERSE[:STRENGTH]/START/ITERATIONS/ENVELOPE, ENVELOPE being off,
    on, or on:FRAMES for level spans of FRAMES hops)
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from common import machine, music_dev, save

from melcodec import Codec, audio, frontend, listening, loudness, mel, metrics, tiles
from melcodec.griffinlim import griffin_lim
from melcodec.mel import MEL


def parse_variant(text: str) -> dict:
    inverse, start, iters, env = text.split("/")
    method, _, strength = inverse.partition(":")
    env, _, frames = env.partition(":")
    return {
        "label": text,
        "method": method,
        "strength": float(strength or 0),
        "start": start,
        "iters": int(iters),
        "envelope": env == "on",
        "span_frames": int(frames or loudness.SEGMENT_FRAMES),
    }


def synthesise(logmel: torch.Tensor, wave: torch.Tensor, v: dict) -> torch.Tensor:
    mag = mel.inverse_log_mel(logmel, method=v["method"], strength=v["strength"])
    out = griffin_lim(mag, wave.numel(), v["iters"], 0.99, seed=0, start=v["start"])
    if v["envelope"]:
        count = logmel.shape[1] // v["span_frames"]
        span = v["span_frames"] * MEL.hop_length
        out = loudness.match(out, loudness.envelope(wave, count, span), span)
    return out


def score(written: torch.Tensor, wave: torch.Tensor, original: frontend.Analysis) -> dict:
    count = len(original.scaled)
    padded = audio.fit_length(written, mel.padded_length(count * tiles.TILE_FRAMES))
    again = tiles.scale_with(tiles.split(mel.log_mel(padded)), original.lo, original.hi)
    x = original.scaled.unsqueeze(1)
    row = {f"e2e_{k}": float(fn(again.unsqueeze(1), x).mean()) for k, fn in metrics.METRICS.items()}
    row["sc"] = listening.spectral_convergence(written, wave)
    row["level_db"] = listening.level_error_db(written, wave)
    row["clipped"] = listening.clipped_share(written)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", required=True, help="comma-separated, see the docstring")
    ap.add_argument("--sources", default="ceiling,default", help="'ceiling' and/or model names")
    ap.add_argument("--name", default="synthesis", help="results file stem in bench/results")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variants.split(",")]
    sources = args.sources.split(",")
    codecs = {s: Codec.load(s) for s in sources if s != "ceiling"}
    clips = music_dev()
    rows = []
    for k, path in enumerate(clips, 1):
        wave, _, _ = frontend.load(path)
        original = frontend.analyse(wave)
        for source in sources:
            if source == "ceiling":
                logmel = tiles.join(tiles.unscale(original.scaled, original.lo, original.hi))
            else:
                codec = codecs[source]
                blob = codec.encode_16k(wave, MEL.sample_rate, wave.numel())
                logmel = codec.decode_logmel(codec.open(io.BytesIO(blob)))
            for v in variants:
                t0 = time.perf_counter()
                out = synthesise(logmel, wave, v)
                seconds = time.perf_counter() - t0
                blob, report = audio.render(out, MEL.sample_rate)
                written = audio.read_rendered(blob)
                row = {"clip": path.name, "source": source, "variant": v["label"]}
                row |= {"synth_s": seconds, "peak": report.peak, "over": report.over_share}
                row |= score(written, wave, original)
                rows.append(row)
        print(f"clip {k}/{len(clips)}", flush=True)
    m = machine()
    lines = [
        f"Synthesis variants on {len(clips)} music-dev clips, rendered as 16-bit WAV through "
        f"the limiter; {m['cpu']}, {m['torch_threads']} threads, torch {m['torch']}, {m['date']}. "
        "Level: RMS error in dB (mean of |error|, worst); clipped: share of file samples at full "
        "scale (worst clip); peak: before the limiter (worst); over: share above full scale "
        "before the limiter (worst clip); SC: spectral convergence (mean); time: synthesis per "
        "4.2 s clip (median).",
        "",
        "| source | inverse/start/iterations/envelope | level dB mean abs | worst | clipped worst "
        "| peak worst | over worst | SC | e2e MSE | e2e NLPD | e2e MS-SSIM | time |",
        "|" + "---|" * 12,
    ]
    summary = []
    for source in sources:
        for v in variants:
            mine = [r for r in rows if r["source"] == source and r["variant"] == v["label"]]
            s = {"source": source, "variant": v["label"]}
            s["level_abs_db"] = statistics.fmean(abs(r["level_db"]) for r in mine)
            s["level_worst_db"] = max((r["level_db"] for r in mine), key=abs)
            s["clipped_worst"] = max(r["clipped"] for r in mine)
            s["peak_worst"] = max(r["peak"] for r in mine)
            s["over_worst"] = max(r["over"] for r in mine)
            for key in ("sc", "e2e_mse", "e2e_nlpd", "e2e_msssim"):
                s[key] = statistics.fmean(r[key] for r in mine)
            s["synth_s_median"] = statistics.median(r["synth_s"] for r in mine)
            summary.append(s)
            lines.append(
                f"| {source} | {v['label']} | {s['level_abs_db']:.2f} | "
                f"{s['level_worst_db']:+.2f} | {100 * s['clipped_worst']:.3f} % | "
                f"{s['peak_worst']:.2f} | {100 * s['over_worst']:.2f} % | {s['sc']:.3f} | "
                f"{s['e2e_mse']:.4f} | {s['e2e_nlpd']:.2f} | {s['e2e_msssim']:.3f} | "
                f"{1000 * s['synth_s_median']:.0f} ms |"
            )
    save(args.name, {"machine": m, "summary": summary, "rows": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
