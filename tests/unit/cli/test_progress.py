"""The progress view without a terminal: a line per change of state or running step, none for
a repeat, the clock starting at the trigger."""

from __future__ import annotations

import io

from airflow_wfe.cli.progress import Progress


def test_plain_lines_follow_changes_only() -> None:
    out = io.StringIO()
    with Progress(out) as progress:
        progress.add("a", "release", total=4)
        progress.update("a", state="RUNNING", done=1, current="build")
        progress.update("a", state="RUNNING", done=1, current="build")  # nothing new
        progress.update("a", state="RUNNING", done=2, current="deploy")
        progress.update("a", state="COMPLETED", done=4, ended=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].split() == ["release", "QUEUED", "0/4", "steps", "0s"]
    assert "build" in lines[1]
    assert "deploy" in lines[2]
    assert "COMPLETED" in lines[3]
    assert "4/4 steps" in lines[3]
    assert "deploy" not in lines[3]


def test_a_terminal_gets_a_live_table() -> None:
    out = io.StringIO()
    with Progress(out, live=True) as progress:
        progress.add("a", "campaign", total=3)
        progress.update("a", state="RUNNING", done=1, current="generate")
    text = out.getvalue()
    assert "campaign" in text
    assert "RUNNING" in text
    assert "1/3" in text
