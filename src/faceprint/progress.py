"""A Rich progress bar with rate and ETA, shown on stderr only when it is a terminal."""

from __future__ import annotations

import sys
from typing import Any


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
