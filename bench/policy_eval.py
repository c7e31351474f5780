"""Policy evaluation and gate decisions: skipped until the policy engine lands.

Expected API (to wire up once ``airflow_wfe.policy`` lands): ``parse_policy(text) -> LoadedPolicy`` for a
policy with 20 rules, ``evaluate([policy], facts) -> Decision`` as a pure call (the ≤ 100 µs goal),
and a gate decision recorded through the recorder in one store transaction (the p99 ≤ 5 ms goal).
"""

from __future__ import annotations

import importlib

from bench.common import emit, skip

AREA = "policy"


def main() -> None:
    try:
        policy = importlib.import_module("airflow_wfe.policy")
    except ImportError:
        reason = "policy engine not available yet"
    else:
        missing = [name for name in ("parse_policy", "evaluate") if not hasattr(policy, name)]
        reason = (
            f"policy engine not available yet (airflow_wfe.policy lacks {', '.join(missing)})"
            if missing
            else "policy engine found, bench not wired to it yet"
        )
    emit(
        [
            skip(AREA, "evaluate a 20-rule policy", reason, goal="≤ 100 µs"),
            skip(AREA, "gate decision (evaluate + record), p99", reason, goal="≤ 5 ms"),
        ]
    )


if __name__ == "__main__":
    main()
