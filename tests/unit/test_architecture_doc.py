"""docs/architecture.md draws the state machines the code enforces, not a copy that drifted."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_wfe.core.spec.diagram import machine_mermaid
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_state_diagrams_are_the_transition_tables() -> None:
    blocks = re.findall(r"```mermaid\n(.*?)```", DOC.read_text(), flags=re.S)
    states = [block for block in blocks if block.startswith("stateDiagram")]
    assert states == [machine_mermaid(RUN_MACHINE), machine_mermaid(STEP_MACHINE)]
    # The other diagrams are Mermaid too, and every one opens with a diagram type it knows.
    kinds = {block.split(None, 1)[0] for block in blocks}
    assert kinds == {"flowchart", "sequenceDiagram", "stateDiagram-v2"}
