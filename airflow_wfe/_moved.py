"""Old import paths of 0.1, kept for one release as lazy re-exports that warn when used.

Each shim module (``airflow_wfe.gates``, ``airflow_wfe.artifacts``, ``airflow_wfe.metrics``,
``airflow_wfe.cost``) names what it re-exports and where it lives now; the CHANGELOG lists them.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved"]


def moved(old: str, targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``name`` from ``targets[name]`` with a warning."""

    def getattr_(name: str) -> Any:
        module = targets.get(name)
        if module is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} is deprecated; import it from 'airflow_wfe' (or {module})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)

    return getattr_
