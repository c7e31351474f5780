"""The committed JSON Schema for editors stays what the models say, and agrees with the loader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_wfe.core.spec.loader import load_spec
from airflow_wfe.core.spec.models import workflow_json_schema

ROOT = Path(__file__).resolve().parents[4]
SCHEMA_FILE = ROOT / "airflow_wfe" / "core" / "spec" / "workflow.schema.json"
EXAMPLES = sorted(
    [*ROOT.glob("dags/**/*.yaml"), *ROOT.glob("tests/scenarios/session/**/*.yaml")],
)


def test_committed_schema_matches_the_models() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == workflow_json_schema(), (
        "airflow_wfe/core/spec/workflow.schema.json is stale; regenerate it with: "
        '.venv/bin/python -c "import json; from airflow_wfe.core.spec.models import '
        'workflow_json_schema as s; print(json.dumps(s(), indent=2, sort_keys=True))" '
        "> airflow_wfe/core/spec/workflow.schema.json"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_schema_and_loader_agree_on_the_shipped_files(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    data = yaml.safe_load(path.read_text())
    schema_errors = list(validator.iter_errors(data))
    try:
        load_spec(path)
        loader_ok = True
    except Exception:
        loader_ok = False
    assert loader_ok == (not schema_errors), [e.message for e in schema_errors]


def test_schema_rejects_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(workflow_json_schema())
    spec = {"name": "x", "version": "1", "owner": "me", "steps": {"a": {"run": "m:f", "nedds": []}}}
    assert any("nedds" in error.message for error in validator.iter_errors(spec))
