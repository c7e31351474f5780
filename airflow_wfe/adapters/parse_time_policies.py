"""Parse-time policies: the policy files whose ``stages`` name ``parse``, evaluated on a DAG's facts.

Run by the cluster policy wherever Airflow parses a governed DAG, beside the built-in checks of
``[wfe] parse_time_checks`` (:mod:`airflow_wfe.adapters.parse_time_checks`). A rule that answers
``deny`` (or ``needs_approval``: nobody can approve a file being parsed) refuses the DAG: Airflow
shows the file's import error naming the policy, the rule and its file. A rule that cannot be
evaluated refuses too (fail closed).

Each outcome is recorded once per DAG version, not once per parse: an audit event
(``policy.decision``, stage ``parse``) keyed by a fingerprint of the DAG's facts and the policies'
versions, skipped when this process or the store already holds it. Recording never breaks parsing:
a store that cannot be reached is logged. A forked task process, which re-parses its file at every
start, evaluates nothing: the DAG processor's verdict holds (and the task's start stays cheap).

Cheap when unused: a policy folder without the word ``parse`` in a ``stages`` line costs a directory
listing and one read per file, cached by the files' sizes and modification times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from airflow_wfe.adapters.task_process import in_task_process

if TYPE_CHECKING:
    from airflow_wfe.core.policy import Decision, LoadedPolicy

__all__ = ["check_parse_policies", "dag_facts", "parse_policies"]

log = logging.getLogger("airflow_wfe.adapters.parse_time_policies")

_STAGES_LINE: Final = re.compile(r"^\s*stages\s*:.*\bparse\b", re.MULTILINE)
_SUFFIXES: Final = (".yaml", ".yml")
#: folder -> (signature of its files, the parse-stage policies)
_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], tuple[LoadedPolicy, ...]]] = {}
_RECORDED: set[str] = set()
_LOCK = threading.Lock()


def parse_policies(folder: Path) -> tuple[LoadedPolicy, ...]:
    """The valid parse-stage policies of ``folder`` (cached until a file changes).

    Raises:
        PolicyError: a file that declares the parse stage is broken (the DAG fails closed).
    """
    if not folder.is_dir():
        return ()
    entries = sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in entries)
    with _LOCK:
        cached = _CACHE.get(folder)
    if cached is not None and cached[0] == signature:
        return cached[1]
    candidates = [p for p in entries if _STAGES_LINE.search(p.read_text(encoding="utf-8-sig"))]
    found: tuple[LoadedPolicy, ...] = ()
    if candidates:
        from airflow_wfe.core.policy import load_policy_file
        from airflow_wfe.core.policy.models import Stage
        from airflow_wfe.exceptions import PolicyError, SpecError

        loaded = []
        for path in candidates:
            try:
                policy = load_policy_file(path)
            except SpecError as exc:
                raise PolicyError(
                    str(path), f"the parse-stage policy file is invalid: {exc}"
                ) from None
            if Stage.PARSE in policy.policy.stages:
                loaded.append(policy)
        found = tuple(loaded)
    with _LOCK:
        _CACHE[folder] = (signature, found)
    return found


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else 0.0


def _task_facts(task: Any, gates: set[str]) -> dict[str, Any]:
    from airflow_wfe.adapters.saga.declare import declared_compensation, has_side_effects

    declared = declared_compensation(task)
    side_effects = bool(has_side_effects(task))
    gated = False
    if side_effects and gates:
        upstream = set(task.get_flat_relative_ids(upstream=True))
        gated = bool(upstream & gates)
    return {
        "id": task.task_id,
        "owner": str(task.owner or ""),
        "retries": int(task.retries or 0),
        "execution_timeout": _seconds(task.execution_timeout),
        "side_effects": side_effects,
        "compensated": declared is not None and not getattr(declared, "irreversible", False),
        "irreversible": bool(getattr(declared, "irreversible", False)),
        "gate": task.task_id in gates,
        "gated": gated,
    }


def _is_gate(task: Any) -> bool:
    return any(cls.__name__.endswith("GateOperator") for cls in type(task).__mro__)


def dag_facts(dag: Any) -> dict[str, Any]:
    """What parse-stage rules see of a DAG: ``dag`` (plain values), plus ``run.dag_id`` and
    ``run.tags`` for ``applies_to``. Durations are seconds (0: none); saga tasks are left out."""
    from airflow_wfe.adapters.saga.tasks import is_saga_task

    tasks = [t for t in dag.tasks if not is_saga_task(t.task_id)]
    gates = {t.task_id for t in tasks if _is_gate(t)}
    schedule = getattr(dag, "timetable_summary", None) or getattr(dag, "schedule", None)
    tags = sorted(dag.tags or ())
    facts = {
        "dag_id": dag.dag_id,
        "owner": str(getattr(dag, "owner", "") or ""),
        "tags": tags,
        "schedule": None if schedule is None else str(schedule),
        "description": str(dag.description or ""),
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "tasks": [_task_facts(t, gates) for t in tasks],
    }
    return {"dag": facts, "run": {"dag_id": dag.dag_id, "tags": tags}}


def check_parse_policies(
    dag: Any, policies: tuple[LoadedPolicy, ...], *, record: bool = True
) -> tuple[list[str], Decision | None]:
    """Evaluate the parse-stage policies that apply to ``dag``: the problems (each naming the
    policy, rule and file) and the decision; recorded once per DAG version when ``record``."""
    from airflow_wfe.core.policy import Outcome, evaluate
    from airflow_wfe.exceptions import PolicyError

    facts = dag_facts(dag)
    applying = [p for p in policies if p.applies(dag.dag_id, facts["run"]["tags"])]
    if not applying:
        return [], None
    try:
        decision = evaluate(applying, {**facts, "now": datetime.now(UTC)})
    except PolicyError as exc:
        problem = f"policy could not be evaluated, failing closed: {exc}"
        if record:
            _record(dag.dag_id, facts, "deny", [{"outcome": "deny", "message": problem}], {})
        return [problem], None
    sources = {p.policy.name: p.source for p in applying}
    problems = [
        f"policy {r.policy!r} rule {r.rule!r} ({sources.get(r.policy, '?')}): {r.message}"
        for r in decision.reasons
        if r.outcome is not Outcome.ALLOW
    ]
    if record:
        outcome = "deny" if problems else "allow"
        _record(dag.dag_id, facts, outcome, decision.to_dict()["reasons"], dict(decision.policies))
    return problems, decision


def _record(
    dag_id: str,
    facts: dict[str, Any],
    outcome: str,
    reasons: list[dict[str, Any]],
    policies: dict[str, str],
) -> None:
    if in_task_process():
        return
    body = json.dumps({"facts": facts, "policies": policies}, sort_keys=True, default=str)
    fingerprint = hashlib.sha256(body.encode()).hexdigest()
    with _LOCK:
        if fingerprint in _RECORDED:
            return
    try:
        from airflow_wfe.engine.harness import get_runtime_store

        get_runtime_store().record_parse_decision(
            dag_id, fingerprint, outcome=outcome, reasons=reasons, policies=policies
        )
    except Exception as exc:  # noqa: BLE001 - recording never breaks parsing
        log.warning("wfe: could not record the parse-time decision of %s: %s", dag_id, exc)
        return
    with _LOCK:
        if len(_RECORDED) > 10_000:
            _RECORDED.clear()
        _RECORDED.add(fingerprint)
