"""One-line progress displays for long scans, on a terminal only.

``ProgressLine`` (the plugin's: probes done / total, rate and ETA) only formats and paces (at most ten
redraws a second); where it writes is given by the front end (the plugin suspends pytest's output
capture around each redraw). ``ProgressBar`` is the command line's bar, shared by ``portcheck scan``
and its shard scans (``cli.shard``). Standard library only.
Must not import pytest or anything of the package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TextIO


def describe_progress(done: int, total: int, elapsed: float) -> str:
    """``portcheck: 12,000/64,000 probes (19%), 8,000/s, ETA 7 s``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    share = f" ({100 * done // total}%)" if total else ""
    # Before a second has passed the rate says more about start-up than about the scan.
    eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total and elapsed >= 1 else ""
    return f"portcheck: {done:,}/{total:,} probes{share}, {rate:,.0f}/s{eta}"


class ProgressLine:
    """Calls ``draw(text)`` at most every ``interval`` seconds, and ``draw("")`` once at the end."""

    def __init__(self, draw: Callable[[str], None], interval: float = 0.1) -> None:
        self._draw = draw
        self._interval = interval
        self._started = time.monotonic()
        self._shown_at = self._started  # the first line after one interval: short scans show none
        self._visible = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._shown_at < self._interval and done < total:
            return
        self._shown_at = now
        self._draw(describe_progress(done, total, now - self._started))
        self._visible = True

    def finish(self) -> None:
        if self._visible:
            self._draw("")
            self._visible = False


class ProgressBar:
    """The command line's progress bar (``portcheck scan``, share scans): on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO, total: int, enabled: bool) -> None:
        self._stream = stream
        self._total = total
        self._enabled = enabled and total > 0
        self._done = 0
        self._shown_at = 0.0
        self._started = time.monotonic()
        self._visible = False

    def advance(self) -> None:
        self._done += 1
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._shown_at >= 0.1 or self._done == self._total:
            self._shown_at = now
            width = 30
            filled = width * self._done // self._total
            bar = "#" * filled + "." * (width - filled)
            self._stream.write(
                f"\r[{bar}] {self._done:,}/{self._total:,} probes {now - self._started:5.1f} s"
            )
            self._stream.flush()
            self._visible = True

    def clear(self) -> None:
        if self._visible:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._visible = False
