"""``QualityGateOperator``: validate data with Great Expectations before it flows on.

The data comes from one source: an upstream task's result (a pandas DataFrame, a list of records or
a mapping of columns), a function called when the gate runs (the ``@quality_gate`` decorator), a SQL
query or table through an Airflow connection, or a CSV/Parquet file. The expectations are GX's own,
inline or from a GX suite file. The verdict is recorded like a policy decision (kind ``quality``):
``allow``; ``deny``, which rejects the run and fails the task for good; or ``warn``, which records
the failed expectations and lets the run go on. The full GX report is pushed to XCom
(``quality_report``) before the task fails, so it can be read whatever the outcome.

Example::

    from airflow_wfe import QualityGateOperator

    check = QualityGateOperator(
        task_id="orders_ok",
        data_from="extract",
        expectations=[
            {"expect_column_values_to_not_be_null": {"column": "order_id"}},
            {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}},
        ],
    )
    extract >> check >> transform
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from airflow.sdk import BaseOperator

__all__ = ["QualityGateOperator"]

#: Rows read from a SQL source or a file before the gate refuses: GX validates in memory, and a
#: gate that loads a whole warehouse table would take the worker down. Sample in the query instead.
MAX_ROWS: Final = 1_000_000


class QualityGateOperator(BaseOperator):
    """A data-quality gate.

    Args:
        expectations: GX expectations, ``{type, kwargs}`` or ``{expect_...: {kwargs}}``.
        suite: a GX suite file (JSON) whose expectations are checked too.
        data_from: the task id whose result is the data.
        data_callable: called with ``op_args``/``op_kwargs`` when the gate runs; returns the data.
        conn_id: an Airflow connection, with ``sql`` (a query) or ``table``.
        path: a CSV or Parquet file.
        severity: ``deny`` (the default: the run is rejected) or ``warn`` (recorded, the run goes on).
        max_rows: the most rows read from a SQL or file source.
    """

    template_fields: Sequence[str] = (
        "data_from",
        "suite",
        "sql",
        "table",
        "path",
        "conn_id",
        "op_args",
        "op_kwargs",
    )

    def __init__(
        self,
        *,
        expectations: Sequence[Mapping[str, Any]] = (),
        suite: str | None = None,
        data_from: str | None = None,
        data_callable: Callable[..., Any] | None = None,
        op_args: Sequence[Any] = (),
        op_kwargs: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        sql: str | None = None,
        table: str | None = None,
        path: str | None = None,
        severity: str = "deny",
        max_rows: int = MAX_ROWS,
        **kwargs: Any,
    ) -> None:
        from airflow_wfe.core.quality import Severity, normalize_expectations

        # A failed check is an answer about the data, not a transient failure: no retry.
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        task = f"quality gate {kwargs.get('task_id')!r}"
        sources = [
            name
            for name, value in (
                ("data_from", data_from),
                ("data_callable", data_callable),
                ("conn_id", conn_id),
                ("path", path),
            )
            if value is not None
        ]
        if len(sources) != 1:
            found = ", ".join(sources) or "none"
            raise ValueError(
                f"{task}: give exactly one data source (data_from, data_callable, conn_id with sql "
                f"or table, or path); found: {found}"
            )
        if conn_id is not None and (sql is None) == (table is None):
            raise ValueError(f"{task}: with conn_id, give sql or table (one of them)")
        if severity not in tuple(Severity):
            raise ValueError(f"{task}: severity is 'deny' or 'warn', not {severity!r}")
        if not expectations and suite is None:
            raise ValueError(f"{task}: give expectations, a suite file, or both")
        # Inline expectations are checked at parse time (pure, no GX): a typo is an import error.
        self.expectations = normalize_expectations(expectations) if expectations else []
        self.suite = suite
        self.data_from = data_from
        self.data_callable = data_callable
        self.op_args = tuple(op_args)
        self.op_kwargs = dict(op_kwargs or {})
        self.conn_id = conn_id
        self.sql = sql
        self.table = table
        self.path = path
        self.severity = Severity(severity)
        self.max_rows = max_rows

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_wfe.adapters.gates.expectations import validate_frame
        from airflow_wfe.config import get_settings
        from airflow_wfe.core.quality import expectations_from_suite, failed, findings_of

        if not get_settings().enabled:
            self.log.info(
                "wfe is disabled ([wfe] enabled = False): the quality gate lets data through"
            )
            return {"decision": "allow", "failed": [], "checked": 0}
        expectations = list(self.expectations)
        if self.suite is not None:
            expectations += expectations_from_suite(self.suite)
        frame, source = self._data(context)
        report = validate_frame(frame, expectations, name=f"{self.dag_id}.{self.task_id}")
        context["ti"].xcom_push(key="quality_report", value=report)
        findings = findings_of(report)
        bad = failed(findings)
        outcome = "allow" if not bad else self.severity.value
        self._record(context, outcome, findings, bad, source, len(frame), expectations)
        summary = "; ".join(f.message for f in bad)
        if outcome == "deny":
            raise AirflowFailException(f"data quality denied ({source}): {summary}")
        if outcome == "warn":
            self.log.warning("data quality warning (%s): %s", source, summary)
        return {
            "decision": outcome,
            "failed": [f.message for f in bad],
            "checked": len(findings),
            "rows": len(frame),
        }

    # -- the data -----------------------------------------------------------------------------

    def _data(self, context: Any) -> tuple[Any, str]:
        """The data as a pandas DataFrame, and a short description of where it came from."""
        import pandas as pd  # type: ignore[import-untyped]

        if self.data_from is not None:
            value = context["ti"].xcom_pull(task_ids=self.data_from)
            return _frame(value, f"result of {self.data_from}"), f"result of {self.data_from}"
        if self.data_callable is not None:
            value = self.data_callable(*self.op_args, **self.op_kwargs)
            name = getattr(self.data_callable, "__name__", "function")
            return _frame(value, f"result of {name}()"), f"result of {name}()"
        if self.path is not None:
            if self.path.lower().endswith((".parquet", ".pq")):
                frame = pd.read_parquet(self.path)
            else:
                frame = pd.read_csv(self.path, nrows=self.max_rows + 1)
            self._bounded(frame, f"file {self.path}")
            return frame, f"file {self.path}"
        return self._query()

    def _query(self) -> tuple[Any, str]:
        """Rows through the Airflow connection: its provider's hook when it has one, else the
        connection's URL through SQLAlchemy (a SQLite or PostgreSQL connection needs no provider)."""
        import pandas as pd
        from airflow.sdk import BaseHook
        from sqlalchemy import create_engine

        from airflow_wfe.adapters.gates.connections import sqlalchemy_url

        assert self.conn_id is not None
        sql = self.sql if self.sql is not None else f'SELECT * FROM "{self.table}"'
        source = f"{self.conn_id}: {self.sql or self.table}"
        engine = create_engine(sqlalchemy_url(BaseHook.get_connection(self.conn_id)))
        chunks = []
        rows = 0
        try:
            with engine.connect() as connection:
                for chunk in pd.read_sql(sql, connection, chunksize=50_000):
                    chunks.append(chunk)
                    rows += len(chunk)
                    if rows > self.max_rows:
                        break
        finally:
            engine.dispose()
        frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
        self._bounded(frame, source)
        return frame, source

    def _bounded(self, frame: Any, source: str) -> None:
        if len(frame) > self.max_rows:
            raise ValueError(
                f"{source} has more than {self.max_rows:,} rows: validate a sample (a query with "
                "LIMIT or TABLESAMPLE), or raise max_rows"
            )

    # -- the record ---------------------------------------------------------------------------

    def _record(
        self,
        context: Any,
        outcome: str,
        findings: Sequence[Any],
        bad: Sequence[Any],
        source: str,
        rows: int,
        expectations: Sequence[Mapping[str, Any]],
    ) -> None:
        from airflow_wfe.core.metrics import names
        from airflow_wfe.core.states import RunState
        from airflow_wfe.engine.gate_decisions import GateContext
        from airflow_wfe.engine.harness import get_recorder

        dag_run = context["dag_run"]
        recorder = get_recorder()
        recorder.run_started(
            dag_run.dag_id, dag_run.run_id, actor="worker", reason=f"gate {self.task_id} started"
        )
        gate = GateContext(dag_run.dag_id, dag_run.run_id, self.task_id, recorder)
        version = hashlib.sha256(
            json.dumps(list(expectations), sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        shown = bad or findings
        reasons = [
            {
                "policy": "quality",
                "version": version,
                "rule": f.expectation,
                "outcome": outcome if not f.success else "allow",
                "message": f.message,
            }
            for f in shown
        ]
        gate.record(
            kind="quality",
            outcome=outcome,
            reasons=reasons,
            policies={"quality": version},
            details={
                "source": source,
                "rows": rows,
                "checked": len(findings),
                "failed": len(bad),
                "severity": self.severity.value,
            },
            move_to=RunState.REJECTED if outcome == "deny" else None,
            reason=f"gate {self.task_id}: data quality denied: {len(bad)} expectation(s) failed"
            if outcome == "deny"
            else None,
        )
        tags = {"dag_id": gate.dag_id, "step": gate.step_id}
        recorder.emitter.incr(names.quality_decision(outcome), tags=tags)
        recorder.emitter.gauge(names.quality_failed(gate.dag_id), float(len(bad)), tags=tags)


def _frame(value: Any, what: str) -> Any:
    """A DataFrame from a task's result: a DataFrame, a list of records, or columns by name."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, list) and all(isinstance(row, Mapping) for row in value):
        return pd.DataFrame.from_records(value)
    if isinstance(value, Mapping) and all(isinstance(v, list) for v in value.values()):
        return pd.DataFrame(dict(value))
    raise TypeError(
        f"the {what} is {type(value).__name__}: a quality gate validates a pandas DataFrame, a "
        "list of records (dicts) or a mapping of column lists"
    )
