"""``airflow wfe ...``: the ``wfe`` command mounted into Airflow's own CLI (provider info ``cli``).

One pass-through command rather than a second definition of every argument: ``airflow wfe runs list
--json`` runs exactly ``wfe runs list --json``, so the two can never drift apart.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["get_cli_commands"]


def _run(args: argparse.Namespace) -> None:
    from airflow_wfe.cli.main import main

    arguments = list(args.wfe_args)
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    sys.exit(main(arguments or ["--help"]))


def get_cli_commands() -> list[Any]:
    """Airflow CLI commands contributed by airflow-wfe (called by Airflow's CLI parser)."""
    from airflow.cli.cli_config import ActionCommand, Arg

    return [
        ActionCommand(
            name="wfe",
            help="airflow-wfe: governed runs, state histories, store schema (same as `wfe`)",
            func=_run,
            args=(
                Arg(  # type: ignore[no-untyped-call]
                    ("wfe_args",),
                    nargs=argparse.REMAINDER,
                    help="arguments of the `wfe` command, e.g. `runs list --json`",
                ),
            ),
        )
    ]
