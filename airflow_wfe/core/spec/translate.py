"""From pydantic's validation errors to problems a person reads, each at its line.

Pydantic reports a location path through models, dict keys and union branches; this module walks the
spec models along that path to name the right key, suggests the nearest allowed key for a typo,
collapses the per-branch errors of a union into one "expected X or Y" problem, and words constraint
failures (patterns, choices) in plain language. The loader hands it the line of every key path.
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from airflow_wfe.core.spec.models import CALLABLE_PATH, CLASS_PATH, DAG_ID, IDENTIFIER, WorkflowSpec
from airflow_wfe.core.spec.problems import KeyPath, Problem

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["kind_of", "line_of", "translate"]

_PATTERNS: Final = {
    CALLABLE_PATH: '"module:function"',
    CLASS_PATH: 'a dotted class path like "package.module.Class"',
    IDENTIFIER: "an identifier (a letter, then letters, digits or _)",
    DAG_ID: "a DAG id (letters, digits, _ . -)",
}
_CHOICES: Final = re.compile(r"^\^\(([\w|]+)\)\$$")
_NOUNS: Final = {
    "dictionary": "mapping",
    "tuple": "list",
    "timedelta": "duration like 30s or 1h30m",
}


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


@dataclass(frozen=True)
class _Branch:
    """A union an error's location passed through: where it is, which branch, and all branches."""

    path: KeyPath
    tag: str
    members: tuple[Any, ...]


@dataclass(frozen=True)
class _Error:
    detail: ErrorDetails
    path: KeyPath  # pydantic's loc without union branch tags
    branches: tuple[_Branch, ...]
    holder: type[BaseModel] | None  # the model whose key ``path`` ends with
    about_key: bool  # the error is about a mapping key (pydantic's ``[key]``)


@dataclass(frozen=True)
class _Misfit:
    """A value that fits none of a union's branches."""

    branch: _Branch
    found: Any


def translate(
    exc: ValidationError,
    lines: Mapping[KeyPath, int],
    scalars: Mapping[KeyPath, str],
    unreadable: Iterable[KeyPath],
    root: type[BaseModel] = WorkflowSpec,
) -> list[Problem]:
    """Every pydantic error of a spec (or of another strict ``root`` model: policy files) as one
    readable :class:`Problem`, with its line."""
    skipped = list(unreadable)
    errors = [_locate(detail, root) for detail in exc.errors(include_url=False)]
    errors = [e for e in errors if not any(e.path[: len(u)] == u for u in skipped)]
    items = _collapse(errors, 0)
    # a misspelt required key is one mistake: the unknown-key problem already names the right key
    misspelt = {
        (*e.path[:-1], _closest(e))
        for e in items
        if isinstance(e, _Error) and e.detail["type"] == "extra_forbidden" and e.path
    }
    return [
        _problem(e, lines, scalars)
        for e in items
        if not (isinstance(e, _Error) and e.detail["type"] == "missing" and e.path in misspelt)
    ]


def _closest(error: _Error) -> str | None:
    """The allowed key of the same model closest to an unknown key, if any is close."""
    allowed = list(_fields(error.holder)) if error.holder is not None else []
    close = difflib.get_close_matches(str(error.path[-1]), allowed, n=1)
    return close[0] if close else None


def _locate(detail: ErrorDetails, root: type[BaseModel] = WorkflowSpec) -> _Error:
    """Walk the models along the error's loc, dropping union branch tags and noting each key's model."""
    annotation: Any = root
    path: list[str | int] = []
    branches: list[_Branch] = []
    holder: type[BaseModel] | None = None
    about_key = False
    for segment in detail["loc"]:
        annotation = _unwrap(annotation)
        members = _union_members(annotation)
        if len(members) > 1:  # pydantic names the branch it tried: not a key of the document
            branches.append(_Branch(tuple(path), str(segment), members))
            annotation = _branch(members, str(segment))
            continue
        if segment == "[key]":
            about_key = True
            continue
        path.append(segment)
        holder = annotation if _is_model(annotation) else None
        args = get_args(annotation)
        if holder is not None:
            info = _fields(holder).get(str(segment))
            annotation = info.annotation if info is not None else Any
        elif get_origin(annotation) is dict and len(args) == 2:
            annotation = args[1]
        elif get_origin(annotation) in (tuple, list) and args:
            annotation = args[0]
        else:
            annotation = Any
    return _Error(detail, tuple(path), tuple(branches), holder, about_key)


def _collapse(errors: list[_Error], depth: int) -> list[_Error | _Misfit]:
    """Of each union, keep only the branches the value was meant for (a mapping for a model, a string
    for a string); a value that fits no branch becomes one problem for the whole union."""
    out: list[_Error | _Misfit] = [e for e in errors if len(e.branches) <= depth]
    groups: dict[KeyPath, list[_Error]] = {}
    for error in errors:
        if len(error.branches) > depth:
            groups.setdefault(error.branches[depth].path, []).append(error)
    for group in groups.values():
        fitting = {e.branches[depth].tag for e in group if not _misfits(e, depth)}
        if fitting:
            out += _collapse([e for e in group if e.branches[depth].tag in fitting], depth + 1)
        else:
            out.append(_Misfit(group[0].branches[depth], group[0].detail["input"]))
    return out


def _misfits(error: _Error, depth: int) -> bool:
    kind = error.detail["type"]
    wrong_type = kind.endswith(("_type", "_parsing")) or kind == "is_instance_of"
    return wrong_type and error.path == error.branches[depth].path


def _problem(
    item: _Error | _Misfit, lines: Mapping[KeyPath, int], scalars: Mapping[KeyPath, str]
) -> Problem:
    if isinstance(item, _Misfit):
        path = item.branch.path
        expected = " or ".join(dict.fromkeys(_describe(m) for m in item.branch.members))
        message = f"expected {expected}, got {_found(item.found)}"
        return Problem(message, path, code="invalid-value", line=line_of(lines, path))
    detail, path = item.detail, item.path
    line = line_of(lines, path)
    if detail["type"] == "extra_forbidden" and path:
        close = _closest(item)
        hint = f"did you mean '{close}'?" if close else None
        return Problem("unknown key", path, code="unknown-key", line=line, suggestion=hint)
    if detail["type"] == "missing" and path:
        message = f"missing required key '{path[-1]}'"
        return Problem(message, path, code="missing-key", line=line)
    message, hint = _readable(detail, scalars.get(path))
    if item.about_key and path:
        message = f"invalid key: {message}"
    return Problem(message, path, code="invalid-value", line=line, suggestion=hint)


def _readable(detail: ErrorDetails, raw: str | None) -> tuple[str, str | None]:
    kind, found, msg = detail["type"], detail["input"], detail["msg"]
    ctx = detail.get("ctx") or {}
    if kind in {"value_error", "assertion_error"}:
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, "), None
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        choices = _CHOICES.match(pattern)
        expected = (
            "one of " + ", ".join(choices.group(1).split("|"))
            if choices
            else _PATTERNS.get(pattern, f"text matching {pattern}")
        )
        return f"expected {expected}, got {_found(found)}", None
    if kind == "enum":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected")))
        close = difflib.get_close_matches(str(found), options, n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        return f"expected {ctx.get('expected')}, got {_found(found)}", hint
    if kind in {"model_type", "dict_type"}:
        return f"expected a mapping, got {_found(found)}", None
    valid = re.match(r"Input should be a valid (\w+)(.*)", msg)
    if valid:
        noun = _NOUNS.get(valid.group(1), valid.group(1))
        msg = f"expected {'an' if noun[0] in 'aeiou' else 'a'} {noun}{valid.group(2)}"
    msg = msg.replace("Input should be", "should be").replace(" after validation", "")
    msg = msg.replace("Dictionary should", "Mapping should")
    if valid or not isinstance(found, dict | list | tuple):  # "got a mapping" says nothing new
        msg += f", got {_found(found)}"
    hint = None
    if kind == "string_type" and raw is not None:  # a YAML number, boolean or date
        hint = f'quote it: "{raw}"'
    return msg, hint


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {type(None): "null", str: "a string", list: "a list", dict: "a mapping"}
    return "a date" if isinstance(value, date) else names.get(type(value), type(value).__name__)


def _found(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float | date):
        return str(value)
    return kind_of(value)


def _describe(member: Any) -> str:
    """How a union branch reads in a message: ``"module:function"``, ``{operator: ..., args: ...}``."""
    base, *metadata = get_args(member) if get_origin(member) is Annotated else (member,)
    if _is_model(base):
        return "{" + ", ".join(f"{key}: ..." for key in _fields(base)) + "}"
    for info in metadata:  # Field(pattern=...) keeps the pattern in its own metadata
        for meta in getattr(info, "metadata", ()):
            if getattr(meta, "pattern", None) in _PATTERNS:
                return _PATTERNS[meta.pattern]
    origin = get_origin(base) or base
    names: dict[Any, str] = {tuple: "a list", list: "a list", dict: "a mapping", str: "a string"}
    names |= {bool: "true or false", int: "an integer", float: "a number"}
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None``: neither adds a segment to pydantic's loc."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        members = _union_members(annotation)
        if len(members) != 1 or members[0] is annotation:
            return annotation
        annotation = members[0]


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def _branch(members: tuple[Any, ...], tag: str) -> Any:
    """The union member a pydantic branch tag (``OperatorSpec``, ``constrained-str``, or the
    ``Tag`` of a discriminated union) stands for."""
    for member in members:
        if get_origin(member) is Annotated:
            inner, *metadata = get_args(member)
            if any(isinstance(m, Tag) and m.tag == tag for m in metadata):
                return inner
    models = [m for m in members if _is_model(m) and m.__name__ == tag]
    # the models here have at most one plain branch per union, so no need to decode other tags
    others = [m for m in members if not _is_model(m)]
    return (models or others or [Any])[0]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@cache
def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key written in YAML (the alias, e.g. ``from``)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}
