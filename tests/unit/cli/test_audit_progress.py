"""The progress line of ``wfe audit verify|export|archive``: drawn on a terminal, absent otherwise."""

from __future__ import annotations

import io

import pytest

from airflow_wfe.cli.audit_progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_count_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress("exporting audit events") as advance:
        advance(1000)
        advance(1000)
    drawn = terminal.getvalue()
    assert "exporting audit events" in drawn
    assert "2,000 event(s)" in drawn


@pytest.mark.parametrize("terminal", [True, False])
def test_nothing_is_drawn_off_a_terminal_or_for_json(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    with progress("verifying the audit trail", enabled=not terminal) as advance:
        advance(5)
    assert stderr.getvalue() == ""
