"""``CanaryGateOperator``: promote the canary, hold and look again, or roll it back.

A sensor (``mode="reschedule"`` by default, so a held canary keeps no worker slot): each check reads
samples of every metric for the canary and the baseline, and :func:`airflow_wfe.core.canary.judge`
decides. ``hold`` waits ``poke_interval`` and looks again, up to ``timeout``; then ``on_timeout``
decides. ``promote`` succeeds; ``rollback`` fails the gate for good, so the run fails and its saga
compensates what the canary deployed (declare the undo with ``compensate``). The final verdict is
recorded like a policy decision (kind ``canary``) with every metric's figures: both samples' size,
mean and median, the test, its statistic and p-value, and the thresholds.

Samples come from a function (``samples=``: returns ``{metric: {"canary": [...], "baseline":
[...]}}``), from Prometheus's HTTP API through an Airflow HTTP connection (``prometheus_conn_id=``;
each metric's ``canary_query``/``baseline_query`` is PromQL, read over ``window``), or from SQL
through an Airflow connection (``conn_id=``; each query returns one column of numbers).

Example::

    from airflow_wfe import CanaryGateOperator

    canary = CanaryGateOperator(
        task_id="canary_ok",
        prometheus_conn_id="prometheus",
        metrics=[{
            "name": "error_rate", "direction": "lower_is_better", "limit": 0.05,
            "canary_query": 'rate(http_errors_total{release="canary"}[1m])',
            "baseline_query": 'rate(http_errors_total{release="stable"}[1m])',
        }],
    )
    deploy_canary >> canary >> promote
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

__all__ = ["CanaryGateOperator"]

_METRIC_KEYS = frozenset(
    {
        "name",
        "direction",
        "limit",
        "tolerance",
        "alpha",
        "min_samples",
        "canary_query",
        "baseline_query",
    }
)


class CanaryGateOperator(BaseSensorOperator):
    """A canary analysis gate.

    Args:
        metrics: per metric ``name``, ``direction`` (``lower_is_better`` or ``higher_is_better``),
            ``limit``, ``tolerance`` (relative, default 0.1), ``alpha`` (0.05), ``min_samples``
            (30), and for Prometheus or SQL ``canary_query`` / ``baseline_query``.
        samples: a function called at each check with the task context (or, given ``op_args`` /
            ``op_kwargs``, with those: the ``@canary_gate`` decorator's way).
        prometheus_conn_id: an HTTP connection to a Prometheus server.
        conn_id: a database connection (SQL queries).
        window: how far back Prometheus samples are read.
        on_timeout: ``rollback`` (default) or ``promote`` when no verdict came within ``timeout``.
    """

    template_fields: Sequence[str] = ("metrics", "op_args", "op_kwargs")

    def __init__(
        self,
        *,
        metrics: Sequence[Mapping[str, Any]],
        samples: Callable[[Any], Mapping[str, Mapping[str, Sequence[Any]]]] | None = None,
        prometheus_conn_id: str | None = None,
        conn_id: str | None = None,
        window: timedelta = timedelta(minutes=10),
        on_timeout: str = "rollback",
        op_args: Sequence[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # A rollback is an answer about the release, not a transient failure: no retry.
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        kwargs.setdefault("timeout", 3600)
        super().__init__(**kwargs)
        task = f"canary gate {kwargs.get('task_id')!r}"
        sources = [n for n, v in (("samples", samples), ("prometheus_conn_id", prometheus_conn_id),
                                  ("conn_id", conn_id)) if v is not None]  # fmt: skip
        if len(sources) != 1:
            raise ValueError(
                f"{task}: give exactly one sample source (samples, prometheus_conn_id or conn_id);"
                f" found: {', '.join(sources) or 'none'}"
            )
        if on_timeout not in ("rollback", "promote"):
            raise ValueError(f"{task}: on_timeout is 'rollback' or 'promote', not {on_timeout!r}")
        if not metrics:
            raise ValueError(f"{task}: give at least one metric")
        for index, metric in enumerate(metrics):
            unknown = sorted(set(metric) - _METRIC_KEYS)
            if unknown or "name" not in metric:
                raise ValueError(
                    f"{task}: metrics[{index}] needs a name and takes only "
                    f"{', '.join(sorted(_METRIC_KEYS))}; unknown: {', '.join(unknown) or '-'}"
                )
            if samples is None and not metric.get("canary_query"):
                raise ValueError(f"{task}: metrics[{index}] needs canary_query for its source")
        self._definitions(metrics)  # a bad direction or threshold is an error when the DAG parses
        self.metrics = [dict(m) for m in metrics]
        self.samples = samples
        self.prometheus_conn_id = prometheus_conn_id
        self.conn_id = conn_id
        self.window = window
        self.on_timeout = on_timeout
        #: with arguments (the ``@canary_gate`` decorator), ``samples`` gets them, not the context
        self.op_args = None if op_args is None else tuple(op_args)
        self.op_kwargs = None if op_kwargs is None else dict(op_kwargs)

    @staticmethod
    def _definitions(metrics: Sequence[Mapping[str, Any]]) -> list[Any]:
        from airflow_wfe.core.canary import CanaryMetric, Direction

        return [
            CanaryMetric(
                name=str(m["name"]),
                direction=Direction(m.get("direction", Direction.LOWER.value)),
                limit=None if m.get("limit") is None else float(m["limit"]),
                tolerance=float(m.get("tolerance", 0.1)),
                alpha=float(m.get("alpha", 0.05)),
                min_samples=int(m.get("min_samples", 30)),
            )
            for m in metrics
        ]

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            message = f"no verdict within {self.timeout:.0f}s; on_timeout is {self.on_timeout}"
            self._record(context, self.on_timeout, [], extra=message)
            if self.on_timeout == "rollback":
                raise AirflowFailException(f"canary rolled back: {message}") from exc
            return {"decision": "promote", "reasons": [message]}

    def poke(self, context: Any) -> bool | PokeReturnValue:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe.core.canary import Verdict, judge, overall

        found = self._read(context)
        verdicts = []
        for definition in self._definitions(self.metrics):
            sides = found.get(definition.name) or {}
            verdicts.append(judge(definition, sides.get("canary") or (), sides.get("baseline")))
        verdict = overall(verdicts)
        self._count(context, verdict.value)
        if verdict is Verdict.HOLD:
            self.log.info("canary held: %s", "; ".join(v.message for v in verdicts))
            return False
        self._record(context, verdict.value, verdicts)
        messages = [v.message for v in verdicts]
        if verdict is Verdict.ROLLBACK:
            bad = "; ".join(v.message for v in verdicts if v.verdict is Verdict.ROLLBACK)
            raise AirflowFailException(f"canary rolled back: {bad}")
        return PokeReturnValue(True, {"decision": "promote", "reasons": messages})

    # -- samples --------------------------------------------------------------------------------

    def _read(self, context: Any) -> Mapping[str, Mapping[str, Sequence[Any]]]:
        if self.samples is not None:
            if self.op_args is not None or self.op_kwargs is not None:
                return self.samples(*(self.op_args or ()), **(self.op_kwargs or {}))
            return self.samples(context)
        read = self._prometheus if self.prometheus_conn_id is not None else self._sql
        found: dict[str, dict[str, Sequence[Any]]] = {}
        for metric in self.metrics:
            sides: dict[str, Sequence[Any]] = {"canary": read(metric["canary_query"])}
            if metric.get("baseline_query"):
                sides["baseline"] = read(metric["baseline_query"])
            found[str(metric["name"])] = sides
        return found

    def _prometheus(self, query: str) -> list[float]:
        """Every value of every series the PromQL query returns over the window."""
        import time

        import httpx
        from airflow.sdk import BaseHook

        assert self.prometheus_conn_id is not None
        connection = BaseHook.get_connection(self.prometheus_conn_id)
        scheme = connection.schema or "http"
        base = f"{scheme}://{connection.host}" + (f":{connection.port}" if connection.port else "")
        end = time.time()
        params = {
            "query": query,
            "start": f"{end - self.window.total_seconds():.3f}",
            "end": f"{end:.3f}",
            "step": f"{max(self.window.total_seconds() / 200, 1.0):.0f}s",
        }
        auth = (connection.login, connection.password or "") if connection.login else None
        response = httpx.get(f"{base}/api/v1/query_range", params=params, auth=auth, timeout=30)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"Prometheus refused {query!r}: {body.get('error', body)}")
        return [
            float(value)
            for series in body["data"]["result"]
            for _, value in series.get("values") or ()
        ]

    def _sql(self, query: str) -> list[Any]:
        """The first column of the query's rows, through the Airflow connection."""
        from airflow.sdk import BaseHook
        from sqlalchemy import create_engine, text

        from airflow_wfe.adapters.gates.connections import sqlalchemy_url

        assert self.conn_id is not None
        engine = create_engine(sqlalchemy_url(BaseHook.get_connection(self.conn_id)))
        try:
            with engine.connect() as connection:
                return [row[0] for row in connection.execute(text(query))]
        finally:
            engine.dispose()

    # -- the record -----------------------------------------------------------------------------

    def _gate(self, context: Any) -> Any:
        from airflow_wfe.engine.gate_decisions import GateContext
        from airflow_wfe.engine.harness import get_recorder

        dag_run = context["dag_run"]
        recorder = get_recorder()
        recorder.run_started(
            dag_run.dag_id, dag_run.run_id, actor="worker", reason=f"gate {self.task_id} started"
        )
        return GateContext(dag_run.dag_id, dag_run.run_id, self.task_id, recorder)

    def _count(self, context: Any, verdict: str) -> None:
        from airflow_wfe.core.metrics import names
        from airflow_wfe.engine.emitter import get_emitter

        dag_run = context["dag_run"]
        tags = {"dag_id": dag_run.dag_id, "step": self.task_id}
        get_emitter().incr(names.canary_decision(verdict), tags=tags)

    def _record(
        self, context: Any, verdict: str, verdicts: Sequence[Any], extra: str | None = None
    ) -> None:
        gate = self._gate(context)
        reasons = [
            {
                "policy": "canary",
                "rule": v.metric.name,
                "outcome": v.verdict.value,
                "message": v.message,
            }
            for v in verdicts
        ]
        if extra is not None:
            reasons.append(
                {"policy": "canary", "rule": "timeout", "outcome": verdict, "message": extra}
            )
        gate.record(
            kind="canary",
            outcome=verdict,
            reasons=reasons,
            policies={},
            details={"metrics": [v.to_dict() for v in verdicts]},
        )
