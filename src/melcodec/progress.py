"""A dependency-free progress line for long work (training, batch encoding, eval)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Redraws one line on a terminal; prints a line every ``every`` s elsewhere."""

    def __init__(self, total: int, label: str, start: int = 0, every: float = 10.0, stream=None):
        self.total, self.label, self.done = total, label, start
        self.start_count, self.t0 = start, time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        # Off a terminal the first line waits ``every`` seconds: short work stays quiet.
        self.every, self.last = every, self.t0
        self.printed = False

    def update(self, done: int, info: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if not self.tty and now - self.last < self.every:
            # Off a terminal the closing line only follows earlier ones: short work is quiet.
            if done < self.total or not self.printed:
                return
        self.last, self.printed = now, True
        rate = (done - self.start_count) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        line = f"{self.label} {done}/{self.total} {info} [{_clock(now - self.t0)}<{_clock(eta)}]"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def callback(self):
        """A ``(done, total)`` function for code that reports its own progress."""

        def update(done: int, total: int) -> None:
            self.total = total
            self.update(done)

        return update

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"
