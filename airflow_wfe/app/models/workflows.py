"""Workflow files and the store's schema: ``wfe validate --json`` and ``wfe db check --json``."""

from __future__ import annotations

from pydantic import Field, RootModel

from airflow_wfe.app.models.base import ResponseModel

__all__ = ["FileValidation", "Problem", "SchemaStatus", "SchemaUpgrade", "ValidationList"]


class Problem(ResponseModel):
    """One finding about a workflow file."""

    severity: str = Field(description="error or warning")
    code: str = Field(description="stable short name for tools, e.g. unknown-key, cycle")
    file: str | None = Field(description="the file it was found in")
    line: int | None = Field(description="1-based line in that file, when known")
    path: str = Field(description="the key path it is about, e.g. steps.load.retry")
    message: str = Field(description="what is wrong")
    suggestion: str | None = Field(description="a likely fix, e.g. did you mean 'backoff'?")

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        label = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {label}{self.path}: {self.message}"
        return f"{text} ({self.suggestion})" if self.suggestion else text


class FileValidation(ResponseModel):
    """The outcome of validating one workflow file."""

    file: str = Field(description="the file as given")
    valid: bool = Field(description="no error (warnings allowed)")
    errors: int = Field(description="how many errors")
    warnings: int = Field(description="how many warnings")
    problems: list[Problem] = Field(description="every problem, in file order")


class ValidationList(RootModel[list[FileValidation]]):
    """One entry per file, in the order given (a JSON array)."""

    root: list[FileValidation]


class SchemaStatus(ResponseModel):
    """Where the state store's schema stands."""

    url: str = Field(description="the store's URL, password masked")
    revision: str | None = Field(description="its migration revision (null: empty store)")
    expected: str = Field(description="the revision this version of the package needs")
    current: bool = Field(description="revision == expected")


class SchemaUpgrade(ResponseModel):
    """What ``wfe db upgrade`` did."""

    url: str = Field(description="the store's URL, password masked")
    before: str | None = Field(description="revision before (null: empty store)")
    after: str | None = Field(description="revision after")
