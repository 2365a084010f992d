"""``melcodec plot`` and ``melcodec report``, the report checked in a real headless browser."""

from __future__ import annotations

import shutil

import pytest
from conftest import invoke

from melcodec import Codec, DecodeOptions, benchmark, peers, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def test_plot_writes_a_png_of_the_right_size(two_clips, tiny_model_path, tmp_path):
    from PIL import Image

    target = tmp_path / "fig.png"
    args = ["plot", str(two_clips), str(target), "--models", f"{tiny_model_path},{tiny_model_path}"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        # 2 clips x (input + the same model twice, under two labels), 320 x 280 px each.
        assert image.size == (3 * 320, 2 * 280)


def test_report_page_loads_in_chromium(two_clips, tiny_loaded, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    systems = [
        benchmark.CodecSystem(Codec(tiny_loaded), DecodeOptions(gl_iters=2)),
        benchmark.IdentitySystem(),
        peers.GriffinLimCeiling(gl_iters=2),
    ]
    page_path = report.build(systems, sorted(two_clips.iterdir()), tmp_path / "report")
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        audios = page.eval_on_selector_all(
            "audio",
            """els => Promise.all(els.map(a => new Promise(done => {
                const report = () => done({src: a.src, duration: a.duration,
                                           expected: parseFloat(a.dataset.duration)});
                if (a.readyState >= 1) report();
                else { a.addEventListener('loadedmetadata', report);
                       a.addEventListener('error', () => done({src: a.src, duration: -1})); }
            })))""",
        )
        images = page.eval_on_selector_all(
            "img", "els => els.map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0}))"
        )
        rows = page.eval_on_selector_all("table tbody tr", "els => els.length")
        browser.close()
    assert problems == []
    # 2 clips x (original + 3 systems)
    assert len(audios) == 8 and len(images) == 8 and rows == 3
    for a in audios:
        assert abs(a["duration"] - a["expected"]) < 0.01, a
    assert all(i["ok"] for i in images), images
