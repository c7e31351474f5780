"""Pictures from the command line: workflow graphs through Graphviz, a run's timeline as SVG.

``wfe render FILE --format svg|png`` hands the DOT text of :mod:`airflow_wfe.core.spec.diagram` to
Graphviz's ``dot`` (a system package: ``apt install graphviz``, ``brew install graphviz``); without
it, a clear error points at ``--format mermaid``, which needs nothing and renders on code hosting
pages. Several graphs (``--what all``: the steps and both state machines) become one picture: the
SVGs stacked in one document, the PNGs composed by ``dot`` itself.

``wfe runs show DAG RUN --format svg`` draws the run's timeline as the UI's run page does (the run
and each step as rows of state bars on one time axis), with the colours inline so the file stands
alone; ``--format mermaid`` writes it as a Mermaid ``gantt`` chart. (The UI's drawing lives above
the CLI in the layer contract, so the CLI cannot import it.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final
from xml.sax.saxutils import escape, quoteattr

from airflow_wfe.exceptions import UsageError, WfeError

if TYPE_CHECKING:
    from airflow_wfe.app.models import RunDetail, Transition

__all__ = [
    "GraphvizMissing",
    "dot_picture",
    "run_timeline_mermaid",
    "run_timeline_picture",
    "run_timeline_svg",
    "write_picture",
]

#: Seconds one ``dot`` call may take (a workflow of a few hundred steps takes well under one).
_DOT_TIMEOUT: Final = 60

#: Fill of a timeline bar per state (the UI's light palette).
_OK, _BAD, _WARN, _INFO, _IDLE = "#2f855a", "#c53030", "#975a16", "#2b6cb0", "#5f6b7a"
_STATE_FILL: Final = {
    "COMPLETED": _OK,
    "SUCCEEDED": _OK,
    "COMPENSATED": _OK,
    "FAILED": _BAD,
    "COMPENSATION_FAILED": _BAD,
    "REJECTED": _BAD,
    "UPSTREAM_FAILED": _BAD,
    "COMPENSATING": _WARN,
    "RETRYING": _WARN,
    "WAITING_APPROVAL": _WARN,
    "RUNNING": _INFO,
    "VALIDATED": _INFO,
}


class GraphvizMissing(WfeError):
    """Raised when a picture format needs Graphviz's ``dot`` and it is not on ``PATH``."""

    def __init__(self, fmt: str) -> None:
        super().__init__(
            f"--format {fmt} needs Graphviz's `dot` on PATH (apt install graphviz, brew install "
            "graphviz); --format mermaid needs nothing and renders on GitHub and GitLab"
        )
        self.format = fmt


def _dot_binary(fmt: str) -> str:
    found = shutil.which("dot")
    if found is None:
        raise GraphvizMissing(fmt)
    return found


def _run_dot(binary: str, args: Sequence[str], source: bytes) -> bytes:
    done = subprocess.run(
        [binary, *args], input=source, capture_output=True, timeout=_DOT_TIMEOUT, check=False
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise WfeError(f"Graphviz `dot` failed: {message[-1] if message else done.returncode}")
    return done.stdout


_SVG_SIZE = re.compile(rb'<svg[^>]*?width="([\d.]+)pt"[^>]*?height="([\d.]+)pt"', re.S)


def _stack_svgs(drawings: Sequence[bytes]) -> bytes:
    """Several ``dot`` SVGs one under the other in one document (sizes in points, as dot's)."""
    gap = 16.0
    parts: list[bytes] = []
    width = height = 0.0
    for svg in drawings:
        size = _SVG_SIZE.search(svg)
        if size is None:
            raise WfeError("Graphviz `dot` wrote an SVG without a size")
        w, h = float(size.group(1)), float(size.group(2))
        body = svg[svg.index(b"<svg") :]
        # The outer document counts in points (its viewBox), so each part's size is given in
        # those units, not in "pt" again (which would scale it by 4/3).
        start = body[: body.index(b">") + 1]
        sized = start.replace(size.group(1) + b"pt", size.group(1), 1).replace(
            size.group(2) + b"pt", size.group(2), 1
        )
        sized = sized.replace(b"<svg", f'<svg x="0" y="{height:.1f}"'.encode(), 1)
        parts.append(sized + body[len(start) :])
        width, height = max(width, w), height + h + gap
    height -= gap
    head = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:.1f}pt" height="{height:.1f}pt" '
        f'viewBox="0 0 {width:.1f} {height:.1f}">\n'
    )
    return head.encode() + b"\n".join(parts) + b"\n</svg>\n"


def _compose_pngs(binary: str, drawings: Sequence[bytes]) -> bytes:
    """Several PNGs one under the other, composed by ``dot`` (image nodes in a column)."""
    with tempfile.TemporaryDirectory(prefix="wfe-render-") as folder:
        nodes = []
        for number, png in enumerate(drawings):
            path = Path(folder) / f"part{number}.png"
            path.write_bytes(png)
            nodes.append(f'p{number} [image="{path.name}", label="", shape=none];')
        edges = " -> ".join(f"p{n}" for n in range(len(drawings)))
        source = "digraph wfe {\n  rankdir=TB;\n  " + "\n  ".join(nodes)
        source += f"\n  {edges} [style=invis];\n}}\n"
        return _run_dot(binary, ["-Tpng", f"-Gimagepath={folder}"], source.encode())


def dot_picture(graphs: Sequence[str], fmt: str) -> bytes:
    """One SVG or PNG of the DOT ``graphs`` (drawn by Graphviz's ``dot``).

    Raises:
        GraphvizMissing: ``dot`` is not installed.
        WfeError: ``dot`` refused the input.
    """
    binary = _dot_binary(fmt)
    drawings = [_run_dot(binary, [f"-T{fmt}"], graph.encode()) for graph in graphs]
    if len(drawings) == 1:
        return drawings[0]
    return _stack_svgs(drawings) if fmt == "svg" else _compose_pngs(binary, drawings)


def write_picture(data: bytes, to: str | None, *, binary: bool) -> None:
    """``data`` to the file ``to``, or to stdout (never a binary picture to a terminal)."""
    if to is not None:
        try:
            Path(to).write_bytes(data)
        except OSError as exc:
            raise WfeError(f"cannot write {to}: {exc.strerror or exc}") from exc
        print(f"wrote {to} ({len(data)} bytes)", file=sys.stderr)
        return
    if binary and sys.stdout.isatty():
        raise UsageError("a PNG is not for a terminal: add --to FILE or redirect stdout to a file")
    sys.stdout.flush()
    sys.stdout.buffer.write(data)


@dataclass(frozen=True)
class _Span:
    """One state held from ``start`` to ``end`` (``end`` None: still held at the last record)."""

    state: str
    start: datetime
    end: datetime | None


def _spans(transitions: Sequence[Transition]) -> list[_Span]:
    following = [*(t.at for t in transitions[1:]), None]
    return [_Span(t.to_state, t.at, after) for t, after in zip(transitions, following, strict=True)]


def _timeline_rows(run: RunDetail) -> list[tuple[str, list[_Span]]]:
    """The run's row, then one row per step instance (``step[3]`` for a mapped one)."""
    rows = [("run", _spans(run.transitions))]
    for step in run.steps:
        label = step.step_id if step.map_index < 0 else f"{step.step_id}[{step.map_index}]"
        rows.append((label, _spans(step.transitions)))
    return rows


_LABEL_W, _AXIS_W, _ROW_H = 200.0, 720.0, 22.0


def run_timeline_svg(run: RunDetail) -> str:
    """The run and each step as rows of state bars on one time axis, as a standalone SVG."""
    rows = _timeline_rows(run)
    moments = [span.start for _, spans in rows for span in spans]
    title = f"{run.dag_id} / {run.run_id}: {run.state}"
    width = _LABEL_W + _AXIS_W + 8
    height = _ROW_H * (len(rows) + 1)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height + 24:.0f}" '
        f'viewBox="0 -24 {width:.0f} {height + 24:.0f}" font-family="sans-serif" '
        'font-size="12" role="img">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="-24" width="{width:.0f}" height="{height + 24:.0f}" fill="#ffffff"/>',
        f'<text x="4" y="-8" fill="#1a202c" font-weight="bold">{escape(title)}</text>',
    ]
    if not moments:
        out.append('<text x="4" y="14" fill="#4a5568">no transitions recorded</text>')
        return "\n".join([*out, "</svg>"]) + "\n"
    start, end = min(moments), max(moments)
    span = max((end - start).total_seconds(), 1e-3)

    def x(at: datetime) -> float:
        return _LABEL_W + (at - start).total_seconds() / span * _AXIS_W

    for index, (label, spans) in enumerate(rows):
        y = index * _ROW_H
        out.append(
            f'<text x="{_LABEL_W - 6:.0f}" y="{y + 15:.0f}" text-anchor="end" '
            f'fill="#4a5568">{escape(label)}</text>'
        )
        for held in spans:
            until = held.end or end
            bar_w = max(2.0, x(until) - x(held.start))
            tip = f"{label}: {held.state} from {held.start.isoformat()}"
            tip += f" to {held.end.isoformat()}" if held.end else ""
            out.append(
                f'<rect x="{x(held.start):.1f}" y="{y + 3:.0f}" width="{bar_w:.1f}" '
                f'height="{_ROW_H - 6:.0f}" fill={quoteattr(_STATE_FILL.get(held.state, _IDLE))}>'
                f"<title>{escape(tip)}</title></rect>"
            )
    axis = height - _ROW_H + 4
    right = _LABEL_W + _AXIS_W
    out += [
        f'<line x1="{_LABEL_W:.0f}" x2="{right:.0f}" y1="{axis:.0f}" y2="{axis:.0f}" '
        'stroke="#a0aec0"/>',
        f'<text x="{_LABEL_W:.0f}" y="{height - 2:.0f}" fill="#4a5568">{start:%H:%M:%S}</text>',
        f'<text x="{right:.0f}" y="{height - 2:.0f}" text-anchor="end" fill="#4a5568">'
        f"{end:%H:%M:%S} (UTC)</text>",
        "</svg>",
    ]
    return "\n".join(out) + "\n"


def _gantt_text(text: str) -> str:
    """A Mermaid gantt name: no ``:``, ``;`` or ``#`` (they end or comment a task)."""
    return re.sub(r"[:;#]", "_", text)


def run_timeline_mermaid(run: RunDetail) -> str:
    """The timeline as a Mermaid ``gantt`` chart (one section per row, one task per state)."""
    rows = _timeline_rows(run)
    moments = [span.start for _, spans in rows for span in spans]
    last = max(moments) if moments else None
    lines = [
        "gantt",
        f"  title {_gantt_text(f'{run.dag_id} / {run.run_id}: {run.state}')}",
        "  dateFormat YYYY-MM-DDTHH:mm:ss.SSS",
        "  axisFormat %H:%M:%S",
    ]
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    for label, spans in rows:
        lines.append(f"  section {_gantt_text(label)}")
        for held in spans:
            end = held.end or last or held.start
            if _STATE_FILL.get(held.state) == _BAD:
                tag = "crit, "
            elif held.state in ("RUNNING", "COMPENSATING", "WAITING_APPROVAL", "RETRYING"):
                tag = "active, "
            else:
                tag = ""
            lines.append(
                f"    {held.state} :{tag}{held.start.strftime(fmt)[:-3]}, {end.strftime(fmt)[:-3]}"
            )
    return "\n".join(lines) + "\n"


def run_timeline_picture(run: RunDetail, fmt: str, to: str | None) -> None:
    """``wfe runs show ... --format svg|mermaid``: the timeline to ``to`` or stdout."""
    text = run_timeline_svg(run) if fmt == "svg" else run_timeline_mermaid(run)
    write_picture(text.encode(), to, binary=False)
