"""``wfe validate``, ``wfe render`` and ``wfe run``: the commands that work on workflow files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from airflow_wfe.app.workflows import validate_files
from airflow_wfe.cli.text import print_json, render_run

__all__ = ["add_workflow_commands"]


def cmd_validate(args: argparse.Namespace) -> int:
    checks = validate_files([Path(f) for f in args.files], imports=not args.no_imports)
    if args.json:
        print_json(checks)
    else:
        for check in checks.root:
            for problem in check.problems:
                print(problem)
            verdict = "valid" if check.valid else "invalid"
            print(f"{check.file}: {verdict} ({check.errors} error(s), {check.warnings} warning(s))")
    return 0 if all(check.valid for check in checks.root) else 1


def cmd_render(args: argparse.Namespace) -> int:
    from airflow_wfe.core.spec import diagram
    from airflow_wfe.core.spec.loader import load_spec
    from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE

    # A drawing of a broken workflow (a cycle, an unknown need) would look like a plan that can run:
    # render refuses what validate refuses (imports aside: drawing needs none of the callables).
    check = validate_files([Path(args.file)], imports=False).root[0]
    if not check.valid:
        for problem in check.problems:
            print(problem, file=sys.stderr)
        print(f"{check.file}: invalid, not drawn ({check.errors} error(s))", file=sys.stderr)
        return 1
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


def _conf(raw: str) -> dict[str, Any]:
    """``--conf``: a JSON object (a usage error otherwise)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--conf is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            '--conf must be a JSON object, e.g. \'{"env": "staging"}\''
        )
    return value


def cmd_run(args: argparse.Namespace) -> int:
    # Compiling and running a DAG imports Airflow's scheduler-side models: only `wfe run` pays.
    from airflow_wfe.cli.local_run import run_workflow_once

    record = run_workflow_once(Path(args.file), conf=args.conf or {}, quiet=not args.verbose)
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
    run.add_argument("--conf", type=_conf, help="run configuration as a JSON object")
    run.add_argument(
        "--verbose", action="store_true", help="show Airflow's task logs instead of a log file"
    )
    run.set_defaults(handler=cmd_run)
