"""docs/json.md is generated from the response models and must match them."""

from __future__ import annotations

from pathlib import Path

from airflow_wfe.app.json_docs import render

DOC = Path(__file__).parents[3] / "docs" / "json.md"


def test_docs_json_md_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/json.md is stale: python -m airflow_wfe.app.json_docs > docs/json.md"
    )
