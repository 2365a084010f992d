"""Mutation testing of the codec core and the training step (mutmut).

mutmut rewrites every function of the modules below into many one-change
copies (an operator flipped, a constant moved, an argument dropped, ...) and
runs, for each, the default test suite's tests that reach that function. A
mutant the tests do not notice ("survived") is either a gap in the tests or a
change that cannot alter behaviour; each survivor of the last run is listed in
bench/results/mutation.md with the reason from bench/mutation_notes.json, or as
"unexplained" where it has none.

The run happens in a copy of the working tree (``--workdir``), so the checkout is
never modified. Tests that start ``melcodec`` as a subprocess run the installed
package, not the mutant: they cannot kill a mutant and are not counted against one.

    python bench/mutation.py [--jobs 2] [--workdir runs/mutation] [--report-only | --resume]

``--resume`` goes on with the copy a stopped run left: the tests are refreshed
from the checkout (tests written since count, and mutmut maps tests to functions
afresh), the mutants not yet checked are run, then every survivor again. It
refuses when the mutated modules changed since the copy. The report lists each
run in its history (``history.txt`` in the copy).

``--modules A,B --keep mutation`` mutates only A and B and takes every other
module's counts and survivors from bench/results/mutation.json, each module's
row dated by the run that checked it: for a rerun of what changed since.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import RESULTS, ROOT, machine, save

MODULES = [
    "bitstream",
    "entropy",
    "tables",
    "mel",
    "griffinlim",
    "tiles",
    "frontend",
    "codec",
    "metrics",
    "trainstep",
    "data",
]
# What the tests read besides src/ and tests/ (README's example, the shipped models...).
ALSO_COPY = ["README.md", "models/", "docs/", "examples/", "bench/", "bin/", ".ci/"]
NOTES = ROOT / "bench" / "mutation_notes.json"
# mutmut's exit-code meanings (mutmut.stats.status_by_exit_code), reduced to ours.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 36: "timeout"}
STATUS.update({-24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"})
STATUS.update({-11: "crashed", -9: "crashed", 37: "killed", None: "not checked"})


def config(modules: list[str]) -> str:
    lines = ["[mutmut]", "source_paths=src/melcodec", "only_mutate="]
    lines += [f"    src/melcodec/{m}.py" for m in modules]
    lines += ["also_copy="] + [f"    {p}" for p in ALSO_COPY]
    lines += ["pytest_add_cli_args_test_selection=tests/"]
    # torch is not fork-safe once its thread pools exist: fork workers from a clean server.
    lines += ["process_isolation=forkserver"]
    return "\n".join(lines) + "\n"


def prepare(workdir: Path, modules: list[str]) -> None:
    """A fresh copy of the tracked (and new, not ignored) files, with mutmut's config."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in _tree_files():
        _copy(name, workdir)
    (workdir / "setup.cfg").write_text(config(modules))
    log(workdir, f"copy of the tree at {commit()}")


def commit() -> str:
    """The checkout's commit, marked when the working tree differs from it."""
    head = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, capture_output=True
        )
        .stdout.decode()
        .strip()
    )
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode
    return head + (" with uncommitted changes" if dirty else "")


def log(workdir: Path, event: str) -> None:
    with open(workdir / "history.txt", "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M')} {event}\n")


def _tree_files() -> list[str]:
    """The checkout's tracked files and its new ones that git does not ignore."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return [name.decode() for name in files if name and (ROOT / name.decode()).is_file()]


def _copy(name: str, base: Path) -> None:
    dst = base / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / name, dst)


def refresh_tests(workdir: Path, modules: list[str]) -> None:
    """The checkout's tests in the copy, with the code and files they read besides the
    mutated modules (new tests may use what changed there since the copy), and mutmut's
    test-to-function map rebuilt."""
    mutated = {f"src/melcodec/{module}.py" for module in modules}
    for name in mutated:
        if (ROOT / name).read_bytes() != (workdir / name).read_bytes():
            raise SystemExit(f"{name} changed since the copy: run without --resume")
    # tests/ is copied whole below (so that removed tests go); mutmut's own tree
    # holds src/ and its also_copy paths besides.
    kept = ("src/", *ALSO_COPY)
    for name in _tree_files():
        if name not in mutated and not name.startswith("tests/"):
            _copy(name, workdir)
            if name.startswith(kept):
                _copy(name, workdir / "mutants")
    for place in (workdir / "tests", workdir / "mutants" / "tests"):
        shutil.rmtree(place, ignore_errors=True)
        shutil.copytree(ROOT / "tests", place, ignore=shutil.ignore_patterns("__pycache__"))
    (workdir / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def run_mutmut(workdir: Path, jobs: int, names: list[str]) -> None:
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names],
        cwd=workdir,
        check=True,
    )
    timing = workdir / "seconds.txt"
    before = float(timing.read_text()) if timing.exists() else 0.0
    timing.write_text(f"{before + time.monotonic() - start:.0f}\n")


def statuses(workdir: Path, modules: list[str]) -> dict[str, str]:
    """Mutant name -> status, from the .meta files mutmut keeps per module."""
    out = {}
    for module in modules:
        meta = workdir / "mutants" / "src" / "melcodec" / f"{module}.py.meta"
        if not meta.exists():
            continue
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            out[name] = STATUS.get(code, "suspicious")
    return out


def diff(workdir: Path, name: str) -> str:
    """The changed line(s) of one mutant, as mutmut shows them."""
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=workdir,
        capture_output=True,
        text=True,
    ).stdout
    changed = [
        line for line in shown.splitlines() if re.match(r"^[-+](?![-+])", line) and line[1:].strip()
    ]
    return "\n".join(changed)


def module_of(name: str) -> str:
    return name.split(".")[1]


def function_of(name: str) -> str:
    short = name.split(".", 2)[2]
    return re.sub(r"__mutmut_\d+$", "", short.removeprefix("x_")).replace("ǁ", ".")


def killed_share(counts: Counter) -> tuple[int, int]:
    """(killed, checked) of a tally of statuses: a timeout is a kill."""
    return counts["killed"] + counts["timeout"], sum(counts.values()) - counts["not checked"]


def kept_part(
    previous: dict, modules: list[str], notes: dict
) -> tuple[dict, list[dict], list[dict]]:
    """The counts, survivors and run histories of an earlier result's modules that this
    run left out. A merged result's histories stay with the modules they checked, so a
    module mutated again takes its old history with it."""
    counts = {m: Counter(c) for m, c in previous["counts"].items() if m not in modules}
    rows = [
        dict(row, why=notes.get(row["mutant"], row["why"]))
        for row in previous["survivors"]
        if module_of(row["mutant"]) in counts
    ]
    earlier = previous.get("kept_history", [])
    merged_in = {m for entry in earlier for m in entry["modules"]}
    own = [m for m in previous["counts"] if m not in merged_in]
    runs = [*earlier, {"modules": own, "lines": previous.get("run_history", previous["history"])}]
    histories = [
        {"modules": kept, "lines": entry["lines"]}
        for entry in runs
        if (kept := [m for m in entry["modules"] if m in counts])
    ]
    return counts, rows, histories


def report(workdir: Path, modules: list[str], out: str, keep: dict | None = None) -> None:
    """Write the result; with ``keep`` (an earlier result), the modules this run did not
    mutate come from it, each marked with the date of the run that checked it."""
    timing = workdir / "seconds.txt"
    seconds = float(timing.read_text()) if timing.exists() else None
    history_file = workdir / "history.txt"
    run_history = history_file.read_text().splitlines() if history_file.exists() else []
    found = statuses(workdir, modules)
    if not found:
        raise SystemExit(f"no mutmut results in {workdir}; run without --report-only first")
    notes = json.loads(NOTES.read_text()) if NOTES.exists() else {}
    host = machine()
    by_module: dict[str, Counter] = {m: Counter() for m in modules}
    for name, status in found.items():
        by_module[module_of(name)][status] += 1
    run_of = dict.fromkeys(modules, host["date"])
    kept_rows: list[dict] = []
    kept_history: list[dict] = []
    if keep:
        kept, kept_rows, kept_history = kept_part(keep, modules, notes)
        by_module.update(kept)
        # A merged result knows each module's run; an unmerged one ran them all at once.
        run_of.update({m: keep.get("runs", {}).get(m, keep["machine"]["date"]) for m in kept})
    history = run_history + [
        f"(kept: {', '.join(entry['modules'])}) {line}"
        for entry in kept_history
        for line in entry["lines"]
    ]
    total = sum(by_module.values(), Counter())
    killed, checked = killed_share(total)
    score = killed / checked if checked else 0.0
    survivors = sorted(n for n, s in found.items() if s in ("survived", "no tests", "suspicious"))
    rows = []
    for name in survivors:
        rows.append(
            {
                "mutant": name,
                "status": found[name],
                "function": function_of(name),
                "diff": diff(workdir, name),
                "why": notes.get(name, "unexplained"),
            }
        )
    rows = sorted(rows + kept_rows, key=lambda r: r["mutant"])
    kinds = ["killed", "timeout", "survived", "no tests", "suspicious", "crashed", "not checked"]
    since = sum(r["why"].startswith("Killed since") for r in rows)
    lines = [
        "# Mutation testing: codec core and training step",
        "",
        f"`python bench/mutation.py` (mutmut, {host['cpu']}, {host['date']}"
        + (f", {seconds / 60:.0f} min" if seconds else "")
        + "). A timeout counts as killed (the mutant hangs or slows a test 15-fold).",
        "",
        f"**{killed} of {checked} mutants killed: {100 * score:.1f} %.** "
        f"{len(rows)} survive; {sum(r['why'] == 'unexplained' for r in rows)} unexplained.",
        "",
        f"Of the survivors, {since} were killed after this run by tests written for them "
        f"(each checked by hand: the mutant, applied alone, fails the test), which would make "
        f"{killed + since} of {checked} ({100 * (killed + since) / checked:.1f} %) on a rerun; "
        "the rest are equivalent (no input can tell them apart), harmless, or gaps left "
        f"for later ({sum(r['why'].startswith('Gap') for r in rows)}), as given."
        if since and checked
        else "",
        f"{total['not checked']} mutants were not checked: the run was stopped before them."
        if total["not checked"]
        else "",
        "",
        *(["History of this result:", "", *(f"- {h}" for h in history), ""] if history else []),
        "| module | run | mutants | " + " | ".join(kinds) + " | killed % |",
        "|---|---|---:|" + "---:|" * len(kinds) + "---:|",
    ]
    for module, counts in by_module.items():
        dead, done = killed_share(counts)
        pct = 100 * dead / done if done else 0.0
        cells = " | ".join(str(counts[k]) for k in kinds)
        lines.append(
            f"| {module} | {run_of[module]} | {sum(counts.values())} | {cells} | {pct:.1f} |"
        )
    lines += ["", "## Survivors", ""]
    for row in rows:
        lines.append(f"- `{row['mutant']}` ({row['status']}): {row['why']}")
        if row["diff"]:
            lines += ["  ```diff"] + [f"  {d}" for d in row["diff"].splitlines()] + ["  ```"]
    payload = {
        "machine": host,
        "seconds": seconds,
        "history": history,
        "run_history": run_history,
        "kept_history": kept_history,
        "modules": list(by_module),
        "runs": run_of,
        "counts": {m: dict(c) for m, c in by_module.items()},
        "killed": killed,
        "checked": checked,
        "score": score,
        "survivors": rows,
        "killed_since": since,
        "not_checked": total["not checked"],
    }
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    save(out, payload, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "mutation")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the last run"
    )
    parser.add_argument(
        "--resume", action="store_true", help="go on with a stopped run (see above)"
    )
    parser.add_argument(
        "--modules", default=",".join(MODULES), help="comma-separated modules to mutate"
    )
    parser.add_argument("--out", default="mutation", help="name of the result files")
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="take the modules not in --modules from bench/results/NAME.json (an earlier run)",
    )
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    modules = [m for m in args.modules.split(",") if m]
    # Read before a run of an hour or more, so that a wrong name fails at once.
    keep = json.loads((RESULTS / f"{args.keep}.json").read_text()) if args.keep else None
    if args.resume:
        refresh_tests(workdir, modules)
        unchecked = sum(s == "not checked" for s in statuses(workdir, modules).values())
        run_mutmut(workdir, args.jobs, [])
        again = [n for n, s in statuses(workdir, modules).items() if s not in ("killed", "timeout")]
        if again:
            run_mutmut(workdir, args.jobs, again)
        log(
            workdir,
            f"resumed with the tests at {commit()}: {unchecked} unchecked mutants run, "
            f"then the {len(again)} not killed run again",
        )
    elif not args.report_only:
        prepare(workdir, modules)
        run_mutmut(workdir, args.jobs, [])
        log(workdir, "run")
    report(workdir, modules, args.out, keep)


if __name__ == "__main__":
    main()
