"""What a gate does, apart from Airflow's operator machinery: decide, record, move the run.

Kept out of the operator so the rules read in one place: the policy engine decides; the decision and
the run move it causes are recorded in one store transaction (store + audit) before anything else
happens; ``deny`` rejects the run; ``needs_approval`` puts it
in WAITING_APPROVAL until enough distinct people approve, never the run's triggerer when the policy
says so; an approver outside the allowed set is refused and asked again; a timeout escalates once,
then takes the policy's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from airflow_wfe.core.metrics import names
from airflow_wfe.core.policy import Approval, Decision, LoadedPolicy, Outcome, evaluate
from airflow_wfe.core.policy.engine import SEVERITY
from airflow_wfe.core.states import RunState
from airflow_wfe.exceptions import IllegalTransitionError

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import DecisionRecord
    from airflow_wfe.engine.recorder import Recorder

__all__ = ["APPROVE", "REJECT", "Answer", "GateContext", "decide", "judge_answer"]

APPROVE: Final = "Approve"
REJECT: Final = "Reject"


@dataclass(frozen=True)
class GateContext:
    """Where the gate stands: its run and step, and the recorder it writes through."""

    dag_id: str
    run_id: str
    step_id: str
    recorder: Recorder

    @property
    def actor(self) -> str:
        return f"gate:{self.step_id}"

    def record(
        self,
        *,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str | None = None,
        details: Mapping[str, Any] | None = None,
        move_to: RunState | None = None,
        reason: str | None = None,
    ) -> DecisionRecord:
        """Record a decision (or an answer) of this gate and the run's move to ``move_to`` it
        causes, in one transaction; a run already there stays (a retried gate task).

        When the run cannot make the move (e.g. it was failed by hand meanwhile), the refusal is
        audited, the decision is recorded on its own, and the gate goes on to apply it to the task:
        the decision is a fact whatever the run's state.
        """

        def write(to: RunState | None) -> DecisionRecord:
            record, _written = self.recorder.decision(
                self.dag_id,
                self.run_id,
                self.step_id,
                kind=kind,
                outcome=outcome,
                reasons=reasons,
                policies=policies,
                actor=actor or self.actor,
                details=details,
                move_to=to,
                reason=reason,
            )
            return record

        try:
            record = write(move_to)
        except IllegalTransitionError:
            record = write(None)
        return record


def decide(
    gate: GateContext, policies: Sequence[LoadedPolicy], facts: Mapping[str, Any]
) -> Decision:
    """Evaluate, record the decision, and move the run: REJECTED on deny, WAITING_APPROVAL on
    needs_approval. Raises :class:`~airflow_wfe.exceptions.PolicyError` when the policies cannot be
    evaluated (the caller fails closed)."""
    decision = evaluate(policies, facts)
    details: dict[str, Any] = {
        "facts": {k: v for k, v in facts.items() if k != "now"},
        "evaluated_at": facts.get("now"),
    }
    if decision.approval is not None:
        details["approval"] = decision.approval.__dict__
    summary = "; ".join(r.message for r in decision.reasons if r.outcome is decision.outcome)
    move_to, reason = None, None
    if decision.outcome is Outcome.DENY:
        move_to, reason = RunState.REJECTED, f"gate {gate.step_id} denied: {summary}"
    elif decision.outcome is Outcome.NEEDS_APPROVAL:
        move_to = RunState.WAITING_APPROVAL
        reason = f"gate {gate.step_id} needs approval: {summary}"
    gate.record(
        kind="policy",
        outcome=decision.outcome.value,
        reasons=decision.to_dict()["reasons"],
        policies=decision.policies,
        details=details,
        move_to=move_to,
        reason=reason,
    )
    _count(gate, decision)
    return decision


def _count(gate: GateContext, decision: Decision) -> None:
    """``wfe.gate.decision.<policy>.<outcome>``: per policy, what its own rules concluded."""
    tags = {"dag_id": gate.dag_id, "step": gate.step_id}
    for policy in decision.policies or {"none": ""}:
        mine = [r.outcome for r in decision.reasons if r.policy == policy]
        worst = max(mine or [Outcome.ALLOW], key=SEVERITY.__getitem__)
        gate.recorder.emitter.incr(names.gate_decision(policy, worst.value), tags=tags)


@dataclass(frozen=True)
class Answer:
    """What to do with one response: ``done`` (approved or rejected for good), or ask again."""

    outcome: str  # "approved", "rejected", "refused" (asked again), "pending" (more approvers)
    message: str
    approvers: tuple[str, ...] = ()


def judge_answer(
    approval: Approval,
    *,
    chosen: Sequence[str],
    responder: str | None,
    triggerer: str | None,
    approved_by: Sequence[str],
    escalated: bool,
) -> Answer:
    """Judge one person's response against the approval rule (pure)."""
    allowed = set(approval.approvers) | (set(approval.escalate_to) if escalated else set())
    who = responder or "unknown"
    if approval.exclude_triggerer and triggerer and responder == triggerer:
        return Answer("refused", f"{who} triggered this run and cannot approve it")
    if allowed and responder not in allowed:
        return Answer("refused", f"{who} is not among the approvers ({', '.join(sorted(allowed))})")
    if REJECT in chosen:
        return Answer("rejected", f"rejected by {who}")
    if responder in approved_by:
        return Answer("refused", f"{who} already approved; another person must approve")
    approvers = (*approved_by, who)
    if len(approvers) >= approval.required:
        return Answer("approved", f"approved by {', '.join(approvers)}", approvers)
    remaining = approval.required - len(approvers)
    return Answer("pending", f"approved by {who}; {remaining} more approval(s) needed", approvers)


def approval_from(details: Mapping[str, Any]) -> Approval:
    """The approval requirements recorded with a decision."""
    raw = dict(details.get("approval") or {})
    raw["approvers"] = tuple(raw.get("approvers") or ())
    raw["escalate_to"] = tuple(raw.get("escalate_to") or ())
    return Approval(**raw)
