"""docs/json.md, generated from the response models: ``python -m airflow_wfe.app.json_docs``.

The document is written from the models' own fields and descriptions, so it cannot drift from what
the CLI prints and the REST API returns (tests/unit/app/test_json_docs.py compares the two).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, RootModel

from airflow_wfe.app import models

__all__ = ["render"]

_INTRO = """# JSON shapes

Every `--json` output of `wfe` and every body of the REST API (`/wfe/api/v1/...`) is one of these
models, serialized by `model_dump(mode="json")`: the CLI and the API print the same value. Date-times
are ISO 8601 with an offset (`2026-11-25T10:00:00.123456+00:00`). Generated from
`airflow_wfe/app/models` by `python -m airflow_wfe.app.json_docs > docs/json.md`; do not edit by hand.
"""

#: Which command prints which model.
_WHERE = {
    "RunList": "`wfe runs list --json`",
    "RunDetail": "`wfe runs show DAG_ID RUN_ID --json`",
    "AuditStory": "`wfe audit show DAG_ID RUN_ID --json`",
    "AuditVerification": "`wfe audit verify --json`",
    "CheckpointResult": "`wfe audit checkpoint --json`",
    "ArchiveResult": "`wfe audit archive --json`",
    "CostList": "`wfe cost --json`",
    "PolicyDecision": "`wfe policy test --json`",
    "CompensationRequest": "`wfe compensate --json`",
    "DoraList": "`wfe dora --json`",
    "Report": "`wfe report --json`",
    "ArtifactList": "`wfe artifacts list --json`",
    "ArtifactHistory": "`wfe artifacts show NAME --json`",
    "ValidationList": "`wfe validate --json`",
    "SchemaStatus": "`wfe db check --json`",
}


def _type(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    for prefix in ("airflow_wfe.app.models.", "datetime.", "<class '"):
        text = text.replace(prefix, "")
    for module in ("runs.", "audit.", "governance.", "metrics.", "artifacts.", "workflows."):
        text = text.replace(module, "")
    text = re.sub(r"Annotated\[datetime, PlainSerializer\(.*?\)\]", "datetime", text)
    text = re.sub(r"datetime\(func=.*?\)\]", "datetime", text)
    text = re.sub(r"Optional\[(.*)\]$", r"\1 | None", text)
    text = text.replace("'>", "").replace("NoneType", "None")
    return text.replace(" | None", " or null").replace("None", "null")


def _section(name: str, model: type[BaseModel]) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"## {name}", "", doc, ""]
    if name in _WHERE:
        lines += [f"Printed by {_WHERE[name]}.", ""]
    if issubclass(model, RootModel):
        item = model.model_fields["root"].annotation
        lines += [f"A JSON array of `{_type(item).removeprefix('list[').removesuffix(']')}`.", ""]
        return lines
    lines += ["| field | type | meaning |", "|---|---|---|"]
    for field, info in model.model_fields.items():
        kind = _type(info.annotation).replace("|", "or")
        lines.append(f"| `{field}` | `{kind}` | {info.description or ''} |")
    return [*lines, ""]


def render() -> str:
    """The whole document."""
    lines = [_INTRO]
    for name in sorted(models.__all__):
        model = getattr(models, name)
        if (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and model.__module__ != models.base.__name__
        ):
            lines += _section(name, model)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
