"""The exception tree's contract: each class has its own stable code and an HTTP status, all drawn
in the module docstring, so the REST layer and API clients can rely on them."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest

from airflow_wfe import exceptions
from airflow_wfe.exceptions import (
    ArtifactNotFoundError,
    BudgetExceededError,
    DagNotFoundError,
    IllegalTransitionError,
    RunNotFoundError,
    StoreUnavailableError,
    UsageError,
    WfeError,
)


def _tree(root: type[WfeError]) -> list[type[WfeError]]:
    found = [root]
    for child in root.__subclasses__():
        found.extend(_tree(child))
    return found


CLASSES = _tree(WfeError)


def test_every_class_is_exported_from_the_exceptions_module() -> None:
    assert {cls.__name__ for cls in CLASSES} == set(exceptions.__all__)
    assert all(cls.__module__ == "airflow_wfe.exceptions" for cls in CLASSES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_declares_its_own_code_and_status(cls: type[WfeError]) -> None:
    # Declared on the class itself: inheriting a parent's code would make two classes one code.
    assert "code" in vars(cls)
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code)
    assert isinstance(cls.http_status, HTTPStatus)
    assert cls.http_status in {400, 403, 404, 409, 422, 500, 503}


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in CLASSES]
    assert len(codes) == len(set(codes)), sorted(codes)


def test_the_docstring_draws_every_class_with_its_code_and_status() -> None:
    doc = exceptions.__doc__ or ""
    for cls in CLASSES:
        assert re.search(rf"\b{cls.__name__}\s+{cls.code}\s+{int(cls.http_status)}\b", doc), cls


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (UsageError("not valid JSON", argument="--conf"), "usage_error", 400),
        (RunNotFoundError("deploy", "r1"), "run_not_found", 404),
        (ArtifactNotFoundError("prompts/x"), "artifact_not_found", 404),
        (DagNotFoundError("deploy"), "dag_not_found", 404),
        (
            IllegalTransitionError("run", "deploy/r1", "RUNNING", "CREATED", []),
            "illegal_transition",
            409,
        ),
        (BudgetExceededError("budget", 12.0, 10.0, "USD"), "budget_exceeded", 422),
        (StoreUnavailableError("sqlite:///x.db", "locked"), "store_unavailable", 503),
    ],
)
def test_instances_answer_with_their_class_code(error: WfeError, code: str, status: int) -> None:
    assert (error.code, error.http_status) == (code, status)


def test_context_is_kept_as_attributes() -> None:
    usage = UsageError("must be a JSON object", argument="--conf")
    assert (usage.argument, usage.problem) == ("--conf", "must be a JSON object")
    assert str(usage) == "--conf: must be a JSON object"
    missing = DagNotFoundError("deploy")
    assert missing.dag_id == "deploy"
    assert str(missing) == "DAG 'deploy' is not in Airflow's database (is it parsed?)"
