"""The index of ``wfe``'s top-level commands: name, one-line help and the function that adds it.

Cheap on purpose (no import beyond the standard library), for two readers that must not pay for
building the whole command tree:

- ``wfe`` itself imports only the module of the command it runs (``wfe runs list`` never imports
  the audit, artifact or policy commands);
- ``airflow wfe`` lists the commands in its help, and Airflow builds its CLI before every
  ``airflow`` command, ``airflow version`` included.

A test pins this table to what the registering functions add, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["COMMANDS", "Command", "registrar", "registrars"]


@dataclass(frozen=True)
class Command:
    """One top-level ``wfe`` command.

    Attributes:
        name: what follows ``wfe``.
        help: its line in ``wfe --help`` and ``airflow wfe --help``.
        adds: ``module:function`` that adds it (and its siblings) to the command tree.
    """

    name: str
    help: str
    adds: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "runs", "governed runs and their state histories", "airflow_wfe.cli.main:add_run_commands"
    ),
    Command(
        "compensate",
        "undo a failed run's succeeded steps through its saga tasks",
        "airflow_wfe.cli.main:add_run_commands",
    ),
    Command(
        "validate",
        "check workflow files: schema, graph, governance rules, imports",
        "airflow_wfe.cli.workflow_commands:add_workflow_commands",
    ),
    Command(
        "render",
        "draw the step graph and the state machines (Mermaid, DOT, SVG or PNG)",
        "airflow_wfe.cli.workflow_commands:add_workflow_commands",
    ),
    Command(
        "run",
        "run a workflow once, locally, through Airflow (dag.test); exit 0 if COMPLETED",
        "airflow_wfe.cli.workflow_commands:add_workflow_commands",
    ),
    Command(
        "artifacts",
        "versioned artifacts: register, activate, roll back, inspect",
        "airflow_wfe.cli.artifacts:add_artifact_commands",
    ),
    Command(
        "dora",
        "DORA metrics (lead time, frequency, MTTR, change failure rate)",
        "airflow_wfe.cli.metrics_commands:add_metrics_commands",
    ),
    Command(
        "report",
        "what to improve: slow and retried steps, failures, gates, cost",
        "airflow_wfe.cli.metrics_commands:add_metrics_commands",
    ),
    Command(
        "spool",
        "transitions waiting on this host for the store (docs/reliability.md)",
        "airflow_wfe.cli.spool:add_spool_commands",
    ),
    Command("audit", "the tamper-evident audit trail", "airflow_wfe.cli.audit:add_audit_commands"),
    Command(
        "policy", "organization policies", "airflow_wfe.cli.policy_commands:add_governance_commands"
    ),
    Command(
        "cost",
        "what DAGs spent (cost ledger) against their budgets",
        "airflow_wfe.cli.policy_commands:add_governance_commands",
    ),
    Command("db", "the state store's schema", "airflow_wfe.cli.main:add_store_commands"),
    Command(
        "demo",
        "run the example DAGs through Airflow, print their histories, serve the UI",
        "airflow_wfe.cli.main:add_store_commands",
    ),
    Command(
        "doctor",
        "check this deployment: store, signing key, policies, plugin, provider, StatsD",
        "airflow_wfe.cli.main:add_store_commands",
    ),
)


def registrar(adds: str) -> Callable[[Any], None]:
    """The function named by ``module:function`` (importing its module)."""
    module, _, function = adds.partition(":")
    found: Callable[[Any], None] = getattr(importlib.import_module(module), function)
    return found


def registrars(command: str | None = None) -> list[str]:
    """The ``module:function`` names that add ``command`` (every one, in order, for None)."""
    chosen = [c.adds for c in COMMANDS if command is None or c.name == command]
    return list(dict.fromkeys(chosen))
