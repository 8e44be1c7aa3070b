"""A Rich progress bar with rate and ETA, shown on stderr only when it is a terminal."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator


def progress_bar(total: int, label: str, unit: str = "img", min_total: int = 4) -> Any:
    """A transient ``rich.progress.Progress`` showing count, ``unit``/s and time left.

    Disabled (a no-op) when stderr is not a terminal or ``total < min_total``.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{speed:.1f} {unit}/s")

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn(),
                    transient=True, disable=total < min_total or not sys.stderr.isatty(),
                    console=Console(stderr=True))


@contextmanager
def paused(bar: Any) -> Iterator[None]:
    """Take the bar off the terminal while the body prints to stdout, then draw it again, so a
    printed line never starts on the bar's line (a no-op for a disabled bar)."""
    live = not bar.disable and bar.live.is_started
    if live:
        bar.stop()
    try:
        yield
    finally:
        if live:
            bar.start()
