"""``melcodec report``: a static HTML page to listen to and look at every system.

For each clip: the original and each system's decoded audio as players, with
the spectrogram of what each one sounds like (its audio re-analysed); the
summary table on top. Everything is relative files next to index.html: it works
opened from disk, with no server and no network.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from pathlib import Path

from . import audio, benchmark, plots, tiles
from .mel import MEL

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:90em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}.clip{margin-top:2em}.grid{display:flex;flex-wrap:wrap;gap:1em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em;width:380px}
.card h3{margin:.1em 0 .4em;font-size:1em}.card img{width:360px;display:block}
.card audio{width:360px}.m{font-size:.8em;color:#555}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def build(
    systems: list,
    files: list[Path],
    out: str | os.PathLike,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``out/index.html`` with its audio/ and img/ folders; returns the page."""
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "img").mkdir(exist_ok=True)
    rows, sections = [], []
    total, done = len(files) * len(systems), 0
    for path in files:
        clip = _slug(path.stem)
        cards = []
        for system in systems:
            row, wave, decoded, x, heard = benchmark.measure_with_outputs(system, path)
            rows.append(row)
            if not cards:  # the original, once per clip
                cards.append(_card(out, clip, "original", wave, tiles.join(x[:, 0]), None))
            cards.append(_card(out, clip, system.name, decoded, tiles.join(heard[:, 0]), row))
            done += 1
            if progress:
                progress(done, total)
        sections.append(
            f'<section class="clip"><h2>{html.escape(path.name)}</h2>'
            f'<div class="grid">{"".join(cards)}</div></section>'
        )
    summary = benchmark.summarise(rows)
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>melcodec listening report</title>"
        f"<style>{_STYLE}</style></head><body><h1>melcodec listening report</h1>"
        f"<p>{len(files)} clips, {len(systems)} systems. Metrics as in <code>melcodec eval"
        "</code>: spectrogram domain (model input vs output tile) and end to end (original "
        "vs decoded audio through the front end); kbit/s from the file bytes.</p>"
        f"{_html_table(benchmark.table(summary))}{''.join(sections)}</body></html>\n"
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _card(out: Path, clip: str, name: str, wave, spectrogram, row: dict | None) -> str:
    stem = f"{clip}__{_slug(name)}"
    audio.write_audio(out / "audio" / f"{stem}.wav", wave, MEL.sample_rate)
    plots.spectrogram_png(spectrogram, out / "img" / f"{stem}.png", name)
    seconds = wave.numel() / MEL.sample_rate
    facts = "original, 16 kHz mono"
    if row:
        rate = "-" if row["kbit_per_s"] is None else f"{row['kbit_per_s']:.2f} kbit/s"
        facts = (
            f"{rate} &middot; e2e NLPD {row['e2e_nlpd']:.2f} &middot; "
            f"MS-SSIM {row['e2e_msssim']:.3f}"
        )
    return (
        f'<div class="card"><h3>{html.escape(name)}</h3>'
        f'<audio controls preload="metadata" src="audio/{stem}.wav" '
        f'data-duration="{seconds:.4f}"></audio>'
        f'<img src="img/{stem}.png" alt="spectrogram: {html.escape(name)}">'
        f'<div class="m">{facts}</div></div>'
    )


def _html_table(markdown: str) -> str:
    lines = [line.strip("|").split("|") for line in markdown.splitlines() if "---" not in line]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>"
        for row in lines[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
