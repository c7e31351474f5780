"""The metrics reference, the name constants, the statsd_exporter mapping and the dashboard agree.

statsd_exporter is a Go binary with no Python package, so its two matchers are re-implemented here
as documented: a glob ``*`` matches exactly one dot-separated component and ``$n`` is the n-th
``*``; a regex match is anchored by the rule itself and ``$n`` is the n-th group.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_wfe.core.metrics import names

ROOT = Path(__file__).resolve().parents[3]
MAPPING = ROOT / "docker" / "statsd" / "statsd_mapping.yml"
DOCS = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "docker" / "grafana" / "wfe-dashboard.json"
_PROM_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _rules() -> list[dict[str, Any]]:
    config = yaml.safe_load(MAPPING.read_text())
    default_type = config.get("defaults", {}).get("match_type", "glob")
    return [
        {**rule, "match_type": rule.get("match_type", default_type)} for rule in config["mappings"]
    ]


def _substitute(template: str, groups: list[str]) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda m: groups[int(m.group(1)) - 1], template)


def _map(name: str) -> tuple[str, dict[str, str]] | None:
    """(Prometheus name, labels) of the first rule matching ``name``, as statsd_exporter would."""
    for rule in _rules():
        groups: list[str] | None = None
        if rule["match_type"] == "glob":
            pattern, parts = rule["match"].split("."), name.split(".")
            if len(pattern) == len(parts) and all(
                p in ("*", s) for p, s in zip(pattern, parts, strict=True)
            ):
                groups = [s for p, s in zip(pattern, parts, strict=True) if p == "*"]
        else:
            match = re.match(rule["match"], name)
            groups = list(match.groups()) if match else None
        if groups is not None:
            labels = {k: _substitute(str(v), groups) for k, v in (rule.get("labels") or {}).items()}
            return _substitute(rule["name"], groups), labels
    return None


def _documented() -> dict[str, tuple[str, ...]]:
    """``{base name: segments}`` of the reference table in docs/metrics.md."""
    found: dict[str, tuple[str, ...]] = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"^\| `(wfe\.[a-z_.]+?)((?:\.<[a-z_]+>)*)` \|", line)
        if match:
            found[match.group(1)] = tuple(re.findall(r"<([a-z_]+)>", match.group(2)))
    return found


def test_the_reference_documents_every_constant_and_nothing_else() -> None:
    constants = {spec.name: spec.segments for spec in names.ALL_METRICS}
    assert _documented() == constants


@pytest.mark.parametrize("spec", names.ALL_METRICS, ids=lambda spec: spec.name)
def test_the_mapping_covers_every_documented_name(spec: names.MetricSpec) -> None:
    example = "airflow." + spec.example()
    mapped = _map(example)
    assert mapped is not None, f"{example} is not mapped by {MAPPING.name}"
    prom_name, labels = mapped
    assert _PROM_NAME.match(prom_name)
    assert prom_name.startswith("wfe_")
    assert set(labels) == set(spec.segments), labels
    if "dag_id" in spec.segments:
        assert labels["dag_id"] == "example.dag_1"  # a DAG id with a dot survives whole
    if spec.kind == "counter":
        assert prom_name.endswith("_total")


def test_every_mapping_rule_serves_a_documented_name() -> None:
    used = {_map("airflow." + spec.example())[0] for spec in names.ALL_METRICS}  # type: ignore[index]
    assert {rule["name"] for rule in _rules()} == used


def test_the_dashboard_queries_only_mapped_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    mapped = {rule["name"] for rule in _rules()}
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric in re.findall(r"\b(wfe_[a-z_]+)", target["expr"]):
                queried.add(re.sub(r"_(bucket|sum|count)$", "", metric))
    assert queried <= mapped, queried - mapped
    titles = {panel["title"] for panel in dashboard["panels"]}
    for needed in ("Runs by state", "Failure rate", "Compensation rate", "Gate decisions"):
        assert needed in titles
    assert {"Cost vs budget", "Deployment frequency", "Change failure rate"} <= titles
