"""Pictures of the pages, computed as plain geometry: a run's state machine with the path taken, a
timeline of the run and its steps, and the audit chain's checked range with its findings. The templates draw them as SVG (escaped like every other value);
nothing here knows HTML, so the geometry is tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from airflow_wfe.app.models import RunDetail, Transition, VerifyReport
from airflow_wfe.core.states import RUN_MACHINE, RunState

__all__ = [
    "Bar",
    "ChainStrip",
    "Edge",
    "Machine",
    "Mark",
    "Node",
    "Timeline",
    "TimelineRow",
    "chain_strip",
    "run_machine",
    "timeline",
]

R = RunState
#: Where each run state sits (column, row): the happy path on row 1, approval and refusal above,
#: failure and compensation below.
_PLACES: Final[dict[RunState, tuple[int, int]]] = {
    R.REJECTED: (1, 0),
    R.WAITING_APPROVAL: (3, 0),
    R.CREATED: (0, 1),
    R.VALIDATED: (1, 1),
    R.RUNNING: (2, 1),
    R.COMPLETED: (3, 1),
    R.FAILED: (2, 2),
    R.COMPENSATING: (3, 2),
    R.COMPENSATED: (4, 2),
    R.COMPENSATION_FAILED: (4, 3),
}
_CELL_W, _CELL_H = 176, 76
_NODE_W, _NODE_H = 150, 34
_MARGIN = 12


@dataclass(frozen=True)
class Node:
    """A state as a box: ``visited`` on the run's path, ``current`` the state it is in."""

    state: str
    x: float
    y: float
    width: float
    height: float
    visited: bool
    current: bool
    terminal: bool


@dataclass(frozen=True)
class Edge:
    """A legal move as an arrow; ``taken`` by this run, ``manual`` only by a deliberate act."""

    source: str
    target: str
    x1: float
    y1: float
    x2: float
    y2: float
    taken: bool
    manual: bool


@dataclass(frozen=True)
class Machine:
    """The run state machine drawn for one run."""

    width: float
    height: float
    nodes: list[Node]
    edges: list[Edge]


def _clip(cx: float, cy: float, dx: float, dy: float) -> tuple[float, float]:
    """Where the ray from a box's centre in direction (dx, dy) leaves the box."""
    half_w, half_h = _NODE_W / 2 + 2, _NODE_H / 2 + 2
    scale = min(half_w / abs(dx) if dx else float("inf"), half_h / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def _centre(state: RunState) -> tuple[float, float]:
    col, row = _PLACES[state]
    return _MARGIN + col * _CELL_W + _NODE_W / 2, _MARGIN + row * _CELL_H + _NODE_H / 2


def _edge(source: RunState, target: RunState, taken: bool, manual: bool, bend: float) -> Edge:
    (x1, y1), (x2, y2) = _centre(source), _centre(target)
    dx, dy = x2 - x1, y2 - y1
    length = (dx * dx + dy * dy) ** 0.5
    # A pair of opposite moves (RUNNING <-> WAITING_APPROVAL) is drawn as two parallel arrows.
    ox, oy = -dy / length * bend, dx / length * bend
    sx, sy = _clip(x1, y1, dx, dy)
    tx, ty = _clip(x2, y2, -dx, -dy)
    return Edge(source, target, sx + ox, sy + oy, tx + ox, ty + oy, taken, manual)


def run_machine(transitions: Sequence[Transition], current: str) -> Machine:
    """The run state machine with this run's path: visited states and the moves it made."""
    taken = {(t.from_state, t.to_state) for t in transitions if t.from_state}
    visited = {t.to_state for t in transitions}
    moves = [
        (source, target, (source, target) in RUN_MACHINE.manual)
        for source in RunState
        for target in sorted(RUN_MACHINE.allowed(source))
    ]
    pairs = {(s, t) for s, t, _ in moves}
    edges = [
        _edge(s, t, (s, t) in taken, manual, 4.0 if (t, s) in pairs else 0.0)
        for s, t, manual in moves
        if s in _PLACES and t in _PLACES
    ]
    nodes = []
    for state, (col, row) in _PLACES.items():
        nodes.append(
            Node(
                state=state.value,
                x=_MARGIN + col * _CELL_W,
                y=_MARGIN + row * _CELL_H,
                width=_NODE_W,
                height=_NODE_H,
                visited=state.value in visited,
                current=state.value == current,
                terminal=state in RUN_MACHINE.terminal,
            )
        )
    cols = 1 + max(c for c, _ in _PLACES.values())
    rows = 1 + max(r for _, r in _PLACES.values())
    width = 2 * _MARGIN + (cols - 1) * _CELL_W + _NODE_W
    height = 2 * _MARGIN + (rows - 1) * _CELL_H + _NODE_H
    return Machine(width=width, height=height, nodes=nodes, edges=edges)


@dataclass(frozen=True)
class Bar:
    """One state held over a stretch of time, as a rectangle of the timeline."""

    state: str
    x: float
    width: float
    start: datetime
    end: datetime | None

    @property
    def css(self) -> str:
        """The class naming its state's colour."""
        return f"state-{self.state.lower()}"

    @property
    def left(self) -> str:
        """Its left edge in the drawing (after the row labels), as SVG takes it."""
        return f"{_LABEL_W + self.x:.1f}"

    @property
    def span(self) -> str:
        """Its width, as SVG takes it."""
        return f"{self.width:.1f}"

    @property
    def tip(self) -> str:
        """The bar's tooltip after its row's label.

        This and the properties above are formatted here, not in the template: a run of 200
        steps draws thousands of bars, and the same formatting in Jinja2 costs several times
        more."""
        until = f" to {self.end.isoformat()}" if self.end else ""
        return f"{self.state} from {self.start.isoformat()}{until}"


@dataclass(frozen=True)
class TimelineRow:
    """The run's or one step's states over time."""

    label: str
    bars: list[Bar]


@dataclass(frozen=True)
class Timeline:
    """The run and its steps on one time axis."""

    width: float
    label_width: float
    row_height: float
    rows: list[TimelineRow]
    start: datetime | None
    end: datetime | None

    @property
    def height(self) -> float:
        """Of the drawing, rows plus the axis line."""
        return self.row_height * (len(self.rows) + 1)


_TIMELINE_W: Final = 720.0
_LABEL_W: Final = 200.0
_ROW_H: Final = 22.0


def _bars(
    transitions: Sequence[Transition], start: datetime, span: float, end: datetime
) -> list[Bar]:
    bars = []
    for here, after in zip(transitions, [*transitions[1:], None], strict=True):
        until = after.at if after is not None else end
        x = (here.at - start).total_seconds() / span * _TIMELINE_W
        width = max(2.0, (until - here.at).total_seconds() / span * _TIMELINE_W)
        bars.append(Bar(here.to_state, x, width, here.at, after.at if after else None))
    return bars


def timeline(run: RunDetail) -> Timeline:
    """The run and each step instance as rows of state bars over the run's life."""
    moments = [t.at for t in run.transitions] + [t.at for s in run.steps for t in s.transitions]
    if not moments:
        return Timeline(_TIMELINE_W, _LABEL_W, _ROW_H, [], None, None)
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 1e-3)
    rows = [TimelineRow("run", _bars(run.transitions, start, span, end))]
    for step in run.steps:
        label = step.step_id if step.map_index < 0 else f"{step.step_id}[{step.map_index}]"
        rows.append(TimelineRow(label, _bars(step.transitions, start, span, end)))
    return Timeline(_TIMELINE_W, _LABEL_W, _ROW_H, rows, start, end)


@dataclass(frozen=True)
class Mark:
    """A finding on the chain strip: where (``x``), which event, what kind."""

    x: float
    seq: int
    kind: str


@dataclass(frozen=True)
class ChainStrip:
    """A verified source's sequence range as a bar, findings marked where they are."""

    width: float
    first_seq: int | None
    last_seq: int | None
    ok: bool
    marks: list[Mark]


_STRIP_W: Final = 600.0


def chain_strip(report: VerifyReport) -> ChainStrip:
    """The range of events a verification checked and where its findings sit in it."""
    first, last = report.first_seq, report.last_seq
    marks = []
    if first is not None and last is not None:
        span = max(last - first, 1)
        for finding in report.findings:
            if finding.seq is None:
                continue
            share = min(max((finding.seq - first) / span, 0.0), 1.0)
            marks.append(Mark(share * _STRIP_W, finding.seq, finding.kind))
    return ChainStrip(_STRIP_W, first, last, report.ok, marks)
