"""One progress bar for the long-running tools (export, backtest), on rich.

`track(description, total, unit)` is a context manager yielding a `Progress` whose `advance(n)`
moves the bar by n units (bytes of recording read, events replayed) and whose `set(**fields)`
updates the figures shown after it (events/s, windows settled). The bar draws on stderr, only
when stderr is a terminal (or `enabled=True`); otherwise nothing is drawn and the counts are still
kept, so a tool's summary can report `done` and `rate_per_sec` either way.

Invariants: the bar never writes to stdout (a tool's JSON summary goes there); advancing is cheap
(rich refreshes on its own timer, not per call); a bar whose total is unknown shows a spinner and
the count.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


class Progress:
    def __init__(self, bar=None, task=None):
        self._bar, self._task = bar, task
        self.done = 0
        self.fields: dict = {}
        self.t0 = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def set(self, **fields) -> None:
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(self._task, info=" ".join(f"{k}={v}" for k, v in self.fields.items()))

    @property
    def elapsed_sec(self) -> float:
        return time.monotonic() - self.t0

    @property
    def rate_per_sec(self) -> float:
        t = self.elapsed_sec
        return self.done / t if t > 0 else 0.0


@contextmanager
def track(description: str, total: int | None, unit: str = "B",
          enabled: bool | None = None) -> Iterator[Progress]:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as Bar,
                               SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
                               TransferSpeedColumn)
    size = [DownloadColumn(), TransferSpeedColumn()] if unit == "B" else [MofNCompleteColumn()]
    cols = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), *size,
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Bar(*cols, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, info="")
        yield Progress(bar, task)
