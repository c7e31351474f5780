"""Package-level contracts: public API, cheap imports, a core free of Airflow, provider info."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import airflow_wfe

CORE_MODULES = [
    "airflow_wfe.core.states",
    "airflow_wfe.exceptions",
    "airflow_wfe.config",
    "airflow_wfe.store",
    "airflow_wfe.store.schema",
    "airflow_wfe.core.metrics",
    "airflow_wfe.engine.recorder",
    "airflow_wfe.core.spec.loader",
    "airflow_wfe.core.spec.validate",
    "airflow_wfe.core.spec.diagram",
    "airflow_wfe.store.artifacts",
    "airflow_wfe.adapters.saga.declare",
]


def _fresh_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip()


def test_public_api_is_pinned() -> None:
    assert airflow_wfe.__all__ == [
        "GOVERNED_TAG",
        "CanaryGateOperator",
        "IllegalTransitionError",
        "PolicyGateOperator",
        "QualityGateOperator",
        "RunState",
        "Settings",
        "StepState",
        "WfeError",
        "__version__",
        "canary_gate",
        "compensate",
        "get_settings",
        "irreversible",
        "load_workflows",
        "policy_gate",
        "quality_gate",
        "record_business_metric",
        "record_cost",
        "report_workflow_errors",
        "rollout",
        "use_artifact",
    ]
    for name in airflow_wfe.__all__:
        assert getattr(airflow_wfe, name) is not None


def test_importing_the_package_loads_nothing_heavy() -> None:
    loaded = json.loads(
        _fresh_python(
            "import sys, json, airflow_wfe; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'pandas', 'great_expectations', 'alembic', 'fastapi', 'sqlalchemy', 'airflow', 'pydantic'})))"
        )
    )
    assert loaded == []


def test_importing_the_plugin_loads_no_store_or_recorder() -> None:
    """Every process that loads plugins imports the plugin module, task processes included, and most
    never record anything (ungoverned DAGs, the dag-processor): the store, SQLAlchemy's SQL layer of
    ours and the recorder load at the first hook that writes, not at plugin import."""
    loaded = json.loads(
        _fresh_python(
            "import sys, json, airflow.sdk, airflow_wfe.plugin; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(("
            "'airflow_wfe.store', 'airflow_wfe.engine.recorder', 'airflow_wfe.engine.harness')))))"
        )
    )
    assert loaded == []


def test_reading_settings_does_not_load_the_policy_engine() -> None:
    """Every process reads its settings (task processes at their first hook, DAG parsing through the
    cluster policy); the policy package (pydantic models, CEL) loads only where a gate runs."""
    loaded = _fresh_python(
        "import sys, os; os.environ['AIRFLOW__WFE__PARSE_TIME_CHECKS'] = 'owner'; "
        "from airflow_wfe.config import get_settings; s = get_settings(); "
        "print(s.parse_time_checks, 'airflow_wfe.core.policy' in sys.modules, 'cel' in sys.modules)"
    )
    assert loaded == "('owner',) False False"


def test_core_modules_never_import_airflow() -> None:
    imports = "; ".join(f"import {m}" for m in CORE_MODULES)
    out = _fresh_python(
        f"import sys; {imports}; "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    assert out == "[]"


def test_entry_points_are_registered() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert plugins["airflow_wfe"] == "airflow_wfe.plugin:WfePlugin"
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "airflow_wfe.provider:get_provider_info" in providers
    policies = {ep.name: ep.value for ep in entry_points(group="airflow.policy")}
    assert policies["airflow_wfe"] == "airflow_wfe.adapters.cluster_policy"


def test_provider_info_is_valid_for_airflow() -> None:
    import jsonschema
    from airflow.providers_manager import ProvidersManager  # noqa: F401 - loads the schema path

    from airflow_wfe.provider import get_provider_info

    schema_path = __import__("airflow").__path__[0] + "/provider_info.schema.json"
    with open(schema_path) as handle:
        schema = json.load(handle)
    info = get_provider_info()
    jsonschema.validate(info, schema)
    options = info["config"]["wfe"]["options"]
    assert {
        "enabled",
        "govern",
        "fail_closed",
        "store_conn",
        "policy_path",
        "audit_signing_key",
    } <= set(options)
    assert options["store_conn"]["sensitive"] is True


def test_airflow_sees_config_defaults_and_the_plugin() -> None:
    out = _fresh_python("from airflow.configuration import conf; print(conf.get('wfe', 'govern'))")
    assert out.splitlines()[-1] == "tagged"
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    ours = [p for p in plugins if p["name"] == "airflow_wfe"]
    assert len(ours) == 1
    assert "airflow_wfe.adapters.listeners.listener.WfeListener" in str(ours[0]["listeners"])
