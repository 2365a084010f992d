"""melcodec 0.1's synthesis against today's, side by side, as `melcodec eval` scores them.

Before: pseudo-inverse mel, random phase start, 32 Griffin-Lim iterations, no
level envelope. After: the defaults (truncated-SVD inverse, PGHI start, 16
iterations, level envelope; the decoder network in bfloat16 where the CPU has
it, and a float32 row beside it). Both run through today's decoder network and
writer (16-bit WAV through the limiter), so "over" is the share of samples
that 0.1's writer clipped. Rows for the Griffin-Lim ceiling (exact tiles) and
each model; one process, so decode speeds compare.

    python bench/before_after.py [--models default]
"""

from __future__ import annotations

import argparse

from common import machine, music_dev, run_systems, save

from melcodec import Codec, DecodeOptions, benchmark
from melcodec.peers import GriffinLimCeiling
from melcodec.zoo import DEFAULT_MODEL

BEFORE = DecodeOptions(gl_iters=32, phase_start="random", match_level=False, inverse_mel="pinv")
AFTER = DecodeOptions()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=f"{DEFAULT_MODEL},default")
    args = ap.parse_args()
    systems: list = []
    for when, options in (("before", BEFORE), ("after", AFTER)):
        systems.append(GriffinLimCeiling(options=options, name=f"ceiling, {when}"))
        for name in args.models.split(","):
            codec = Codec.load(name)
            systems.append(benchmark.CodecSystem(codec, options, f"{name}, {when}"))
            if when == "after" and codec.fast_decoder.precision != "float32":
                # The decoder network's bfloat16 against float32: the same audio?
                codec32 = Codec(codec.model, decoder_precision="float32")
                label = f"{name}, after, float32 decoder"
                systems.append(benchmark.CodecSystem(codec32, options, label))
    rows, summary = run_systems(systems, "before/after")
    files = music_dev()
    m = machine()
    lines = [
        f"{len(files)} music-dev clips (4.2 s each), scored as `melcodec eval` does (16-bit WAV "
        f"as decode writes it); {m['cpu']}, {m['torch_threads']} threads, torch {m['torch']}, "
        f"{m['date']}. Level: RMS error of the decoded file against the input, mean of |dB| "
        "and worst file; over: share of samples above full scale before the limiter (worst "
        "file: what 0.1's writer clipped); clipped: share of file samples at full scale "
        "(worst file); dec x RT: whole decode, audio seconds per wall second.",
        "",
        "| system | SC | e2e MSE | e2e NLPD | e2e MS-SSIM | level dB mean abs | worst "
        "| over (worst) | clipped (worst) | peak (worst) | dec x RT |",
        "|" + "---|" * 11,
    ]
    for s in summary:
        lines.append(
            f"| {s['system']} | {s['sc']:.3f} | {s['e2e_mse']:.4f} | {s['e2e_nlpd']:.2f} | "
            f"{s['e2e_msssim']:.3f} | {s['level_abs_db']:.2f} | {s['level_worst_db']:+.2f} | "
            f"{100 * s['over_worst']:.2f} % | {100 * s['clipped_worst']:.3f} % | "
            f"{s['peak_worst']:.2f} | {s['decode_x_realtime']:.0f} |"
        )
    save("before_after", {"machine": m, "summary": summary, "files": rows}, "\n".join(lines))


if __name__ == "__main__":
    main()
