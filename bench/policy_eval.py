"""Policy evaluation and gate decisions.

``evaluate`` of a 20-rule policy (14 CEL expression rules, 2 budgets, 2 change windows, 2 approval
rules that do not ask) on the facts a gate gathers, as a pure call: the ≤ 100 µs goal. A gate
decision: evaluate, then record it (decision row and its audit event, one store transaction) on a
SQLite store with a signed chain: the p99 ≤ 5 ms goal.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench.common import emit, percentile, quick, runs, scratch_home, summarise

AREA = "policy"

RULES = "\n".join(
    [
        *(
            f"  - {{id: expr{i}, when: 'run.params.env == \"prod{i}\" && cost.spent.run > {i}.0',"
            f" decision: needs_approval, reason: rule {i}}}"
            for i in range(14)
        ),
        "  - {id: run-budget, kind: budget, scope: run, limit: 100}",
        "  - {id: month-budget, kind: budget, scope: dag_month, limit: 1000}",
        "  - {id: freeze, kind: change_window, timezone: Europe/Paris,"
        " freeze: [{start: 2030-12-20T00:00:00, end: 2031-01-04T00:00:00}]}",
        "  - {id: hours, kind: change_window, timezone: UTC, allow: ['* * * * *']}",
        "  - {id: ask-a, kind: approval, when: 'step.risk == \"high\"', approvers: [alice]}",
        "  - {id: ask-b, kind: approval, when: 'step.risk == \"critical\"', required: 2}",
    ]
)
POLICY = f"name: bench\nversion: '1'\nrules:\n{RULES}\n"


def _facts() -> dict[str, Any]:
    return {
        "run": {"dag_id": "bench", "run_id": "r", "params": {"env": "dev"}, "tags": ["team"]},
        "step": {"id": "gate", "risk": "low"},
        "cost": {"reserve": 1.0, "spent": {"run": 2.0, "dag_day": 2.0, "dag_month": 20.0}},
        "metrics": {},
        "now": datetime.now(UTC),
    }


def evaluate_us(count: int) -> list[float]:
    from airflow_wfe.core.policy import evaluate, parse_policy

    policy = parse_policy(POLICY)
    assert len(policy.policy.rules) == 20
    evaluate([policy], _facts())  # compile the expressions once, as a long-lived worker does
    values = []
    for _ in range(runs()):
        facts = _facts()
        started = time.perf_counter()
        for _ in range(count):
            evaluate([policy], facts)
        values.append((time.perf_counter() - started) / count * 1e6)
    return values


def decision_p99_ms(count: int) -> list[float]:
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.core.metrics import NullEmitter
    from airflow_wfe.core.policy import evaluate, parse_policy
    from airflow_wfe.engine.recorder import Recorder
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    policy = parse_policy(POLICY)
    values = []
    for index in range(runs()):
        home = scratch_home("policy")
        store = SqlStore(f"sqlite:///{home}/wfe.db", audit=AuditLog(signer=HmacSigner(b"k" * 32)))
        Recorder(store, NullEmitter()).run_started("bench", f"r{index}", actor="w", reason="go")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            decision = evaluate([policy], _facts())
            store.record_decision(
                "bench",
                f"r{index}",
                "gate",
                kind="policy",
                outcome=decision.outcome.value,
                reasons=decision.to_dict()["reasons"],
                policies=decision.policies,
                actor="gate:gate",
            )
            samples.append((time.perf_counter() - started) * 1000)
        values.append(percentile(samples, 0.99))
    return values


def main() -> None:
    evaluations = 200 if quick() else 5000
    decisions = 30 if quick() else 500
    emit(
        [
            summarise(
                AREA,
                "evaluate a 20-rule policy",
                "µs",
                evaluate_us(evaluations),
                goal="≤ 100 µs",
                check=lambda v: v <= 100.0,
                note=f"{evaluations:,} evaluations per run, CEL programs compiled once",
            ),
            summarise(
                AREA,
                "gate decision (evaluate + record), p99",
                "ms",
                decision_p99_ms(decisions),
                goal="≤ 5 ms",
                check=lambda v: v <= 5.0,
                note=f"{decisions} decisions per run on SQLite, signed audit chain",
            ),
        ]
    )


if __name__ == "__main__":
    main()
