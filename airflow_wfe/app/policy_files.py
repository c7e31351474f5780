"""What ``[wfe] policy_path`` holds: the policies that loaded and, per broken file, why not.

The policies page shows it (a gate that takes every policy fails closed while any file is
broken, so the broken ones matter as much as the loaded ones). Dry runs are
:func:`airflow_wfe.app.policies.dry_run`, chosen here by *name* only: a face that takes policy
names from a form must never let them name a file on the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from airflow_wfe.app.models.base import ResponseModel
from airflow_wfe.core.policy import LoadedPolicy, load_policy_set
from airflow_wfe.core.spec.problems import format_path
from airflow_wfe.exceptions import PolicyError, SpecError

__all__ = ["PolicyFile", "PolicyFileError", "PolicyFiles", "policy_files", "select_policies"]


class PolicyFile(ResponseModel):
    """One policy that loaded."""

    name: str = Field(description="the policy's name, as gates name it")
    version: str = Field(description="its label plus the first 12 hex digits of its content hash")
    label: str | None = Field(description="the version label the file declares, if any")
    content_hash: str = Field(description="SHA-256 of the file's content")
    file: str = Field(description="the file it was read from")
    description: str = Field(description="what the file says the policy is for")
    rules: list[str] = Field(description="the rules, as kind:id")
    dags: list[str] = Field(description="DAG id patterns it applies to")
    tags: list[str] = Field(description="DAG tags it is limited to (empty: any)")


class PolicyFileError(ResponseModel):
    """One problem of a file that did not load (a file has one or more)."""

    file: str = Field(description="the file")
    line: int | None = Field(description="1-based line, when known")
    where: str = Field(description="the key path or what was being read")
    message: str = Field(description="what is wrong")


class PolicyFiles(ResponseModel):
    """Everything under ``[wfe] policy_path``."""

    folder: str = Field(description="[wfe] policy_path")
    exists: bool = Field(description="whether the folder exists (none: no policy)")
    policies: list[PolicyFile] = Field(description="the policies that loaded, by file name")
    errors: list[PolicyFileError] = Field(description="every problem of every broken file")


def _loaded(item: LoadedPolicy) -> PolicyFile:
    policy = item.policy
    return PolicyFile(
        name=policy.name,
        version=item.version,
        label=policy.version,
        content_hash=item.content_hash,
        file=Path(item.source).name,
        description=policy.description,
        rules=[f"{rule.kind}:{rule.id}" for rule in policy.rules],
        dags=list(policy.applies_to.dags),
        tags=list(policy.applies_to.tags),
    )


def _problems(error: SpecError | PolicyError) -> list[PolicyFileError]:
    if isinstance(error, PolicyError):
        source = error.file or error.where
        return [PolicyFileError(file=Path(source).name, line=None, where="file",
                                message=error.problem)]  # fmt: skip
    found = []
    for problem in error.problems:
        where = format_path(problem.path)
        text = problem.message + (f" ({problem.suggestion})" if problem.suggestion else "")
        found.append(
            PolicyFileError(
                file=Path(problem.file or error.file or "?").name,
                line=problem.line,
                where=where,
                message=text,
            )
        )
    return found


def policy_files(folder: Path) -> PolicyFiles:
    """Load every policy file of ``folder`` on its own and report each one's result."""
    loaded = load_policy_set(folder)
    return PolicyFiles(
        folder=str(folder),
        exists=folder.is_dir(),
        policies=[_loaded(p) for p in loaded.policies],
        errors=[problem for error in loaded.broken for problem in _problems(error)],
    )


def select_policies(folder: Path, names: Sequence[str]) -> list[LoadedPolicy]:
    """The policies of ``folder`` named (every one with no name), as a gate would take them.

    Raises:
        PolicyError: a name is not a loaded policy, or every policy is asked for while a file is
            broken (the gate would fail closed the same way).
    """
    return load_policy_set(folder).select(names)
