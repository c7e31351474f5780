"""Money in one currency at a time: the ledger never sums dollars with euros, and a budget is never
judged on amounts in another currency than its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.policy import parse_policy
from airflow_wfe.core.policy.engine import evaluate
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.exceptions import CurrencyMismatchError, PolicyError
from airflow_wfe.store import SqlStore


def test_a_run_spends_in_one_currency(store: SqlStore) -> None:
    Recorder(store, NullEmitter()).run_started("gen", "r1", actor="scheduler", reason="go")
    store.record_cost("gen", "r1", "generate", 6.5, currency="usd", detail="tokens")
    with pytest.raises(CurrencyMismatchError) as caught:
        store.record_cost("gen", "r1", "images", 2.0, currency="EUR")
    assert str(caught.value).startswith("run gen/r1: a cost in EUR cannot join amounts in USD")
    assert caught.value.code == "currency_mismatch"
    assert [(m.step_id, m.unit) for m in store.ledger_as_metrics()] == [("generate", "USD")]
    spent = store.spent("gen", "r1")
    assert spent["run"] == 6.5
    assert spent["currencies"]["run"] == ["USD"]
    with pytest.raises(ValueError, match="3-letter code"):
        store.record_cost("gen", "r1", "x", 1.0, currency="dollars")


def test_a_budget_is_never_judged_on_another_currency() -> None:
    policy = parse_policy(
        "name: b\nrules:\n  - {id: month, kind: budget, scope: dag_month, limit: 100,"
        " currency: EUR}\n",
        file="b.yaml",
    )
    spent = {"run": 0.0, "dag_day": 5.0, "dag_month": 50.0, "tag_day": {}, "tag_month": {}}
    facts = {
        "run": {"dag_id": "gen"},
        "now": datetime(2026, 12, 5, tzinfo=UTC),
        "cost": {"reserve": 0, "spent": {**spent, "currencies": {"dag_month": ["USD"]}}},
    }
    with pytest.raises(PolicyError, match="this budget is in EUR but the ledger's dag_month"):
        evaluate([policy], facts)
    facts["cost"]["spent"]["currencies"] = {"dag_month": ["EUR"]}
    assert evaluate([policy], facts).outcome.value == "allow"
