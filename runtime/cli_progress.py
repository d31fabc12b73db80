"""The progress bars of long CLI operations (verify, backup, prune, bulk actions), on stderr.

Shown only when stderr is a terminal, never with ``--json`` (stdout then carries only JSON and
stderr stays quiet): ``bar(...)`` is then a disabled rich Progress that draws nothing.
"""

from __future__ import annotations

import sys
from typing import Any


def bar(*, as_json: bool = False, total_known: bool = True, console: Any = None) -> Any:
    """A rich ``Progress`` with a bar, done/total (or a spinner) and the elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    out = console or Console(stderr=True)
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns.append(MofNCompleteColumn() if total_known else SpinnerColumn())
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=out, disable=as_json or not sys.stderr.isatty() or not out.is_terminal)


def byte_bar(*, as_json: bool = False) -> Any:
    """A bar counting bytes (backup)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    out = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                    console=out, disable=as_json or not sys.stderr.isatty())
