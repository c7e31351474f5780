"""``wfe validate``, ``wfe render`` and ``wfe run``: the commands that work on workflow files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_workflow_commands"]


def _dags_folder() -> Path | None:
    from airflow_wfe.adapters.compile.folder import configured_dags_folder

    return configured_dags_folder()


def cmd_validate(args: argparse.Namespace) -> int:
    from airflow_wfe.adapters.compile.check import check_file

    checks = [
        check_file(path, dags_folder=_dags_folder(), imports=not args.no_imports)
        for path in args.files
    ]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "file": str(check.path),
                        "valid": not check.errors,
                        "errors": len(check.errors),
                        "warnings": len(check.warnings),
                        "problems": [p.to_dict() for p in check.problems],
                    }
                    for check in checks
                ],
                indent=2,
            )
        )
    else:
        for check in checks:
            for problem in check.problems:
                print(problem)
            verdict = "invalid" if check.errors else "valid"
            print(
                f"{check.path}: {verdict} ({len(check.errors)} error(s), "
                f"{len(check.warnings)} warning(s))"
            )
    return 1 if any(check.errors for check in checks) else 0


def cmd_render(args: argparse.Namespace) -> int:
    from airflow_wfe.core.spec import diagram
    from airflow_wfe.core.spec.loader import load_spec
    from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE

    loaded = load_spec(args.file)
    mermaid = args.format == "mermaid"
    parts: list[str] = []
    if args.what in ("steps", "all"):
        parts.append(
            diagram.steps_mermaid(loaded.spec) if mermaid else diagram.steps_dot(loaded.spec)
        )
    if args.what in ("states", "all"):
        for machine in (RUN_MACHINE, STEP_MACHINE):
            parts.append(
                diagram.machine_mermaid(machine) if mermaid else diagram.machine_dot(machine)
            )
    print("\n\n".join(parts))
    return 0


def _conf(raw: str | None) -> dict[str, Any]:
    from airflow_wfe.exceptions import WfeError

    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WfeError(f"--conf is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WfeError('--conf must be a JSON object, e.g. \'{"env": "staging"}\'')
    return value


def cmd_run(args: argparse.Namespace) -> int:
    from airflow_wfe.cli.local_run import run_workflow_once

    conf = _conf(args.conf)
    record = run_workflow_once(Path(args.file), conf=conf, quiet=not args.verbose)
    from airflow_wfe.cli.text import render_run

    print(render_run(record))
    return 0 if record.state == "COMPLETED" else 1


def add_workflow_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``validate``, ``render`` and ``run`` on the ``wfe`` command."""
    validate = commands.add_parser(
        "validate", help="check workflow files: schema, graph, governance rules, imports"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print a JSON array, one per file")
    validate.add_argument(
        "--no-imports", action="store_true", help="skip importing the code the steps name"
    )
    validate.set_defaults(handler=cmd_validate)

    render = commands.add_parser(
        "render", help="draw the step graph and the state machines (Mermaid or DOT)"
    )
    render.add_argument("file", metavar="FILE")
    render.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    render.add_argument(
        "--what", choices=("steps", "states", "all"), default="all", help="what to draw"
    )
    render.set_defaults(handler=cmd_render)

    run = commands.add_parser(
        "run", help="run a workflow once, locally, through Airflow (dag.test); exit 0 if COMPLETED"
    )
    run.add_argument("file", metavar="FILE")
    run.add_argument("--conf", help="run configuration as a JSON object")
    run.add_argument(
        "--verbose", action="store_true", help="show Airflow's task logs instead of a log file"
    )
    run.set_defaults(handler=cmd_run)
