"""The Python behind ``wfe_example_yaml_release.yaml``."""

from __future__ import annotations

from typing import Any


def build(params: dict[str, Any]) -> str:
    return f"web-{params['environment']}-2026.11.25"


def release(ti: Any) -> str:
    version = ti.xcom_pull(task_ids="build")
    print(f"releasing {version}")
    return str(version)
