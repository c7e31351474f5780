"""What ``wfe audit show|verify`` print for a person: one line per event, one verdict per source."""

from __future__ import annotations

from typing import Any

from airflow_wfe.app.models import AuditEvent, AuditStory, AuditVerification, VerifyReport

__all__ = ["describe", "render_story", "render_verification"]


def describe(event: AuditEvent) -> str:
    """One line a person can read: what happened, in the words of the event's type."""
    payload: dict[str, Any] = event.payload
    step = event.step_id
    if step is not None and event.map_index not in (None, -1):
        step = f"{step}[{event.map_index}]"
    reason = payload.get("reason")
    suffix = f": {reason}" if reason else ""
    if event.type == "run.transition":
        return f"run {payload.get('from_state') or '(new)'} -> {payload.get('to_state')}{suffix}"
    if event.type == "step.transition":
        tried = f" (try {payload['try_number']})" if payload.get("try_number") else ""
        return (
            f"step {step} {payload.get('from_state') or '(new)'} -> "
            f"{payload.get('to_state')}{tried}{suffix}"
        )
    if event.type == "transition.refused":
        return f"REFUSED {'step ' + str(step) if step else 'run'}: {payload.get('error')}"
    if event.type == "policy.decision":
        versions = ", ".join(
            f"{k.removeprefix('policy:')} {v}" for k, v in sorted(event.versions.items())
        )
        why = "; ".join(
            str(r.get("message"))
            for r in payload.get("reasons", [])
            if r.get("outcome") == payload.get("outcome")
        )
        return f"gate {step}: {str(payload.get('outcome')).upper()}: {why} (policies: {versions})"
    if event.type == "approval":
        reasons = payload.get("reasons") or [{}]
        comment = f' "{payload["comment"]}"' if payload.get("comment") else ""
        return f"approval at {step}: {payload.get('outcome')}: {reasons[0].get('message')}{comment}"
    if event.type == "cost.spent":
        detail = f" ({payload['detail']})" if payload.get("detail") else ""
        return f"cost of {step}: {payload.get('amount'):.2f} {payload.get('currency')}{detail}"
    if event.type == "policy.violation":
        return f"VIOLATION: {payload.get('detail')}"
    detail = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if v not in (None, ""))
    return f"{event.type}{' ' + str(step) if step else ''}: {detail}"


def render_story(story: AuditStory) -> str:
    """``wfe audit show``: the versions in force, then one line per event, then the hash verdict."""
    found = story.events
    versions: dict[str, Any] = {}
    for event in found:
        versions.update(event.versions)
    lines = [f"Run {story.dag_id} / {story.run_id}"]
    if versions:
        lines.append("Versions: " + ", ".join(f"{k}={v}" for k, v in sorted(versions.items())))
    lines += [f"Audit events #{found[0].seq}..#{found[-1].seq} ({len(found)} for this run)", ""]
    width = max(len(e.actor) for e in found)
    lines += [
        f"#{event.seq:<6} {event.at[:23]}Z  {event.actor:<{width}}  {describe(event)}"
        for event in found
    ]
    lines.append("")
    if story.hashes_match:
        lines.append(
            "Every event above matches its hash; `wfe audit verify` checks the whole chain."
        )
    else:
        lines.append("WARNING: some events above do not match their hash; run `wfe audit verify`.")
    return "\n".join(lines)


#: Finding kinds meaning "could not be shown to hold" (no key, a key not given) rather than broken.
_NOT_VERIFIED = frozenset({"no key", "unknown key"})


def _status(report: VerifyReport) -> str:
    if report.ok:
        return "OK" if report.signatures_checked else "OK (hashes only, signatures NOT checked)"
    if all(f.kind in _NOT_VERIFIED for f in report.findings):
        return "NOT VERIFIED"
    return "BROKEN"


def render_verification(verdict: AuditVerification) -> str:
    """``wfe audit verify``: per source, OK or BROKEN with its notes and findings."""
    lines = []
    for name, report in verdict.reports.items():
        span = f"events #{report.first_seq}..#{report.last_seq}" if report.events else "no events"
        status = _status(report)
        if name.startswith("anchors "):  # app.audit.verify's report over an anchor folder
            lines.append(f"{name}: {status}: {report.checkpoints} anchor(s)")
        else:
            lines.append(
                f"{name}: {status}: {report.events} {span}, {report.checkpoints} checkpoint(s)"
            )
        lines += [f"  note: {note}" for note in report.notes]
        lines += [f"  {finding}" for finding in report.findings]
    return "\n".join(lines)
