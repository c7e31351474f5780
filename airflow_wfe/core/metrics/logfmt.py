"""Key-value log lines (logfmt) that log pipelines can index without a custom parser.

Airflow's logging (structlog underneath) keeps the message and drops a stdlib record's ``extra``
fields, so the structure has to live in the message itself: ``wfe.step.transition dag_id=etl
run_id=manual__2026-11-25 step=load from_state=RUNNING to_state=SUCCEEDED``. Loki's ``| logfmt``,
Vector's ``parse_logfmt`` and Elasticsearch's kv processor read it as fields.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["log_kv", "logfmt"]


def _value(value: Any) -> str:
    text = "" if value is None else str(value)
    if text and not any(c in text for c in ' "=\\\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def logfmt(event: str, /, **fields: Any) -> str:
    """``event key=value ...``; values with spaces, quotes or ``=`` are quoted, ``None`` is ``""``."""
    return " ".join([event, *(f"{key}={_value(value)}" for key, value in fields.items())])


def log_kv(logger: logging.Logger, level: int, event: str, /, **fields: Any) -> None:
    """Log one logfmt line, formatting it only when ``level`` is enabled."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", logfmt(event, **fields))
