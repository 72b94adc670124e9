"""The one progress bar of sciml's long-running generators (rich, on stderr, so stdout stays clean)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(title: str, total: float | None = None) -> Progress:
    """A started bar with one task ``title`` of ``total`` steps (unknown when None); call ``stop()``."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.add_task(title, total=total)
    bar.start()
    return bar
