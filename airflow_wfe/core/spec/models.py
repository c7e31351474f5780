"""The workflow spec: what a YAML workflow file may say, as strict pydantic models.

Strict on purpose: every model forbids unknown keys (a typo must be an error, not a silently ignored
setting) and is frozen (a spec is a value; its content hash identifies a version). Cross-field rules
that need the whole workflow (cycles, unknown ``needs``) live in :mod:`airflow_wfe.core.spec.validate`, so a
model error always points at one key. The JSON Schema for editors is generated from these models and
committed as ``workflow.schema.json``; a test keeps the two in sync.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from airflow_wfe.durations import DURATION_HINT, parse_duration_text

__all__ = [
    "CALLABLE_PATH",
    "CLASS_PATH",
    "DAG_ID",
    "IDENTIFIER",
    "Backoff",
    "Budget",
    "CanaryMetricSpec",
    "CanarySpec",
    "CostSpec",
    "Duration",
    "ForEachFrom",
    "GateSpec",
    "OperatorSpec",
    "PositiveDuration",
    "QualitySpec",
    "RetrySpec",
    "StepDefaults",
    "StepSpec",
    "TimeoutOutcome",
    "WavesSpec",
    "WorkflowSpec",
    "parse_duration",
    "workflow_json_schema",
]

IDENTIFIER: Final = r"^[A-Za-z][A-Za-z0-9_]*$"
DAG_ID: Final = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
CALLABLE_PATH: Final = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
CLASS_PATH: Final = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$"


def parse_duration(value: Any) -> Any:
    """Read ``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"2w"`` (or a timedelta) as a
    timedelta: the one syntax of :func:`airflow_wfe.config.parse_duration_text`, shared by every
    key, flag and option.

    Anything else is handed on unchanged, so pydantic reports it with the key's location.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a duration is 0 or more seconds")
        try:
            return timedelta(seconds=value)
        except (OverflowError, ValueError):
            raise ValueError(f"{value!r} seconds is out of range for a duration") from None
    if isinstance(value, str):
        return parse_duration_text(value)
    return value


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


#: A duration (0 or more) written as ``30s``, ``5m``, ``1h30m``, ``2d`` or a number of seconds.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?$",
                },
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration: 30s, 5m, 1h30m, 2d, or a number of seconds",
        }
    ),
]
#: A duration longer than zero, for timeouts.
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(StrEnum):
    """How the delay grows between retries."""

    FIXED = "fixed"
    EXPONENTIAL = "exponential"


class RetrySpec(_Strict):
    """How a step is retried; maps onto Airflow's retries, backoff, max delay and retry policy."""

    max_attempts: int = Field(default=1, ge=1, le=100, description="total tries, 1 = no retry")
    backoff: Backoff = Field(default=Backoff.EXPONENTIAL, description="fixed or exponential delay")
    multiplier: float = Field(
        default=2.0, gt=1, le=100, description="growth per retry (exponential)"
    )
    initial_delay: Duration = Field(
        default=timedelta(seconds=10), description="delay before retry 1"
    )
    max_delay: Duration | None = Field(default=None, description="upper bound of any retry delay")
    non_retryable: tuple[str, ...] = Field(
        default=(),
        description="exception types (builtin name or dotted path) that fail at once, no retry",
    )

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetrySpec:
        if self.max_delay is not None and self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be shorter than initial_delay")
        return self


class OperatorSpec(_Strict):
    """An Airflow operator by class path, with its constructor arguments."""

    operator: str = Field(
        pattern=CLASS_PATH,
        description="e.g. airflow.providers.standard.operators.bash.BashOperator",
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the operator"
    )


class ForEachFrom(_Strict):
    """Fan out over the list a previous step returned (its XCom)."""

    from_step: str = Field(
        alias="from", pattern=IDENTIFIER, description="the step whose result is the list"
    )


class TimeoutOutcome(StrEnum):
    """What a gate decides when nobody answered in time."""

    REJECT = "reject"
    APPROVE = "approve"


class GateSpec(_Strict):
    """A policy gate evaluated before the step runs (policies arrive with the policy engine)."""

    policies: tuple[str, ...] = Field(default=(), description="policy ids to evaluate")
    approval: bool = Field(default=False, description="require a human approval")
    timeout: PositiveDuration | None = Field(default=None, description="how long the gate may wait")
    on_timeout: TimeoutOutcome = Field(default=TimeoutOutcome.REJECT)


class CanaryMetricSpec(_Strict):
    """One metric a canary is judged by (see :class:`airflow_wfe.core.canary.CanaryMetric`)."""

    name: str = Field(min_length=1, description="what decisions call it, e.g. error_rate")
    direction: Literal["lower_is_better", "higher_is_better"] = "lower_is_better"
    limit: float | None = Field(default=None, description="the worst acceptable canary mean")
    tolerance: float = Field(default=0.1, ge=0, description="relative worsening tolerated")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="the test's significance level")
    min_samples: int = Field(default=30, ge=1, description="samples needed on each side")
    canary_query: str | None = Field(default=None, description="PromQL or SQL for the canary")
    baseline_query: str | None = Field(default=None, description="PromQL or SQL for the baseline")


class CanarySpec(_Strict):
    """Canary analysis after the step (which deployed the canary): promote, hold or roll back."""

    metrics: tuple[CanaryMetricSpec, ...] = Field(min_length=1)
    samples: Annotated[str, Field(pattern=CALLABLE_PATH)] | None = Field(
        default=None, description='"module:function" returning {metric: {canary, baseline}}'
    )
    prometheus_conn_id: str | None = Field(default=None, description="an HTTP connection")
    conn_id: str | None = Field(default=None, description="a database connection (SQL)")
    window: PositiveDuration = Field(
        default=timedelta(minutes=10), description="how far back Prometheus is read"
    )
    check_every: PositiveDuration = Field(
        default=timedelta(minutes=1), description="how long a hold waits before looking again"
    )
    max_wait: PositiveDuration = Field(
        default=timedelta(hours=1), description="how long the canary may be held"
    )
    on_timeout: Literal["rollback", "promote"] = "rollback"

    @model_validator(mode="after")
    def _one_source(self) -> CanarySpec:
        given = [n for n in ("samples", "prometheus_conn_id", "conn_id") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of samples, prometheus_conn_id or conn_id; found: "
                + (", ".join(given) or "none")
            )
        if self.samples is None and any(m.canary_query is None for m in self.metrics):
            raise ValueError("every metric needs canary_query with prometheus_conn_id or conn_id")
        return self


class WavesSpec(_Strict):
    """Run the step once per target, in blast-radius waves, with a check after each wave."""

    targets: tuple[str, ...] = Field(min_length=1, description="where the step is rolled out")
    sizes: tuple[str | int, ...] = Field(
        default=("1%", "10%", "50%", "100%"),
        description='cumulative share ("10%") or count of targets reached after each wave',
    )
    max_failed: float = Field(
        default=0.0, ge=0, lt=1, description="share of a wave's targets that may fail"
    )

    @model_validator(mode="after")
    def _plan(self) -> WavesSpec:
        from airflow_wfe.core.waves import plan_waves

        plan_waves(list(self.targets), list(self.sizes))  # its ValueError names the wave
        return self


class QualitySpec(_Strict):
    """Great Expectations checks on the step's result, before any step that needs it runs."""

    expectations: tuple[dict[str, Any], ...] = Field(
        default=(),
        description="GX expectations: {expect_...: {kwargs}} or {type: expect_..., kwargs: {...}}",
    )
    suite: str | None = Field(
        default=None, description="a GX suite file (JSON), relative to the workflow file"
    )
    severity: Literal["deny", "warn"] = Field(
        default="deny", description="deny rejects the run; warn records and goes on"
    )

    @model_validator(mode="after")
    def _checks(self) -> QualitySpec:
        from airflow_wfe.core.quality import normalize_expectations
        from airflow_wfe.exceptions import SpecError

        if not self.expectations and self.suite is None:
            raise ValueError("give expectations, a suite file, or both")
        if self.expectations:
            try:
                normalize_expectations(self.expectations)
            except SpecError as exc:
                raise ValueError("; ".join(p.message for p in exc.problems)) from None
        return self


class CostSpec(_Strict):
    """What running the step costs, for budgets (the ledger arrives with the policy engine)."""

    fixed: float | None = Field(default=None, ge=0, description="a fixed cost per run of the step")
    per_second: float | None = Field(default=None, ge=0, description="a rate times the duration")
    reserve: float | None = Field(default=None, ge=0, description="cost reserved before it runs")


class Budget(_Strict):
    """Spending limits of the workflow."""

    currency: str = Field(default="USD", min_length=3, max_length=3)
    per_run: float | None = Field(default=None, ge=0)
    per_day: float | None = Field(default=None, ge=0)
    per_month: float | None = Field(default=None, ge=0)


class StepDefaults(_Strict):
    """Settings every step inherits unless it sets its own."""

    retry: RetrySpec | None = None
    timeout: PositiveDuration | None = None
    pool: str | None = None


class StepSpec(_Strict):
    """One step of a workflow: what runs, after what, and how it fails."""

    run: Annotated[str, Field(pattern=CALLABLE_PATH)] | OperatorSpec = Field(
        description='"module:function", or {operator: class.path, args: {...}}'
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the function"
    )
    description: str = ""
    needs: tuple[Annotated[str, Field(pattern=IDENTIFIER)], ...] = Field(
        default=(), description="steps that must succeed first"
    )
    retry: RetrySpec | None = None
    timeout: PositiveDuration | None = Field(
        default=None, description="execution timeout of one try"
    )
    compensate: Annotated[str, Field(pattern=CALLABLE_PATH)] | OperatorSpec | None = Field(
        default=None, description="what undoes the step when the run fails"
    )
    irreversible: bool = Field(default=False, description="the step cannot be undone")
    side_effects: bool = Field(default=False, description="the step changes the outside world")
    gate: GateSpec | None = None
    waves: WavesSpec | None = Field(
        default=None, description="roll the step out to targets in waves (blast radius)"
    )
    canary: CanarySpec | None = Field(
        default=None, description="canary analysis after the step: promote, hold or roll back"
    )
    quality: QualitySpec | None = Field(
        default=None, description="data-quality checks on the step's result (Great Expectations)"
    )
    cost: CostSpec | None = None
    for_each: tuple[Any, ...] | ForEachFrom | None = Field(
        default=None, description="fan out: a list, or {from: step} for a previous step's result"
    )
    max_parallel: int | None = Field(default=None, ge=1, description="fan-out concurrency")
    pool: str | None = None
    pool_slots: int | None = Field(default=None, ge=1)

    @field_validator("needs")
    @classmethod
    def _unique_needs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({n for n in value if value.count(n) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> StepSpec:
        if isinstance(self.for_each, tuple) and not self.for_each:
            raise ValueError("for_each needs at least one element (an empty fan-out runs nothing)")
        if self.max_parallel is not None and self.for_each is None:
            raise ValueError("max_parallel needs for_each (it limits a fan-out)")
        if self.irreversible and self.compensate is not None:
            raise ValueError("an irreversible step cannot also declare compensate")
        if self.waves is not None and (
            isinstance(self.run, OperatorSpec)
            or self.for_each is not None
            or isinstance(self.compensate, OperatorSpec)
        ):
            raise ValueError(
                'waves needs run: "module:function" (called once per target), no for_each, and '
                'compensate as "module:function" if any'
            )
        if isinstance(self.run, OperatorSpec) and self.args:
            raise ValueError("args belongs inside run: {operator: ..., args: ...} for an operator")
        return self


class WorkflowSpec(_Strict):
    """A whole workflow file; ``name`` becomes the Airflow DAG id."""

    name: str = Field(pattern=DAG_ID, max_length=200, description="the DAG id")
    version: str = Field(min_length=1, max_length=64, description="your version of this workflow")
    owner: str = Field(min_length=1, description="team or person accountable for it")
    description: str = ""
    schedule: str | None = Field(default=None, description='cron, preset like "@daily", or null')
    start_date: date | None = None
    catchup: bool = False
    tags: tuple[str, ...] = ()
    timeout: PositiveDuration | None = Field(
        default=None, description="whole-run timeout (dagrun_timeout)"
    )
    max_active_tasks: int | None = Field(default=None, ge=1)
    max_active_runs: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict, description="run parameters and defaults")
    policies: tuple[str, ...] = Field(default=(), description="organization policies that apply")
    budget: Budget | None = None
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    steps: dict[Annotated[str, Field(pattern=IDENTIFIER)], StepSpec] = Field(min_length=1)

    def step_retry(self, step_id: str) -> RetrySpec:
        """The retry settings a step runs with (its own, else the workflow default, else none)."""
        return self.steps[step_id].retry or self.defaults.retry or RetrySpec()

    def step_timeout(self, step_id: str) -> timedelta | None:
        """The execution timeout a step runs with."""
        return self.steps[step_id].timeout or self.defaults.timeout


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file, for editors (committed as ``workflow.schema.json``)."""
    schema = WorkflowSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://airflow-wfe.invalid/schemas/workflow.schema.json",
        "title": "airflow-wfe workflow",
        **schema,
    }
