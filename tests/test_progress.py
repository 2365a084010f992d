"""The progress line: quiet for short work off a terminal, regular lines for long work."""

from __future__ import annotations

import io

from melcodec.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_short_work_off_a_terminal_prints_nothing():
    out = io.StringIO()
    bar = Progress(3, "work", every=60, stream=out)
    for i in range(1, 4):
        bar.update(i)
    bar.close()
    assert out.getvalue() == ""


def test_long_work_off_a_terminal_prints_lines_and_the_end():
    out = io.StringIO()
    bar = Progress(3, "work", every=0, stream=out)
    for i in range(1, 4):
        bar.update(i, "loss 1.0")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("work 3/3 loss 1.0")


def test_terminal_redraws_one_line_and_callback_sets_total():
    out = Tty()
    bar = Progress(0, "tiles", stream=out)
    update = bar.callback()
    update(1, 4)
    update(4, 4)
    bar.close()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and "tiles 4/4" in text and text.endswith("\n")
