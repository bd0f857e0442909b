"""Progress of a run: a rich bar on a terminal, log lines on stderr otherwise (CI logs, nohup, pipes).

A log line is written every tenth of the work or every 30 s, whichever comes first, and at the end:

    evaluating synth_arith: 40/120 (33%), 2.10 items/s, ETA 38 s

    progress = Progress(total=120, mode="log")   # "auto" (bar on a terminal, else log), "bar", "log", "off"
    progress.advance(8, "synth_arith"); ...; progress.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Literal

ProgressMode = Literal["auto", "bar", "log", "off"]
LOG_EVERY_S = 30.0
LOG_EVERY_SHARE = 0.1


def default_mode(quiet: bool = False) -> ProgressMode:
    """What a command should show: nothing when quiet, a bar on a terminal, log lines otherwise."""
    if quiet:
        return "off"
    return "bar" if sys.stderr.isatty() else "log"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    def __init__(self, total: int, mode: ProgressMode | bool = "auto", echo: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, label: str = "evaluating"):
        if mode is True or mode == "auto":  # True: the older boolean form
            mode = default_mode()
        self.mode: ProgressMode = mode if mode and total else "off"
        self.total, self.done, self.label = total, 0, label
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock
        self.started = self.last_logged = clock()
        self.next_share = LOG_EVERY_SHARE
        self.bar = None
        if self.mode == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def advance(self, n: int, description: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(self.task, advance=n, description=description or self.label)
        elif self.mode == "log":
            now = self.clock()
            share = self.done / self.total
            if share >= self.next_share or now - self.last_logged >= LOG_EVERY_S or self.done >= self.total:
                self.echo(self.line(description, now))
                self.last_logged = now
                while self.next_share <= share:
                    self.next_share += LOG_EVERY_SHARE

    def line(self, description: str, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        head = f"{self.label} {description}".rstrip()
        text = f"{head}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.2f} items/s"
        if self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}" if rate > 0 else ", ETA unknown"
        else:
            text += f", done in {_duration(elapsed)}"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
