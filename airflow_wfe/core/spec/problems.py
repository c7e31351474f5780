"""Problems found in a workflow file, located by file, line and key path.

The loader (schema problems) and the validator (graph problems) both report :class:`Problem`\\ s, so the
CLI, the DAG loader's import errors and the tests print them one way::

    deploy.yaml:14: steps.canary.retry.backof: unknown key (did you mean 'backoff'?)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["KeyPath", "Problem", "Severity", "format_path"]

#: Where in the document: ``("steps", "canary", "retry", "backof")``; list items are ints.
KeyPath = tuple[str | int, ...]


class Severity(StrEnum):
    """Errors make a spec unusable; warnings are worth a look but do not stop it."""

    ERROR = "error"
    WARNING = "warning"


def format_path(path: KeyPath) -> str:
    """``steps.canary.needs[0]`` for ``("steps", "canary", "needs", 0)``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One finding about a workflow file.

    Attributes:
        message: what is wrong, e.g. ``unknown key``.
        path: the key path it is about.
        severity: error or warning.
        code: a stable short name for tools, e.g. ``unknown-key``, ``cycle``.
        file: the file it was found in (``None`` for a spec built in memory).
        line: 1-based line in that file, when known.
        suggestion: a likely fix, e.g. ``did you mean 'backoff'?``.
    """

    message: str
    path: KeyPath = ()
    severity: Severity = Severity.ERROR
    code: str = "invalid"
    file: str | None = None
    line: int | None = None
    suggestion: str | None = None

    def located(self, file: str | None, line: int | None) -> Problem:
        """The same problem with its file and line filled in."""
        return replace(self, file=file, line=line)

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {format_path(self.path)}: {self.message}"
        if self.severity is Severity.WARNING:
            text = f"{where}: warning: {format_path(self.path)}: {self.message}"
        if self.suggestion:
            text += f" ({self.suggestion})"
        return text

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``--json`` outputs."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "path": format_path(self.path),
            "message": self.message,
            "suggestion": self.suggestion,
        }
