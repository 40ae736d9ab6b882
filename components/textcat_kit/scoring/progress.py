"""A progress line on stderr: share done, rows, rate and ETA.

The share done is measured in input bytes (Parquet: rows) weighted by file size, so it is
known for CSV / JSONL without counting their records first. On a terminal the line is
redrawn in place a few times a second; otherwise (a log file, CI) a line is printed every
``log_every`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(
        self,
        sizes: Sequence[int],
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        log_every: float = 10.0,
    ) -> None:
        self.sizes = [max(1, s) for s in sizes]
        self.total = float(sum(self.sizes))
        self.done_before = [float(sum(self.sizes[:i])) for i in range(len(self.sizes))]
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval = 0.25 if self.tty else log_every
        self.start = time.monotonic()
        self.last_print = 0.0
        self.rows = 0
        self.start_fraction = 0.0
        self.fraction = 0.0

    def begin(self, fraction: float) -> None:
        """Where a resumed run starts (the ETA counts only the work of this run)."""
        self.start_fraction = self.fraction = fraction
        self.start = time.monotonic()

    def position(self, file_index: int, within: float) -> float:
        """Share of the whole input done at ``within`` (0..1) of file ``file_index``."""
        if not self.sizes:
            return 1.0
        done = self.done_before[file_index] + min(1.0, within) * self.sizes[file_index]
        return done / self.total

    def update(self, rows: int, fraction: float, *, force: bool = False) -> None:
        self.rows += rows
        self.fraction = fraction
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last_print < self.interval):
            return
        self.last_print = now
        elapsed = now - self.start
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        gained = fraction - self.start_fraction
        eta = elapsed * (1.0 - fraction) / gained if gained > 0 else float("nan")
        eta_text = _duration(eta) if eta == eta else "?"
        line = (
            f"scoring: {100 * fraction:5.1f}% | {self.rows:,} rows | {rate:,.0f} rows/s | "
            f"elapsed {_duration(elapsed)} | ETA {eta_text}"
        )
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(0, self.fraction, force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
