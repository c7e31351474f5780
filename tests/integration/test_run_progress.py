"""``wfe run`` shows the run's progress on stderr while Airflow runs it: without a terminal (as here,
and in CI) one line each time the recorded state or the running step changes, ending with the
run's final state; stdout still carries only the history."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WFE = str(Path(sys.executable).parent / "wfe")


def test_wfe_run_prints_progress_lines_on_stderr(tmp_path: Path, airflow_db: None) -> None:
    (tmp_path / "progress_steps.py").write_text(
        "import time\n\ndef slow():\n    time.sleep(2)\n    return 1\n\ndef quick():\n    return 2\n"
    )
    path = tmp_path / "progress.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: wfe_t_run_progress
            version: "1"
            owner: qa
            steps:
              slow:
                run: progress_steps:slow
              quick:
                run: progress_steps:quick
                needs: [slow]
            """
        ).lstrip()
    )
    result = subprocess.run(
        [WFE, "run", str(path)],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "wfe_t_run_progress" in line]
    assert any("RUNNING" in line and "slow" in line for line in lines), result.stderr
    assert "COMPLETED" in lines[-1], lines
    assert "2/2 steps" in lines[-1], lines
    assert "RUNNING" not in result.stdout.split("\n")[0]  # stdout: the history, not the view
