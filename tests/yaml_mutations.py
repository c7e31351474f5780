"""Hypothesis strategies that mutate YAML documents the way people break them.

Shared by the fuzz tests of workflow specs (tests/unit/core/spec/test_loader.py) and policy files
(tests/unit/core/policy/test_policy_fuzz.py): start from a valid document, delete, rename (a typo)
or replace keys, dump it in a random layout, then damage the text (garbage tokens, truncation, a
duplicated line).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

KEY_CHARS = "abcdefghijklmnopqrstuvwxyz_"
YAML_TOKENS = [
    ":",
    ": ",
    "-",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!int ",
    "!x ",
    "|",
    ">",
    "'",
    '"',
    "%",
    "@",
    "`",
    "#",
    "?",
    "<<: ",
    "\n",
    "\n  ",
    "\t",
    "  ",
    "on",
    "yes",
    "~",
    "2026-02-30",
    "0x",
    "1e9",
    ".inf",
    "\x00",
    "\u2028",
    "\x85",
    "é",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["5m", "m:f", "a.b.C", "fixed", "2026-01-01", "", "1h30m"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
garbage = st.lists(st.sampled_from(YAML_TOKENS), min_size=1, max_size=6).map("".join) | st.text(
    min_size=1, max_size=8
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def typos(draw: st.DrawFn, word: str) -> str:
    index = draw(st.integers(0, max(0, len(word) - 1)))
    char = draw(st.sampled_from(KEY_CHARS))
    edit = draw(st.sampled_from(["delete", "insert", "replace", "swap"]))
    if edit == "delete":
        return word[:index] + word[index + 1 :]
    if edit == "insert":
        return word[:index] + char + word[index:]
    if edit == "replace":
        return word[:index] + char + word[index + 1 :]
    return word[:index] + word[index + 1 : index + 2] + word[index : index + 1] + word[index + 2 :]


@st.composite
def mutated_documents(draw: st.DrawFn, bases: list[dict[str, Any]]) -> str:
    """One of ``bases``, mutated, as YAML text."""
    data = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(data, path[:-1]), path[-1]
        edit = draw(st.sampled_from(["delete", "rename", "replace"]))
        if edit == "delete":
            del parent[key]
        elif edit == "rename" and isinstance(parent, dict):
            parent[draw(typos(str(key)))] = parent.pop(key)
        else:
            parent[key] = draw(values)
    text = yaml.safe_dump(
        data,
        sort_keys=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None, True])),
        allow_unicode=draw(st.booleans()),
    )
    for _ in range(draw(st.integers(0, 2))):
        edit = draw(st.sampled_from(["garbage", "truncate", "duplicate-line"]))
        if edit == "garbage":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(garbage) + text[at:]
        elif edit == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                at = draw(st.integers(0, len(lines) - 1))
                lines.insert(at, lines[at])
            text = "".join(lines)
    return text
