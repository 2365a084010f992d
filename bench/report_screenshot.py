"""Build the listening report on three music-dev clips and screenshot it for docs/.

python bench/report_screenshot.py      # -> runs/report/index.html, docs/report.png
"""

from __future__ import annotations

import shutil

from common import ROOT, music_dev
from playwright.sync_api import sync_playwright

from melcodec import Codec, DecodeOptions, benchmark, report
from melcodec.peers import default_peers


def main() -> None:
    systems = [benchmark.CodecSystem(Codec.load("default"), DecodeOptions())]
    systems += default_peers()
    page_path = report.build(systems, music_dev()[:3], ROOT / "runs" / "report")
    chromium = shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(ROOT / "docs" / "report.png"))
        browser.close()
    print(f"wrote {page_path} and docs/report.png")


if __name__ == "__main__":
    main()
