"""``airflow wfe ...``: the ``wfe`` command mounted into Airflow's own CLI (provider info ``cli``).

One pass-through command rather than a second definition of every argument: ``airflow wfe runs list
--json`` runs exactly ``wfe runs list --json``, so the two can never drift apart. Airflow parses only
what comes before the first subcommand (``--version``, ``--debug``); everything from the subcommand on,
``--help`` included, is handed to ``wfe``'s own parser, so ``airflow wfe runs list --help`` shows the
same help as ``wfe runs list --help``.

Airflow calls :func:`get_cli_commands` before *every* ``airflow`` command (``airflow version``
included) to build its parser, so this module stays cheap: the command list in ``airflow wfe
--help`` comes from the static index :mod:`airflow_wfe.cli.commands`, and the command itself is
loaded through Airflow's ``lazy_load_command`` only when ``airflow wfe`` runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from airflow_wfe.cli.commands import COMMANDS

__all__ = ["get_cli_commands"]


class _PrintVersion(argparse.Action):
    """``--version``: Airflow's ``Arg`` does not pass argparse's ``version=`` keyword through."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        from airflow_wfe.version import __version__

        print(f"airflow-wfe {__version__}")
        parser.exit()


def _subcommand_list() -> str:
    """``COMMAND  help`` for every top-level ``wfe`` subcommand, as ``wfe --help`` shows them."""
    lines = ["commands (each has its own --help, e.g. `airflow wfe runs list --help`):"]
    lines += [f"  {command.name:<12} {command.help}" for command in COMMANDS]
    return "\n".join(lines)


def get_cli_commands() -> list[Any]:
    """Airflow CLI commands contributed by airflow-wfe (called by Airflow's CLI parser)."""
    from airflow.cli.cli_config import ActionCommand, Arg, lazy_load_command

    return [
        ActionCommand(
            name="wfe",
            help="airflow-wfe: governed runs, state histories, audit, store schema (same as `wfe`)",
            description="airflow-wfe: governed Airflow runs (state, compensation, gates, audit). "
            "Same commands as the `wfe` script.",
            epilog=_subcommand_list(),
            func=lazy_load_command("airflow_wfe.cli.main.run_from_airflow"),
            args=(
                Arg(  # type: ignore[no-untyped-call]
                    ("--version",),
                    action=_PrintVersion,
                    help="print airflow-wfe's version and exit",
                ),
                Arg(  # type: ignore[no-untyped-call]
                    ("--debug",),
                    dest="wfe_debug",
                    action="store_true",
                    help="show tracebacks on errors",
                ),
                Arg(  # type: ignore[no-untyped-call]
                    ("wfe_args",),
                    metavar="COMMAND ...",
                    nargs=argparse.REMAINDER,
                    help="a `wfe` subcommand and its arguments, e.g. `runs list --json`",
                ),
            ),
        )
    ]
