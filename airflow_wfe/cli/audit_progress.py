"""A transient progress line on stderr for ``wfe audit verify|export|archive`` over many events.

Shown only when stderr is a terminal and the output is for a person (not ``--json``), and gone when
the work ends (``transient``), so pipes, files, logs and ``--json`` output are exactly as without it.
rich is imported only when a line is shown: the commands' start-up stays cheap.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress"]


@contextlib.contextmanager
def progress(description: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """``with progress("exporting") as advance:`` then ``advance(n)`` per ``n`` events done; a
    spinner with the elapsed time (and the count, once something advanced it)."""
    if not enabled or not sys.stderr.isatty():
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} event(s)"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda count: bar.advance(task, count)


def _nothing(_count: int) -> None:
    return None
