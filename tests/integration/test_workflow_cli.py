"""``wfe validate``, ``wfe render`` and ``wfe run`` on workflow files the package did not ship with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WFE = str(Path(sys.executable).parent / "wfe")

STEPS = """
def hello(name):
    return f"hello {name}"


def shout(ti):
    return ti.xcom_pull(task_ids="greet").upper()


def explode():
    raise RuntimeError("boom")
"""


def _wfe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WFE, *args], check=False, capture_output=True, text=True, env=dict(os.environ), timeout=300
    )


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    (folder / "fresh_steps.py").write_text(STEPS)
    return path


GOOD = """
    name: wfe_t_cli_good
    version: "3"
    owner: qa
    steps:
      greet:
        run: fresh_steps:hello
        args: {name: world}
      loud:
        run: fresh_steps:shout
        needs: [greet]
"""


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    result = _wfe("validate", str(_write(tmp_path, "good.yaml", GOOD)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("good.yaml: valid (0 error(s), 0 warning(s))")


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.yaml",
        """
        name: wfe_t_cli_bad
        version: "1"
        owner: qa
        steps:
          a:
            run: fresh_steps:hello
            needs: [c]
          b:
            run: fresh_steps:hello
            needs: [a]
          c:
            run: fresh_steps:hello
            needs: [b]
            retry:
              max_attempts: 2
              backof: fixed
        """,
    )
    result = _wfe("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:16: steps.c.retry.backof: unknown key (did you mean 'backoff'?)" in result.stdout
    fixed = bad.read_text().replace("backof", "backoff")
    bad.write_text(fixed)
    result = _wfe("validate", "--json", str(bad))
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert report["valid"] is False
    cycles = [p for p in report["problems"] if p["code"] == "cycle"]
    assert len(cycles) == 1
    assert cycles[0]["message"] == "cycle: a → b → c → a"
    assert cycles[0]["line"] is not None


def test_validate_catches_code_that_cannot_be_imported(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "missing.yaml", GOOD.replace("fresh_steps:shout", "no_such_module:shout")
    )
    result = _wfe("validate", str(path))
    assert result.returncode == 1
    assert f"{path}:9: steps.loud.run: module 'no_such_module' not found" in result.stdout


def test_render_draws_steps_and_state_machines(tmp_path: Path) -> None:
    path = _write(tmp_path, "good.yaml", GOOD)
    mermaid = _wfe("render", str(path))
    assert mermaid.returncode == 0, mermaid.stderr
    assert "greet --> loud" in mermaid.stdout.replace('"', "")
    assert "stateDiagram-v2" in mermaid.stdout
    dot = _wfe("render", "--format", "dot", "--what", "steps", str(path))
    assert dot.returncode == 0
    assert dot.stdout.lstrip().startswith("digraph")
    assert '"greet" -> "loud"' in dot.stdout


def test_render_refuses_a_workflow_validate_refuses(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "cycle.yaml",
        """
        name: wfe_t_cli_cycle
        version: "1"
        owner: platform
        steps:
          a:
            run: os:getcwd
            needs: [b]
          b:
            run: os:getcwd
            needs: [a]
        """,
    )
    result = _wfe("render", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{path}:7: steps.a.needs[0]: cycle: a → b → a" in result.stderr
    assert "invalid, not drawn" in result.stderr


def test_run_executes_once_through_airflow_and_prints_the_history(
    tmp_path: Path, airflow_db: None
) -> None:
    path = _write(tmp_path, "good.yaml", GOOD)
    result = _wfe("run", str(path), "--conf", '{"note": "from the test"}')
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Run wfe_t_cli_good / " in result.stdout
    assert ": COMPLETED" in result.stdout
    assert "loud: SUCCEEDED (try 1)" in result.stdout


def test_run_exits_1_when_the_run_does_not_complete(tmp_path: Path, airflow_db: None) -> None:
    path = _write(
        tmp_path,
        "failing.yaml",
        """
        name: wfe_t_cli_failing
        version: "1"
        owner: qa
        steps:
          kaboom:
            run: fresh_steps:explode
        """,
    )
    result = _wfe("run", str(path))
    assert result.returncode == 1
    assert ": FAILED" in result.stdout
    assert "RuntimeError: boom" in result.stdout


def test_run_refuses_an_invalid_file_with_its_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", GOOD.replace("owner: qa", "ownr: qa"))
    result = _wfe("run", str(path))
    assert result.returncode == 1
    assert "ownr: unknown key (did you mean 'owner'?)" in result.stderr
    assert "Traceback" not in result.stderr
