"""How ``wfe`` commands print: ``-o table|json|yaml|plain`` in Airflow's style, and ``--help`` text.

The formats mean what they mean in Airflow's own CLI (``airflow dags list -o ...``):

- ``table`` (the default): for a list, a table drawn like Airflow's (rich, ASCII double-line header,
  200 columns wide when the output is not a terminal so a pipe gets whole lines); for one object
  (``runs show``, ``report``), the text written for a person;
- ``plain``: for a list, aligned columns under a header and nothing else, for ``grep``/``awk``; for
  one object, the same text as ``table``;
- ``json`` and ``yaml``: the response model, serialized the same way the REST API serializes it.

``--json`` stays as an alias of ``-o json``. Handlers call :func:`emit` with the model and the
views; sibling command modules use :func:`add_output_option` and :func:`add_command` the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from airflow_wfe.cli.text import print_json

if TYPE_CHECKING:
    from airflow_wfe.app.models import JsonModel

__all__ = [
    "EXIT_CODES",
    "FORMATS",
    "Rows",
    "add_command",
    "add_output_option",
    "emit",
    "examples_epilog",
    "plain_table",
    "print_table",
]

#: The ``-o`` choices, in Airflow's order.
FORMATS: Final = ("table", "json", "yaml", "plain")

#: The exit codes every ``wfe`` command keeps (shown in ``wfe --help`` and docs/cli.md).
EXIT_CODES: Final = (
    "exit codes:\n"
    "  0    done; for checks (validate, audit verify, db check, doctor): all good\n"
    "  1    a finding or a failure: invalid spec, broken chain, run not COMPLETED, run or store\n"
    "       not found, store unreachable (one line on stderr; --debug adds the traceback)\n"
    "  2    usage error: unknown command or option, bad value\n"
    "  130  interrupted (Ctrl-C)\n"
    "  141  the reader of the output went away (`wfe ... | head`), quietly"
)

#: A list view: column names, then one row of cells per item.
Rows = tuple[Sequence[str], Sequence[Sequence[object]]]

#: Width of a table written to a pipe or file (Airflow's AirflowConsole uses the same).
_PIPE_WIDTH: Final = 200


def examples_epilog(examples: Iterable[str], *, extra: str = "") -> str:
    """An ``examples:`` block for a command's ``--help`` (kept as written: one per line)."""
    lines = ["examples:", *(f"  {example}" for example in examples)]
    return "\n".join(lines) + (f"\n\n{extra}" if extra else "")


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    examples: Sequence[str],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with examples, printed as written."""
    return commands.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=examples_epilog(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_output_option(parser: argparse.ArgumentParser, *, default: str = "table") -> None:
    """``-o/--output {table,json,yaml,plain}`` and ``--json`` (the same as ``-o json``)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=default,
        help=f"output format (default: {default}); json and yaml print the whole model",
    )
    parser.add_argument(
        "--json", dest="output", action="store_const", const="json", help="same as -o json"
    )


def _data(model: JsonModel) -> Any:
    return model.model_dump(mode="json")


def emit(
    output: str,
    model: JsonModel,
    *,
    text: Callable[[], str] | None = None,
    rows: Callable[[], Rows] | None = None,
    empty: str = "No data found",
) -> None:
    """Print ``model`` in the ``-o`` format.

    Args:
        output: one of :data:`FORMATS`.
        model: what json and yaml print.
        text: the view of one object for a person (``table`` and ``plain``).
        rows: the view of a list (``table`` draws it, ``plain`` aligns it); wins over ``text``.
        empty: printed instead of an empty list's table.
    """
    if output == "json":
        print_json(model)
    elif output == "yaml":
        import yaml  # only -o yaml pays for it

        print(yaml.safe_dump(_data(model), sort_keys=False, allow_unicode=True), end="")
    elif rows is not None:
        header, body = rows()
        if not body:
            print(empty)
        elif output == "plain":
            print("\n".join(plain_table(header, body)))
        else:
            print_table(header, body)
    elif text is not None:
        print(text())
    else:
        print_json(model)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def plain_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> list[str]:
    """Aligned columns under a header, no borders (what ``-o plain`` prints)."""
    rows = [list(header), *([_cell(c) for c in row] for row in body)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def print_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> None:
    """A table drawn as Airflow's ``-o table`` draws it (rich; imported only here)."""
    from rich.box import ASCII_DOUBLE_HEAD
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    console = Console(
        width=None if terminal else _PIPE_WIDTH,
        no_color=not terminal or "NO_COLOR" in os.environ,
        highlight=False,
        markup=False,  # a run id like "[x]" is text, not a style
        emoji=False,
        soft_wrap=False,
    )
    table = Table(box=ASCII_DOUBLE_HEAD, show_edge=False, pad_edge=False, show_header=True)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in body:
        table.add_row(*(_cell(c) for c in row))
    console.print(table)
