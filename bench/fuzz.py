"""Fuzz the whole decoder: damaged and crafted copies of real .mlc files (melcodec.fuzz).

Seeds: the golden files of tests/golden (container 1.0 and 2.0, static and
uniform probability models, the `default` model) and the bundled example coded
with the default model (several tiles, half-precision weights). Every case is
decoded through ``melcodec.decompress`` (the model the file names), at 16 kHz and
at the source rate in turn, with no Griffin-Lim iterations (phase reconstruction
is not what is fuzzed), each bounded in time and memory. Workers run slices of
the case numbers in parallel; a case is replayed alone with --start N --cases 1.

    python bench/fuzz.py [--cases 100000] [--seed 0] [--jobs 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from collections import Counter

import soundfile as sf
from common import ROOT, machine, median, save

import melcodec
from melcodec import fuzz
from melcodec.defaults import DEFAULT_MODEL
from melcodec.progress import Progress

EXAMPLE = ROOT / "examples" / "chipdisko-excerpt.flac"


def seeds() -> list[bytes]:
    files = [p.read_bytes() for p in sorted((ROOT / "tests" / "golden").glob("*.mlc"))]
    wave, rate = sf.read(EXAMPLE, dtype="float32")
    codec = melcodec.Codec.load(DEFAULT_MODEL)
    files.append(codec.encode(wave, rate))
    files.append(melcodec.Codec(codec.model, prob_model_id=0).encode(wave, rate))
    return files


def work(job: tuple[int, int, int, mp.Queue]) -> None:
    start, count, seed, queue = job
    import torch

    torch.set_num_threads(1)
    files = seeds()
    for n, kind, data in fuzz.cases(files, count, seed, start):
        outcome = fuzz.check(n, kind, data, lambda d, n=n: fuzz.decode_case(n, d))
        queue.put(outcome.__dict__)
    queue.put({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--name", default="fuzz", help="results file name in bench/results")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    share = -(-args.cases // args.jobs)
    jobs = [
        (args.start + i * share, min(share, args.cases - i * share), args.seed, queue)
        for i in range(args.jobs)
        if args.cases - i * share > 0
    ]
    procs = [ctx.Process(target=work, args=(job,)) for job in jobs]
    for p in procs:
        p.start()
    outcomes, running, peaks = [], len(procs), []
    bar = Progress(args.cases, "fuzz")
    while running:
        item = queue.get()
        if "peak_mib" in item:
            peaks.append(item["peak_mib"])
            running -= 1
            continue
        outcomes.append(item)
        if item["result"] not in ("decoded", "refused"):
            print(f"FAILURE {item}", file=sys.stderr)
        bar.update(len(outcomes))
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise SystemExit("a worker died (see above); the run is incomplete")
    elapsed = time.perf_counter() - t0

    counts = Counter((o["kind"], o["result"]) for o in outcomes)
    results = sorted({o["result"] for o in outcomes} | {"decoded", "refused"})
    failures = [o for o in outcomes if o["result"] not in ("decoded", "refused")]
    slowest = max(outcomes, key=lambda o: o["seconds"])
    messages = Counter(o["detail"].split(":")[0][:60] for o in outcomes if o["result"] == "refused")
    lines = [
        f"# Fuzzing the decoder: {len(outcomes):,} cases (seed {args.seed})",
        "",
        f"Machine: {machine()['cpu']}, {args.jobs} worker processes of 1 thread; "
        f"{elapsed / 60:.1f} min; median {1000 * median([o['seconds'] for o in outcomes]):.1f} ms "
        f"per case, slowest {slowest['seconds']:.2f} s (case {slowest['case']}, "
        f"{slowest['kind']}, {slowest['result']}).",
        f"Rule: decoded to finite audio, or refused with melcodec's own one-line error, within "
        f"{fuzz.TIME_LIMIT_S:g} s and {fuzz.MEMORY_LIMIT_MB} MB. Failures: {len(failures)}. "
        f"Peak RSS of a worker: {max(peaks):.0f} MiB.",
        "Rerun: `python bench/fuzz.py --cases N --seed S` (one case: `--start N --cases 1`).",
        "",
        "| kind | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for kind in fuzz.KINDS:
        lines.append(f"| {kind} | " + " | ".join(str(counts[(kind, r)]) for r in results) + " |")
    lines += ["", "Most common refusals (message up to its first colon):", ""]
    lines += [f"- {count:,} x {msg}" for msg, count in messages.most_common(12)]
    if failures:
        lines += ["", "Failures:", ""]
        for o in failures[:50]:
            lines.append(f"- case {o['case']} ({o['kind']}): {o['result']}: {o['detail']}")
    payload = {
        "machine": machine(),
        "cases": len(outcomes),
        "seed": args.seed,
        "start": args.start,
        "minutes": round(elapsed / 60, 2),
        "worker_peak_mib": max(peaks),
        "counts": {f"{k}/{r}": c for (k, r), c in sorted(counts.items())},
        "failures": failures,
    }
    save(args.name, payload, "\n".join(lines))
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
