"""``PolicyGateOperator``: evaluate policies before the next step; ask people when they say so.

Built on Airflow's Human-in-the-loop operator, so approvals use Airflow's own UI ("Required
actions"), REST API (``PATCH .../hitlDetails``) and, on Airflow 3.3, the task's ``awaiting_input``
state with the scheduler's timeout sweep: nothing of ours to run or to secure.

Example::

    from airflow_wfe.adapters.gates import PolicyGateOperator

    gate = PolicyGateOperator(task_id="approve_deploy", policies=["prod-changes"],
                              step={"risk": "high"}, reserve=12.0)
    build >> gate >> deploy
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

__all__ = ["PolicyGateOperator"]


class PolicyGateOperator(HITLOperator):
    """A policy gate.

    Args:
        policies: names of policies in ``[wfe] policy_path`` to evaluate (default: every policy
            there that applies to the DAG).
        inline_policies: policy documents (YAML text) evaluated as well (YAML workflows' budgets).
        step: facts about the step the gate protects (``risk``, ``target`` ...), as ``step.*``.
        facts: more facts (templated), merged over the gathered ones (e.g. ``{"metrics": ...}``).
        facts_callable: called with ``op_args``/``op_kwargs`` when the gate runs; its dict is
            merged too (the :func:`~airflow_wfe.adapters.gates.policy_gate` decorator uses it).
        reserve: the cost the next step is expected to spend, checked against budgets.
        subject: the approval request's title in Airflow's UI.

    The gate's result (XCom) is the decision: ``decision``, ``reasons``, ``policies``.
    """

    template_fields = ("subject", "body", "facts", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        policies: Sequence[str] = (),
        inline_policies: Sequence[str] = (),
        step: Mapping[str, Any] | None = None,
        facts: Mapping[str, Any] | None = None,
        facts_callable: Callable[..., Mapping[str, Any] | None] | None = None,
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        reserve: float = 0.0,
        subject: str | None = None,
        body: str | None = None,
        **kwargs: Any,
    ) -> None:
        # A policy "no" is an answer, not a transient failure: retries would only ask again.
        kwargs.setdefault("retries", 0)
        # Airflow passes the DAG's params in here too; HITL keeps only the task's own (the form).
        params = dict(kwargs.pop("params", None) or {})
        params["comment"] = Param("", type="string", title="Comment")
        super().__init__(
            subject=subject or "Approve the next step?",
            options=["Approve", "Reject"],
            body=body,
            params=params,
            **kwargs,
        )
        self.policies = tuple(policies)
        self.inline_policies = tuple(inline_policies)
        self.step = dict(step or {})
        self.facts = dict(facts or {})
        self.facts_callable = facts_callable
        self.op_args = tuple(op_args)
        self.op_kwargs = dict(op_kwargs or {})
        self.reserve = float(reserve)
        #: the author's own HITL assignees; the policy's approvers are added to them when asking
        self._assigned_by_author = list(self.assigned_users or [])

    # -- first run: decide ------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe.config import get_settings
        from airflow_wfe.core.policy import Outcome
        from airflow_wfe.exceptions import WfeError

        if not get_settings().enabled:
            self.log.info("wfe is disabled ([wfe] enabled = False): the gate lets the run through")
            return {"decision": "allow", "reasons": [], "policies": {}}
        gate = self._gate(context)
        try:
            decision = self._decide(gate, context)
        except WfeError as exc:
            self._fail_closed(gate, exc)
            raise AirflowFailException(f"policy gate failed closed: {exc}") from exc
        result = decision.to_dict()
        if decision.outcome is Outcome.ALLOW:
            self.log.info("wfe gate allowed: %s", _messages(result))
            return result
        if decision.outcome is Outcome.DENY:
            raise AirflowFailException(f"policy gate denied: {_messages(result, 'deny')}")
        self.body = self._body(result, escalated=False)
        assert decision.approval is not None
        return self._ask(context, decision.approval, escalated=False)

    def _gate(self, context: Any) -> Any:
        from airflow_wfe.engine.gate_decisions import GateContext
        from airflow_wfe.engine.harness import get_recorder

        dag_run = context["dag_run"]
        recorder = get_recorder()
        # A gate also governs a run its DAG's tags did not: it must have somewhere to record.
        recorder.run_started(
            dag_run.dag_id, dag_run.run_id, actor="worker", reason=f"gate {self.task_id} started"
        )
        return GateContext(dag_run.dag_id, dag_run.run_id, self.task_id, recorder)

    def _decide(self, gate: Any, context: Any) -> Any:
        from airflow_wfe.adapters.gates.facts import gather_facts
        from airflow_wfe.config import get_settings
        from airflow_wfe.core.policy import load_policy_set, parse_policy
        from airflow_wfe.engine.gate_decisions import decide

        policies = load_policy_set(get_settings().policy_path).select(self.policies)
        policies += [
            parse_policy(text, file=f"{self.dag_id}.{self.task_id}[{index}]")
            for index, text in enumerate(self.inline_policies)
        ]
        extra = dict(self.facts)
        if self.facts_callable is not None:
            extra.update(self.facts_callable(*self.op_args, **self.op_kwargs) or {})
        tags = sorted(getattr(self.dag, "tags", None) or ())
        facts = gather_facts(
            context,
            step_id=self.task_id,
            step=self.step,
            reserve=self.reserve,
            spent=gate.recorder.store.spent(gate.dag_id, gate.run_id, tags=tags),
            extra=extra,
        )
        return decide(gate, policies, facts)

    def _fail_closed(self, gate: Any, exc: BaseException) -> None:
        from airflow_wfe.core.states import RunState

        reason = f"policies could not be evaluated, failing closed: {exc}"
        policy = getattr(exc, "policy", None) or "-"
        rule = getattr(exc, "rule", None) or "-"
        try:
            gate.record(
                kind="policy",
                outcome="deny",
                reasons=[{"policy": policy, "rule": rule, "outcome": "deny", "message": reason}],
                policies={},
                move_to=RunState.REJECTED,
                reason=f"gate {self.task_id}: {reason}",
            )
        except Exception as second:  # noqa: BLE001 - the task fails anyway; say why we could not record
            self.log.warning("wfe gate could not record its failure: %s", second)

    # -- waiting for people -----------------------------------------------------------------

    def _ask(self, context: Any, approval: Any, *, escalated: bool) -> Any:
        """(Re)open the approval request in Airflow; parks the task in ``awaiting_input``.

        The policy's approvers and its ``escalate_to`` users become the request's assigned users,
        so Airflow itself refuses anyone else (and its UI shows whose turn it is). Airflow keeps a
        request's assignees for its whole life (asking again does not change them), so the
        escalation's users are assigned from the start; the policy refuses their answers until
        the request has escalated. Airflow calls the gate's ``notifiers`` when the request opens
        and again when it escalates. A policy naming no approvers assigns no one: any user with
        the DAG's HITL right answers.
        """
        from airflow.sdk.execution_time.hitl import HITLUser

        if approval.approvers:
            assigned = list(self._assigned_by_author)
            known = {user["id"] for user in assigned}
            people = dict.fromkeys([*approval.approvers, *approval.escalate_to])
            assigned += [HITLUser(id=p, name=p) for p in people if p not in known]
            self.assigned_users = assigned
        wait = approval.timeout_s
        if approval.escalate_after_s and not escalated:
            wait = approval.escalate_after_s
        elif escalated and approval.timeout_s and approval.escalate_after_s:
            wait = max(approval.timeout_s - approval.escalate_after_s, 1.0)
        self.response_timeout = None if wait is None else timedelta(seconds=wait)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe.adapters.gates.facts import triggering_user
        from airflow_wfe.engine.gate_decisions import approval_from, judge_answer

        gate = self._gate(context)
        policy, answers = self._history(gate)
        approval = approval_from(policy.details)
        escalated = any(a.details.get("answer") == "escalated" for a in answers)
        approved_by = [
            a.details["responder"]
            for a in answers
            if a.details.get("answer") in ("pending", "approved")
        ]
        if "error" in event:
            if event.get("error_type") != "timeout":
                raise AirflowFailException(f"approval request failed: {event.get('error')}")
            if approval.escalate_after_s and not escalated:
                to = ", ".join(approval.escalate_to)
                self._answer(gate, policy, "escalated", f"no answer in time: escalated to {to}")
                self.body = self._body({"reasons": policy.reasons}, escalated=True)
                return self._ask(context, approval, escalated=True)
            verdict = "approved" if approval.on_timeout == "approve" else "rejected"
            message = f"no answer in time: the policy's default is to {approval.on_timeout}"
            self._answer(gate, policy, verdict, message, actor="timeout")
            self._waited(gate, policy, "expired")
            return self._conclude(verdict, message)
        user = event.get("responded_by_user") or {}
        responder = str(user.get("name") or user.get("id") or "unknown")
        comment = (event.get("params_input") or {}).get("comment") or None
        answer = judge_answer(
            approval,
            chosen=list(event.get("chosen_options") or ()),
            responder=responder,
            triggerer=triggering_user(context),
            approved_by=approved_by,
            escalated=escalated,
        )
        self._answer(
            gate,
            policy,
            answer.outcome,
            answer.message,
            actor=f"user:{responder}",
            responder=responder,
            comment=comment,
            chosen=list(event.get("chosen_options") or ()),
        )
        if answer.outcome in ("refused", "pending"):
            self.log.info("wfe gate: %s; asking again", answer.message)
            return self._ask(context, approval, escalated=escalated)
        self._waited(gate, policy, answer.outcome)
        return self._conclude(answer.outcome, answer.message)

    @staticmethod
    def _waited(gate: Any, policy: Any, outcome: str) -> None:
        """``wfe.approval.wait.<outcome>``: from the gate's decision to the final answer."""
        from datetime import UTC, datetime

        from airflow_wfe.core.metrics import names

        waited_ms = (datetime.now(UTC) - policy.at).total_seconds() * 1000.0
        tags = {"dag_id": gate.dag_id, "step": gate.step_id}
        gate.recorder.emitter.timing(names.approval_wait(outcome), waited_ms, tags=tags)

    @staticmethod
    def _conclude(verdict: str, message: str) -> Any:
        """The task's outcome of a final answer (the run moved with the answer's record)."""
        from airflow.sdk.exceptions import AirflowFailException

        if verdict == "approved":
            return {"decision": "approved", "message": message}
        raise AirflowFailException(f"approval {verdict}: {message}")

    def _history(self, gate: Any) -> tuple[Any, list[Any]]:
        """The gate's last policy decision and the answers recorded since."""
        every = gate.recorder.store.decisions(gate.dag_id, gate.run_id)
        mine = [d for d in every if d.step_id == self.task_id]
        last = max(i for i, d in enumerate(mine) if d.kind == "policy")
        return mine[last], [d for d in mine[last + 1 :] if d.kind == "approval"]

    def _answer(
        self,
        gate: Any,
        policy: Any,
        answer: str,
        message: str,
        *,
        actor: str = "gate",
        responder: str | None = None,
        comment: str | None = None,
        chosen: list[str] | None = None,
    ) -> None:
        """Record one answer; a final one (approved, rejected) moves the run in the same
        transaction: RUNNING again, or REJECTED."""
        from airflow_wfe.core.states import RunState

        move_to = {"approved": RunState.RUNNING, "rejected": RunState.REJECTED}.get(answer)
        gate.record(
            kind="approval",
            outcome=answer,
            reasons=[{"message": message}],
            policies=policy.policies,
            actor=actor if actor != "gate" else gate.actor,
            details={
                "answer": answer,
                "responder": responder,
                "comment": comment,
                "chosen": chosen or [],
            },
            move_to=move_to,
            reason=None if move_to is None else f"gate {self.task_id}: {message}",
        )

    @staticmethod
    def _body(result: Mapping[str, Any], *, escalated: bool) -> str:
        lines = [
            f"- {r['message']} ({r.get('policy', '-')}/{r.get('rule', '-')})"
            for r in result.get("reasons", ())
            if r.get("outcome", "needs_approval") != "allow"
        ]
        head = "Escalated: the first approvers did not answer in time.\n\n" if escalated else ""
        return head + "This step needs approval because:\n" + "\n".join(lines)


def _messages(result: Mapping[str, Any], outcome: str | None = None) -> str:
    reasons = result.get("reasons", ())
    chosen = [r for r in reasons if outcome is None or r["outcome"] == outcome]
    return "; ".join(f"{r['message']} [{r['policy']}/{r['rule']}]" for r in chosen)
