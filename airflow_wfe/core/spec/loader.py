"""Read a workflow YAML file into a :class:`~airflow_wfe.core.spec.models.WorkflowSpec`, every problem
located by file, line and key path.

``yaml.safe_load`` followed by ``model_validate`` is not enough for files people edit by hand: it
forgets where each value came from, silently keeps the last of two duplicate keys, and pydantic reports
locations with union branch names in them (``steps.a.run.constrained-str``), one error per branch. So
this module composes the YAML to nodes (which carry line marks), builds the Python data from those same
nodes while recording the line of every key, refuses duplicate and non-string keys, and translates each
pydantic error into a :class:`~airflow_wfe.core.spec.problems.Problem` at the right line, with a suggestion
for a misspelt key::

    deploy.yaml:14: steps.canary.retry.backof: unknown key (did you mean 'backoff'?)

Whatever the content, a bad file raises :class:`~airflow_wfe.exceptions.SpecError` listing every
problem found, never another exception. The content hash is taken over the validated spec, not the
text, so comments, whitespace and key order do not change it.
"""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from airflow_wfe.core.spec.models import WorkflowSpec
from airflow_wfe.core.spec.problems import KeyPath, Problem
from airflow_wfe.exceptions import SpecError

__all__ = ["MAX_SPEC_BYTES", "MAX_STEPS", "LoadedSpec", "load_spec", "parse_document", "parse_spec"]

M = TypeVar("M", bound=BaseModel)

# libyaml composes several times faster; its marks carry the same lines as the pure-Python parser's.
_YamlLoader: Final[type[yaml.SafeLoader] | type[yaml.CSafeLoader]] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
_YAML: Final = "tag:yaml.org,2002:"
_MAP_TAG: Final = _YAML + "map"
_SEQ_TAG: Final = _YAML + "seq"
_STR_TAG: Final = _YAML + "str"
_MERGE_TAG: Final = _YAML + "merge"
_VALUE_TAG: Final = _YAML + "value"  # a bare "=", plain text to anyone but a YAML spec lawyer
#: The SafeConstructor's scalar functions, called directly: its generic entry point costs more than
#: the rest of the build for a file of plain strings.
_SCALAR_TYPES: Final[dict[str, Callable[[Any, Node], Any]]] = {
    _YAML + name: yaml.SafeLoader.yaml_constructors[_YAML + name]
    for name in ("null", "bool", "int", "float", "binary", "timestamp")
}
#: What those raise besides YAMLError: ``2026-02-30``, ``!!int abc``, ``!!timestamp x``, ...
_CONSTRUCT_ERRORS: Final = (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError)
#: Aliases can make a small file expand to a huge value ("billion laughs"); validating, dumping and
#: hashing walk the expanded value, so anything far beyond a real workflow is refused.
_MAX_VALUES: Final = 100_000
#: The largest workflow file read (bytes). A real workflow is tens of kilobytes; the DAG processor
#: parses every file on every loop, so a runaway generated file is refused before it is composed.
MAX_SPEC_BYTES: Final = 4 * 1024 * 1024
#: The most steps a workflow may have: far beyond any real one (Airflow itself struggles long before),
#: and a bound on what validation may spend (its reachability sets take n²/8 bytes: 12.5 MB here).
MAX_STEPS: Final = 10_000


@dataclass(frozen=True)
class LoadedSpec:
    """A validated workflow spec and where it came from.

    Attributes:
        spec: the validated spec.
        path: the file it was read from (``Path(file)`` for text given directly).
        content_hash: sha256 hex of the spec's canonical JSON; identifies a version of the workflow
            whatever its comments, whitespace and key order.
        lines: the 1-based line of every key and list item in the document, by key path.
    """

    spec: WorkflowSpec
    path: Path
    content_hash: str
    lines: Mapping[KeyPath, int] = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, else of its deepest prefix in the document (so a problem about a
        missing key points at the mapping that lacks it)."""
        from airflow_wfe.core.spec.translate import line_of

        return line_of(self.lines, path)


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate the workflow file at ``path``.

    Raises:
        SpecError: the file cannot be read, is not YAML, or is not a valid workflow spec; carries
            every problem found.
    """
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(file, [Problem(_io_message(exc), code="unreadable", file=file)]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(file, [_too_large(file)]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = Problem("the file is not UTF-8 text", code="encoding", file=file, line=line)
        raise SpecError(file, [problem]) from None
    return parse_spec(text, file=file, path=Path(path))


def parse_spec(text: str, *, file: str = "<string>", path: Path | None = None) -> LoadedSpec:
    """Validate workflow YAML given as text; ``file`` names it in problems, ``path`` defaults to it.

    Raises:
        SpecError: the text is not YAML or not a valid workflow spec; carries every problem found.
    """
    if len(text) > MAX_SPEC_BYTES:  # characters, at most as many as the bytes
        raise SpecError(file, [_too_large(file)])
    problems, loaded = _parse_spec(text, path if path is not None else Path(file))
    if loaded is not None and not problems:
        return loaded
    last = max(1, len(text.splitlines()))
    located = {p.located(file, min(max(p.line or 1, 1), last)): None for p in problems}
    raise SpecError(file, sorted(located, key=lambda p: p.line or 0))


def parse_document(
    text: str, *, file: str, model: type[M], what: str
) -> tuple[M, str, Mapping[KeyPath, int]]:
    """Validate YAML text against any strict pydantic ``model`` (policy files use it too), with the
    same problems as workflow specs: file, line, key path, suggestions.

    Returns:
        the model, the sha256 of its canonical JSON, and the line of every key path.

    Raises:
        SpecError: naming ``file``, with every problem found.
    """
    problems, found = _parse(text, Path(file), model, what)
    if found is not None and not problems:
        return found
    last = max(1, len(text.splitlines()))
    located = {p.located(file, min(max(p.line or 1, 1), last)): None for p in problems}
    raise SpecError(file, sorted(located, key=lambda p: p.line or 0))


def _too_large(file: str) -> Problem:
    limit = f"{MAX_SPEC_BYTES // (1024 * 1024)} MiB"
    return Problem(
        f"the file is larger than {limit}, the limit for a workflow file; split the workflow",
        code="too-large",
        file=file,
        line=1,
    )


def _step_count(data: Any, lines: Mapping[KeyPath, int]) -> Problem | None:
    """Refuse a workflow with more than :data:`MAX_STEPS` steps before its models are built."""
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict) or len(steps) <= MAX_STEPS:
        return None
    return Problem(
        f"the workflow has {len(steps):,} steps; the limit is {MAX_STEPS:,}: split it into "
        "several workflows",
        path=("steps",),
        code="too-large",
        line=lines.get(("steps",), 1),
    )


def _parse_spec(text: str, path: Path) -> tuple[list[Problem], LoadedSpec | None]:
    problems, found = _parse(
        text, path, WorkflowSpec, "a workflow needs name, owner and steps", _step_count
    )
    if found is None:
        return problems, None
    spec, content_hash, lines = found
    return problems, LoadedSpec(spec, path, content_hash, lines)


def _parse(
    text: str,
    path: Path,
    model: type[M],
    what: str,
    precheck: Callable[[Any, Mapping[KeyPath, int]], Problem | None] | None = None,
) -> tuple[list[Problem], tuple[M, str, Mapping[KeyPath, int]] | None]:
    loader = None
    try:
        loader = _YamlLoader(text)  # PyYAML's reader refuses unprintable characters right here
        builder = _Builder(loader)
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and root.tag == _YAML + "null"):
            return _fail(f"the file is empty; {what}", "empty")
        if not isinstance(root, MappingNode):
            from airflow_wfe.core.spec.translate import kind_of

            found = kind_of(builder.build(root, ()))
            message = f"expected a mapping of keys ({what}), found {found}"
            return _fail(message, "not-a-mapping", _line(root))
        data = builder.build(root, ())
    except yaml.YAMLError as exc:
        return [_yaml_problem(exc, text)], None
    except UnicodeError as exc:  # libyaml is handed UTF-8, which has no lone surrogates
        line = text.count("\n", 0, getattr(exc, "start", 0)) + 1
        return _fail("the text holds a character that is not valid Unicode", "encoding", line)
    except RecursionError:
        return _fail("the document is nested too deeply", "yaml-syntax")
    finally:
        if loader is not None:
            loader.dispose()
    if builder.aliased and _expanded_size(root) > _MAX_VALUES:
        message = f"aliases expand the document to more than {_MAX_VALUES} values"
        return _fail(message, "too-large", problems=builder.problems)
    refused = precheck(data, builder.lines) if precheck is not None else None
    if refused is not None:
        return [*builder.problems, refused], None
    try:
        spec = model.model_validate(data)
        canonical = json.dumps(
            spec.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
        )
    except ValidationError as exc:
        # Only a file with errors pays for the translation module (difflib, model walking).
        from airflow_wfe.core.spec.translate import translate

        translated = translate(exc, builder.lines, builder.scalars, builder.unreadable, model)
        return builder.problems + translated, None
    except ArithmeticError as exc:  # a validator overflowed, e.g. timedelta(seconds=10**20)
        return _fail(f"a number is out of range: {exc}", "invalid-value", problems=builder.problems)
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. !!binary that is not UTF-8
        message = f"a value cannot be written as JSON: {exc}"
        return _fail(message, "invalid-value", problems=builder.problems)
    content_hash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    lines = types.MappingProxyType(builder.lines)
    return builder.problems, (spec, content_hash, lines)


def _fail(
    message: str, code: str, line: int = 1, problems: list[Problem] | None = None
) -> tuple[list[Problem], None]:
    return [*(problems or []), Problem(message, code=code, line=line)], None


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


# --- YAML nodes → Python data, with lines -----------------------------------------------------------


class _Builder:
    """Builds plain Python data from composed nodes, recording lines and key problems on the way.

    PyYAML's constructor accepts duplicate keys silently and knows no key paths, so mappings and lists
    are built here; scalars (and collections with unusual tags such as ``!!set``) go to PyYAML.
    """

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader) -> None:
        self.loader = loader
        self.lines: dict[KeyPath, int] = {}
        #: raw text of each scalar, to suggest quoting a number or boolean where a string is expected
        self.scalars: dict[KeyPath, str] = {}
        self.problems: list[Problem] = []
        #: paths whose value could not be read; pydantic errors at or under them would repeat that
        self.unreadable: list[KeyPath] = []
        self.aliased = False
        self._built: dict[int, Any] = {}
        self._active: set[int] = set()

    def add(self, msg: str, path: KeyPath, code: str, node: Node, hint: str | None = None) -> None:
        self.problems.append(Problem(msg, path, code=code, line=_line(node), suggestion=hint))

    def build(self, node: Node, path: KeyPath) -> Any:
        if path not in self.lines:
            self.lines[path] = _line(node)
        key = id(node)
        if key in self._built:  # an alias: the same node again
            self.aliased = True
            return self._built[key]
        if key in self._active:
            self.add("an alias refers to a value that contains it", path, "yaml-alias", node)
            self.unreadable.append(path)
            return None
        self._active.add(key)
        if isinstance(node, MappingNode) and node.tag == _MAP_TAG:
            value: Any = self._mapping(node, path)
        elif isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            value = [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        else:
            value = self._scalar(node, path)
        self._active.discard(key)
        self._built[key] = value
        return value

    def _construct(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            if node.tag in (_STR_TAG, _VALUE_TAG):
                return node.value
            if node.tag in _SCALAR_TYPES:
                return _SCALAR_TYPES[node.tag](self.loader, node)
        return self.loader.construct_object(node, deep=True)

    def _scalar(self, node: Node, path: KeyPath) -> Any:
        raw = node.value if isinstance(node, ScalarNode) else None
        if raw is not None:
            self.scalars[path] = raw
        try:
            return self._construct(node)
        except _CONSTRUCT_ERRORS as exc:
            shown = repr(raw) if raw is not None else "the value"
            tag = str(node.tag).removeprefix(_YAML)
            self.add(f"cannot read {shown} as {tag}: {_reason(exc)}", path, "invalid-value", node)
            self.unreadable.append(path)
            return raw

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, int] = {}
        own: list[tuple[str, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, result)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            line = _line(key_node)
            if key in first:
                message = f"duplicate key '{key}' (first at line {first[key]})"
                self.add(message, (*path, key), "duplicate-key", key_node)
            first.setdefault(key, line)
            self.lines[(*path, key)] = line
            own.append((key, value_node))
        for key, value_node in own:  # after the merged keys: a mapping's own keys override them
            result[key] = self.build(value_node, (*path, key))
        return result

    def _merge(self, node: Node, path: KeyPath, into: dict[str, Any]) -> None:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in reversed(sources):  # the first mapping listed wins
            if not (isinstance(source, MappingNode) and source.tag == _MAP_TAG):
                message = "a merge key (<<) takes a mapping or a list of mappings"
                self.add(message, path, "yaml-merge", source)
                continue
            into.update(self.build(source, path) or {})
            for key_node, _ in source.value:
                self.lines.setdefault((*path, str(key_node.value)), _line(key_node))

    def _key(self, node: Node, path: KeyPath) -> str | None:
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            self.add(f"a key must be a string, not {kind}", path, "non-string-key", node)
            return None
        raw = str(node.value)
        try:
            key = self._construct(node)
        except _CONSTRUCT_ERRORS as exc:
            message = f"cannot read key {raw!r}: {_reason(exc)}"
            self.add(message, (*path, raw), "non-string-key", node)
            return None
        if isinstance(key, str):
            return key
        if raw:
            from airflow_wfe.core.spec.translate import kind_of

            message = f"key {raw} is read as {kind_of(key)}, not a string"
            self.add(message, (*path, raw), "non-string-key", node, f'quote it: "{raw}"')
        else:
            self.add("empty key", path, "non-string-key", node)
        return None


def _reason(exc: Exception) -> str:
    return str(exc.problem) if isinstance(exc, yaml.MarkedYAMLError) else str(exc)


def _expanded_size(root: Node) -> int:
    """How many values the document holds once every alias is expanded (counted, not expanded)."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a recursive alias (already reported) counts once
        if isinstance(node, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[key] = min(total, _MAX_VALUES + 1)
        return sizes[key]

    return size(root)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (column {mark.column + 1})" if mark is not None else ""
        message = f"invalid YAML{where}: {(exc.problem or 'cannot be parsed').removeprefix('but ')}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context}, line {exc.context_mark.line + 1})"
        return Problem(message, code="yaml-syntax", line=mark.line + 1 if mark else 1)
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # libyaml counts the position in bytes, PyYAML in characters: find the character instead
        index = max(0, text.find(chr(exc.character)))
        message = f"invalid YAML: character U+{exc.character:04X} is not allowed"
        return Problem(message, code="yaml-syntax", line=text.count("\n", 0, index) + 1)
    return Problem(f"invalid YAML: {exc}", code="yaml-syntax", line=1)


def _io_message(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a workflow file"
    return f"cannot read the file: {exc.strerror or exc}"
