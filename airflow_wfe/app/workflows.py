"""Workflow files: validation (schema, graph, governance rules, imports) as response models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airflow_wfe.adapters.compile.check import check_file
from airflow_wfe.adapters.compile.folder import configured_dags_folder
from airflow_wfe.app.models.workflows import FileValidation, Problem, ValidationList

__all__ = ["validate_files"]


def validate_files(paths: Sequence[Path], *, imports: bool = True) -> ValidationList:
    """Check each workflow file; ``imports=False`` skips importing the code its steps name."""
    dags_folder = configured_dags_folder()
    results = []
    for path in paths:
        check = check_file(path, dags_folder=dags_folder, imports=imports)
        results.append(
            FileValidation(
                file=str(check.path),
                valid=not check.errors,
                errors=len(check.errors),
                warnings=len(check.warnings),
                problems=[Problem.model_validate(p.to_dict()) for p in check.problems],
            )
        )
    return ValidationList(results)
