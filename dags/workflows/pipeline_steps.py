"""The Python behind ``wfe_example_yaml_data_pipeline.yaml``: extract, transform, publish, unpublish.

The data is generated (seeded) so the example runs offline; ``params.bad_rows`` slips invalid orders
in, which the quality check on ``extract`` denies before anything is transformed or published.
Published files go to ``$AIRFLOW_HOME/wfe-demo-data/published``, where you can look at them.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any


def _published() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", ".")) / "wfe-demo-data" / "published"


def extract(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Today's orders, as records (an XCom-friendly shape the quality gate reads as a table)."""
    rng = random.Random(20261205)
    orders: list[dict[str, Any]] = [
        {
            "order_id": 1000 + i,
            "country": rng.choice(["FR", "DE", "US"]),
            "amount": rng.randint(5, 400),
        }
        for i in range(50)
    ]
    for i in range(int(params.get("bad_rows", 0))):
        orders.append({"order_id": None, "country": "??", "amount": -10 * (i + 1)})
    return orders


def transform(ti: Any) -> dict[str, Any]:
    orders = ti.xcom_pull(task_ids="extract")
    by_country: dict[str, int] = {}
    for order in orders:
        by_country[order["country"]] = by_country.get(order["country"], 0) + order["amount"]
    return {"orders": len(orders), "revenue_by_country": dict(sorted(by_country.items()))}


def publish(ti: Any, run_id: str) -> str:
    # The run id, not ``ds``: a run triggered without a logical date (the UI's default) has no ds.
    summary = ti.xcom_pull(task_ids="transform")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    target = _published() / f"orders-{safe}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(summary, indent=2))
    return str(target)


def announce(params: dict[str, Any], ti: Any) -> str:
    """The last step; with ``params.fail_after_publish`` it fails, so the saga unpublishes."""
    published = ti.xcom_pull(task_ids="publish")
    if params.get("fail_after_publish"):
        raise RuntimeError(f"the dashboard did not take the announcement of {published}")
    return f"announced {published}"


def unpublish(result: str, idempotency_key: str) -> None:
    """Take a published file back (idempotent: a second call finds nothing to remove)."""
    Path(result).unlink(missing_ok=True)
