"""A live, step-by-step view of runs in progress, on stderr.

On a terminal it is a table redrawn in place (``rich.live``): one row per run with its recorded
state, how many of its steps have finished and what runs now. Elsewhere (CI, a pipe) it prints a
plain line each time a run's state or current step changes, so a log reads as the story of the runs.
stdout stays free for the command's own output.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_wfe.app.models import RunDetail

__all__ = ["FINISHED_STEP_STATES", "Progress", "RunProgress"]

#: Step states after which a step does nothing more in the forward run.
FINISHED_STEP_STATES = frozenset(
    {"SUCCEEDED", "FAILED", "SKIPPED", "UPSTREAM_FAILED", "COMPENSATED", "COMPENSATION_FAILED"}
)


@dataclass
class RunProgress:
    """What the view shows of one run."""

    label: str
    state: str = "QUEUED"
    done: int = 0
    total: int = 0
    current: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def line(self) -> str:
        steps = f"{self.done}/{self.total} steps" if self.total else f"{self.done} steps"
        now = f"  {self.current}" if self.current else ""
        return f"{self.label:<38} {self.state:<20} {steps:<12} {self.seconds():5.0f}s{now}"


def progress_of(record: RunDetail, total: int) -> tuple[int, str]:
    """Finished steps of ``record`` and the steps running now (comma-separated)."""
    done = sum(1 for s in record.steps if s.state in FINISHED_STEP_STATES)
    running = sorted(
        {s.step_id for s in record.steps if s.state in ("RUNNING", "RETRYING", "COMPENSATING")}
    )
    return min(done, total) if total else done, ", ".join(running)


class Progress:
    """The view: :meth:`update` a run, and the display follows; a context manager."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.runs: dict[str, RunProgress] = {}
        self._shown: dict[str, tuple[str, str]] = {}
        self._live: Any = None

    def add(self, key: str, label: str, total: int = 0) -> None:
        self.runs[key] = RunProgress(label=label, total=total)
        self._refresh(key)

    def update(
        self,
        key: str,
        *,
        state: str,
        done: int | None = None,
        current: str = "",
        ended: bool = False,
    ) -> None:
        run = self.runs[key]
        if run.state == "QUEUED" and state != "QUEUED":
            run.started = time.monotonic()  # the clock runs from the trigger, not from the queue
        run.state = state
        if done is not None:
            run.done = done
        run.current = current
        if ended and run.ended is None:
            run.ended = time.monotonic()
            run.current = ""
        self._refresh(key)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("run", "state", "steps", "time", "now"):
            table.add_column(column)
        for run in self.runs.values():
            steps = f"{run.done}/{run.total}" if run.total else str(run.done)
            table.add_row(run.label, run.state, steps, f"{run.seconds():.0f}s", run.current)
        return table

    def _refresh(self, key: str) -> None:
        if self.live:
            if self._live is not None:
                self._live.update(self._table())
            return
        run = self.runs[key]
        shown = (run.state, run.current)
        if self._shown.get(key) != shown:
            self._shown[key] = shown
            print(f"  {run.line()}", file=self.stream, flush=True)

    def tick(self) -> None:
        """Redraw (the clocks move even when nothing changed); nothing to do without a terminal."""
        if self._live is not None:
            self._live.update(self._table())

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._table(), console=Console(file=self.stream), refresh_per_second=4
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
            self._live = None
