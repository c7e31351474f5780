"""Data-quality checks, apart from Great Expectations itself: what a user writes, and what a result says.

A quality gate validates data against *expectations*, Great Expectations' own vocabulary
(``expect_column_values_to_not_be_null`` ...), so a team that already has GX suites keeps them. This
module holds the parts that do not need GX (which costs seconds and hundreds of megabytes to import,
so only a running gate loads it): reading expectations written inline (``{type, kwargs}`` or the
short form ``{expect_...: {kwargs}}``) or in a GX suite file (JSON), and turning a validation result
(GX's JSON form) into findings a decision can carry: which expectation failed, on which column, how
many values, and a few of them.

Example::

    expectations = normalize_expectations([{"expect_column_values_to_not_be_null": {"column": "id"}}])
    findings = findings_of(result_json)      # after GX validated the data
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from airflow_wfe.exceptions import SpecError

__all__ = [
    "MAX_EXAMPLES",
    "Finding",
    "Severity",
    "expectations_from_suite",
    "findings_of",
    "normalize_expectations",
]

#: Unexpected values quoted per failed expectation: enough to see the problem, never the data set.
MAX_EXAMPLES: Final = 5
#: Characters of one quoted value; longer ones are cut, so a row of free text cannot flood a reason.
_MAX_VALUE_CHARS: Final = 60
#: Expectations one gate may hold: far beyond a real suite, a bound on hostile input.
MAX_EXPECTATIONS: Final = 1_000
_MAX_SUITE_BYTES: Final = 4 * 1024 * 1024


class Severity(StrEnum):
    """What a failed check does: ``deny`` stops the run (REJECTED); ``warn`` records and goes on."""

    DENY = "deny"
    WARN = "warn"


@dataclass(frozen=True)
class Finding:
    """One expectation's verdict.

    Attributes:
        expectation: its type, e.g. ``expect_column_values_to_be_between``.
        kwargs: its arguments (column, bounds ...), as written.
        success: whether the data met it.
        unexpected: how many values did not (``None`` when GX does not count values).
        total: how many values were checked.
        examples: a few unexpected values, each cut to a readable length.
        observed: what GX observed for aggregate expectations (a mean, a row count ...).
    """

    expectation: str
    kwargs: Mapping[str, Any]
    success: bool
    unexpected: int | None = None
    total: int | None = None
    examples: tuple[str, ...] = ()
    observed: str | None = None

    @property
    def message(self) -> str:
        """``expect_x(column='a', ...): 3 of 120 values unexpected, e.g. 30, -1``."""
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k != "result_format")
        head = f"{self.expectation}({arguments})"
        if self.success:
            return f"{head}: met"
        parts = []
        if self.unexpected is not None:
            of = f" of {self.total}" if self.total is not None else ""
            parts.append(f"{self.unexpected}{of} values unexpected")
        if self.examples:
            examples = "e.g. " + ", ".join(self.examples)
            parts[-1:] = [f"{parts[-1]}, {examples}"] if parts else [examples]
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        return f"{head}: " + ("; ".join(parts) or "not met")


def normalize_expectations(
    raw: Iterable[Any], *, where: str = "expectations"
) -> list[dict[str, Any]]:
    """``[{type, kwargs}]`` from the inline forms a user writes.

    Accepts ``{"type": "expect_...", "kwargs": {...}}`` (GX's own JSON) and the short form
    ``{"expect_...": {...}}``.

    Raises:
        SpecError: an entry is neither, names no ``expect_`` type, or there are too many; the
            problem names ``where`` and the entry's index.
    """
    from airflow_wfe.core.spec.problems import Problem

    found: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, entry in enumerate(raw):
        if index >= MAX_EXPECTATIONS:
            problems.append(Problem(f"more than {MAX_EXPECTATIONS} expectations", code="too-large"))
            break
        kind, kwargs = _entry(entry)
        if kind is None or not kind.startswith("expect_") or not isinstance(kwargs, Mapping):
            problems.append(
                Problem(
                    f"{where}[{index}]: expected {{type: expect_..., kwargs: {{...}}}} or "
                    f"{{expect_...: {{...}}}}, found {entry!r:.80}",
                    code="invalid-expectation",
                )
            )
            continue
        found.append({"type": kind, "kwargs": dict(kwargs)})
    if problems:
        raise SpecError(where, problems)
    if not found:
        raise SpecError(where, [Problem("no expectations to check", code="invalid-expectation")])
    return found


def _entry(entry: Any) -> tuple[str | None, Any]:
    if not isinstance(entry, Mapping):
        return None, None
    if "type" in entry:
        extra = set(entry) - {"type", "kwargs", "meta", "id", "rendered_content", "notes"}
        if extra or not isinstance(entry["type"], str):
            return None, None
        return entry["type"], entry.get("kwargs") or {}
    if len(entry) == 1:
        ((kind, kwargs),) = entry.items()
        return (
            (kind, kwargs if kwargs is not None else {}) if isinstance(kind, str) else (None, None)
        )
    return None, None


def expectations_from_suite(path: str | Path) -> list[dict[str, Any]]:
    """The expectations of a GX suite file (the JSON GX writes: ``{name, expectations: [...]}``).

    Raises:
        SpecError: the file cannot be read, is not JSON, or holds no valid expectations; the problem
            names the file.
    """
    from airflow_wfe.core.spec.problems import Problem

    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(_MAX_SUITE_BYTES + 1)
    except OSError as exc:
        raise SpecError(file, [Problem(f"cannot read the suite: {exc.strerror or exc}")]) from None
    if len(data) > _MAX_SUITE_BYTES:
        raise SpecError(file, [Problem("the suite is larger than 4 MiB", code="too-large")])
    try:
        suite = json.loads(data)
    except ValueError as exc:
        raise SpecError(file, [Problem(f"not a JSON suite: {exc}", code="invalid-suite")]) from None
    if not isinstance(suite, Mapping) or not isinstance(suite.get("expectations"), list):
        problem = Problem('a suite is {"name": ..., "expectations": [...]}', code="invalid-suite")
        raise SpecError(file, [problem])
    return normalize_expectations(suite["expectations"], where=file)


def findings_of(result: Mapping[str, Any]) -> list[Finding]:
    """The findings of a GX suite validation result (``ExpectationSuiteValidationResult`` as JSON)."""
    findings = []
    for item in result.get("results") or ():
        config = item.get("expectation_config") or {}
        detail = item.get("result") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        examples = tuple(
            _quote(v) for v in (detail.get("partial_unexpected_list") or ())[:MAX_EXAMPLES]
        )
        observed = detail.get("observed_value")
        findings.append(
            Finding(
                expectation=str(config.get("type") or "expectation"),
                kwargs=kwargs,
                success=bool(item.get("success")),
                unexpected=_int(detail.get("unexpected_count")),
                total=_int(detail.get("element_count")),
                examples=examples,
                observed=None if observed is None else _quote(observed),
            )
        )
    return findings


def failed(findings: Sequence[Finding]) -> list[Finding]:
    """The findings whose expectation the data did not meet."""
    return [f for f in findings if not f.success]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"
