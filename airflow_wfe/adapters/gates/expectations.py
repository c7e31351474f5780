"""Great Expectations 1.x, used the way a gate needs it: one ephemeral context, a DataFrame, a suite.

GX is an optional dependency (``pip install 'airflow-wfe[quality]'``) that costs seconds and hundreds of
megabytes to import, so it is imported here only, inside :func:`validate_frame`, when a quality gate
runs: never at DAG parse. No GX project directory, no stores, no data docs: the gate records its own
decision, and the full GX report goes to XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_wfe.exceptions import MissingExtraError, SpecError

__all__ = ["validate_frame"]

_EXTRA = "quality"


def validate_frame(
    frame: Any, expectations: Sequence[Mapping[str, Any]], *, name: str
) -> dict[str, Any]:
    """Validate a pandas DataFrame; GX's ``ExpectationSuiteValidationResult`` as JSON.

    Raises:
        MissingExtraError: Great Expectations is not installed (names the extra to install).
        SpecError: an expectation GX does not know, or arguments it refuses (names which).
    """
    try:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )
    except ImportError as exc:
        raise MissingExtraError("quality gate", _EXTRA, str(exc)) from None

    # GX builds expectations only inside an active context; an ephemeral one keeps nothing on disk.
    context = gx.get_context(mode="ephemeral")
    # Progress bars would write to the task log on every metric; the decision says what matters.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=name)
    for index, entry in enumerate(expectations):
        try:
            configuration = ExpectationConfiguration(
                type=entry["type"], kwargs=dict(entry["kwargs"])
            )
            suite.add_expectation(configuration.to_domain_obj())
        except Exception as exc:  # noqa: BLE001 - GX raises many kinds for a bad expectation
            from airflow_wfe.core.spec.problems import Problem

            problem = Problem(
                f"expectations[{index}] {entry['type']}: GX refuses it: {exc}",
                code="invalid-expectation",
            )
            raise SpecError(name, [problem]) from None
    batch_definition = (
        context.data_sources.add_pandas("wfe")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="SUMMARY")
    report: dict[str, Any] = result.to_json_dict()  # type: ignore[no-untyped-call]
    return report
