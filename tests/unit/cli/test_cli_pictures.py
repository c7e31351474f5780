"""Pictures from ``wfe render`` and ``wfe runs show --format``, and shell completion, as users run them.

Graphviz's ``dot`` draws SVG and PNG: these tests skip without it, except in CI (``.ci/run`` installs
it and sets WFE_REQUIRE_GRAPHVIZ=1), where a missing ``dot`` is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_wfe.core.states import StepState
from airflow_wfe.testing import temporary_store

pytestmark = pytest.mark.slow

WFE = str(Path(sys.executable).parent / "wfe")
REPO = Path(__file__).resolve().parents[3]
WORKFLOW = REPO / "dags" / "workflows" / "wfe_example_yaml_data_pipeline.yaml"
SVG = "{http://www.w3.org/2000/svg}"


def _needs_dot() -> None:
    if shutil.which("dot") is None:
        if os.environ.get("WFE_REQUIRE_GRAPHVIZ") == "1":
            pytest.fail("Graphviz `dot` is required here (WFE_REQUIRE_GRAPHVIZ=1) but not on PATH")
        pytest.skip("Graphviz `dot` is not installed (apt install graphviz)")


def _wfe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [WFE, *args], capture_output=True, env=env or dict(os.environ), timeout=180, check=False
    )


def test_render_svg_draws_every_step_and_state(tmp_path: Path) -> None:
    _needs_dot()
    target = tmp_path / "pipeline.svg"
    done = _wfe("render", str(WORKFLOW), "--format", "svg", "--to", str(target))
    assert done.returncode == 0, done.stderr
    root = ET.parse(target).getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    # The three graphs in one document: the steps, the run machine, the step machine.
    assert {"extract", "transform", "WAITING_APPROVAL", "UPSTREAM_FAILED"} <= texts
    assert len(root.findall(f"{SVG}svg")) == 3

    alone = _wfe("render", str(WORKFLOW), "--what", "steps", "--format", "svg")
    assert alone.returncode == 0
    steps = ET.fromstring(alone.stdout)
    assert "WAITING_APPROVAL" not in {t.text for t in steps.iter(f"{SVG}text")}


def test_render_png_composes_one_picture(tmp_path: Path) -> None:
    _needs_dot()
    one, every = tmp_path / "steps.png", tmp_path / "all.png"
    assert (
        _wfe(
            "render", str(WORKFLOW), "--what", "steps", "--format", "png", "--to", str(one)
        ).returncode
        == 0
    )
    assert _wfe("render", str(WORKFLOW), "--format", "png", "--to", str(every)).returncode == 0
    for picture in (one, every):
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def height(png: Path) -> int:
        return int.from_bytes(png.read_bytes()[20:24], "big")  # IHDR: width, then height

    assert height(every) > height(one)  # the state machines sit under the steps


def test_render_without_graphviz_says_what_to_do(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    done = _wfe(
        "render", str(WORKFLOW), "--format", "png", "--to", str(tmp_path / "x.png"), env=env
    )
    assert done.returncode == 1
    assert done.stderr.decode().strip() == (
        "wfe: error: --format png needs Graphviz's `dot` on PATH (apt install graphviz, brew "
        "install graphviz); --format mermaid needs nothing and renders on GitHub and GitLab"
    )
    assert not (tmp_path / "x.png").exists()
    mermaid = _wfe("render", str(WORKFLOW), env=env)
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith(b"flowchart")
    nowhere = tmp_path / "missing" / "x.mmd"
    unwritable = _wfe("render", str(WORKFLOW), "--to", str(nowhere), env=env)
    assert unwritable.returncode == 1
    assert unwritable.stderr.decode() == (
        f"wfe: error: cannot write {nowhere}: No such file or directory\n"
    )


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "store").mkdir()
    with temporary_store(tmp_path / "store") as ctx:
        rec = ctx.recorder
        rec.run_started("etl", "run-1", actor="scheduler", reason="started")
        for step, end in (("extract", StepState.SUCCEEDED), ("load", StepState.FAILED)):
            rec.step("etl", "run-1", step, StepState.RUNNING, actor="w", reason="go", try_number=1)
            rec.step("etl", "run-1", step, end, actor="w", reason="<done & dusted>", try_number=1)
        rec.run_finished("etl", "run-1", succeeded=False, actor="scheduler", reason="load failed")
        yield ctx.settings.store_conn


def test_run_timeline_as_svg_and_mermaid(store_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW__WFE__STORE_CONN": store_url}
    target = tmp_path / "run.svg"
    done = _wfe("runs", "show", "etl", "run-1", "--format", "svg", "--to", str(target), env=env)
    assert done.returncode == 0, done.stderr
    root = ET.parse(target).getroot()
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert labels[0] == "etl / run-1: FAILED"
    assert {"run", "extract", "load"} <= set(labels)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    tips = [r.find(f"{SVG}title").text or "" for r in bars]  # type: ignore[union-attr]
    # One bar per state held: run CREATED, VALIDATED, RUNNING, FAILED; each step PENDING,
    # RUNNING and its end.
    assert len(bars) == 4 + 3 + 3
    failed = [r for r, tip in zip(bars, tips, strict=True) if tip.startswith("load: FAILED")]
    assert failed[0].get("fill") == "#c53030"
    assert all(float(r.get("width", "0")) >= 2 for r in bars)

    gantt = _wfe("runs", "show", "etl", "run-1", "--format", "mermaid", env=env)
    assert gantt.returncode == 0
    lines = gantt.stdout.decode().splitlines()
    assert lines[0] == "gantt"
    assert [line.strip() for line in lines if line.strip().startswith("section")] == [
        "section run",
        "section extract",
        "section load",
    ]
    assert any(line.strip().startswith("FAILED :crit, ") for line in lines)


def test_shell_completion_through_argcomplete(tmp_path: Path) -> None:
    pytest.importorskip("argcomplete")
    out = tmp_path / "completions"

    def complete(line: str) -> list[str]:
        env = {
            **os.environ,
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        }
        done = subprocess.run([WFE], env=env, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return [word.strip() for word in out.read_text().split("\n")]

    assert {"runs", "render", "doctor"} <= set(complete("wfe "))
    assert complete("wfe runs l") == ["list"]
    assert set(complete("wfe runs list -o ")) == {"table", "json", "yaml", "plain"}
    script = subprocess.run(
        [str(Path(sys.executable).parent / "register-python-argcomplete"), "wfe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "complete " in script.stdout
