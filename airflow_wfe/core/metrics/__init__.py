"""Metrics: names, emitters and DORA figures, with no Airflow in sight.

Names are in :mod:`airflow_wfe.core.metrics.names` and documented in docs/metrics.md. The process's
emitter (built from Airflow's ``[metrics]`` section) is made by :mod:`airflow_wfe.engine.harness`.
"""

from __future__ import annotations

from airflow_wfe.core.metrics.emitter import (
    Emitter,
    MetricsSettings,
    NullEmitter,
    RecordingEmitter,
    StatsdEmitter,
    build_emitter,
)

__all__ = [
    "Emitter",
    "MetricsSettings",
    "NullEmitter",
    "RecordingEmitter",
    "StatsdEmitter",
    "build_emitter",
]
