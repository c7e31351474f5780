"""The Python behind ``wfe_example_yaml_etl.yaml``: plain functions, nothing to import.

A function receives the step's ``args`` as keyword arguments and, like a PythonOperator callable, any
task context value it names (``ds``, ``params``, ``ti``...). A fan-out step gets its element first.
"""

from __future__ import annotations

from typing import Any


def list_partitions(params: dict[str, Any]) -> list[str]:
    return [f"region={region}" for region in params["regions"]]


def transform(partition: str, *, scale: int) -> dict[str, Any]:
    rows = 10 * (1 + len(partition) % 3)
    return {"partition": partition, "rows": rows * scale}


def publish(ti: Any) -> int:
    results = ti.xcom_pull(task_ids="transform")
    total = sum(result["rows"] for result in results)
    print(f"published {len(results)} partitions, {total} rows")
    return total
