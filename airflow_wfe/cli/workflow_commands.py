"""``wfe validate``, ``wfe render`` and ``wfe run``: the commands that work on workflow files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_wfe.cli.output import add_command, add_output_option, emit
from airflow_wfe.cli.text import render_run

if TYPE_CHECKING:
    from airflow_wfe.app.models import ValidationList

__all__ = ["add_workflow_commands"]


def _validation_text(checks: ValidationList) -> str:
    lines = []
    for check in checks.root:
        lines += [str(problem) for problem in check.problems]
        verdict = "valid" if check.valid else "invalid"
        lines.append(
            f"{check.file}: {verdict} ({check.errors} error(s), {check.warnings} warning(s))"
        )
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    # The spec models, the compiler's checks and the policy engine: only these commands pay.
    from airflow_wfe.app.workflows import validate_files

    checks = validate_files([Path(f) for f in args.files], imports=not args.no_imports)
    emit(args.output, checks, text=lambda: _validation_text(checks))
    return 0 if all(check.valid for check in checks.root) else 1


def cmd_render(args: argparse.Namespace) -> int:
    from airflow_wfe.app.workflows import validate_files
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
    if args.format in ("svg", "png"):
        from airflow_wfe.cli.pictures import dot_picture, write_picture

        write_picture(dot_picture(parts, args.format), args.to, binary=args.format == "png")
        return 0
    text = "\n\n".join(parts) + "\n"
    if args.to is not None:
        from airflow_wfe.cli.pictures import write_picture

        write_picture(text.encode(), args.to, binary=False)
    else:
        print(text, end="")
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
    validate = add_command(
        commands,
        "validate",
        help="check workflow files: schema, graph, governance rules, imports",
        description="Check workflow files: schema, graph, governance rules and the code the steps "
        "name. Every problem names its file, line and key. Exit 1 when any file is invalid.",
        examples=[
            "wfe validate dags/workflows/*.yaml",
            "wfe validate --no-imports release.yaml -o json",
        ],
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    add_output_option(validate)
    validate.add_argument(
        "--no-imports", action="store_true", help="skip importing the code the steps name"
    )
    validate.set_defaults(handler=cmd_validate)

    render = add_command(
        commands,
        "render",
        help="draw the step graph and the state machines (Mermaid, DOT, SVG or PNG)",
        description="Draw a workflow's step graph (with its compensations and gates) and the "
        "run and step state machines. mermaid and dot are text; svg and png are drawn by "
        "Graphviz's `dot` (apt install graphviz). Exit 1 for an invalid workflow.",
        examples=[
            "wfe render release.yaml > release.mmd",
            "wfe render release.yaml --format svg --to release.svg",
            "wfe render release.yaml --what steps --format png --to release.png",
            "wfe render release.yaml --format dot | dot -Tpdf -o release.pdf",
        ],
    )
    render.add_argument("file", metavar="FILE")
    render.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg", "png"),
        default="mermaid",
        help="(default: mermaid)",
    )
    render.add_argument(
        "--what", choices=("steps", "states", "all"), default="all", help="what to draw"
    )
    render.add_argument(
        "--to", metavar="FILE", help="write to FILE instead of stdout (png: required on a terminal)"
    )
    render.set_defaults(handler=cmd_render)

    run = add_command(
        commands,
        "run",
        help="run a workflow once, locally, through Airflow (dag.test); exit 0 if COMPLETED",
        examples=[
            "wfe run dags/workflows/wfe_example_yaml_etl.yaml",
            'wfe run release.yaml --conf \'{"env": "staging"}\' --verbose',
        ],
    )
    run.add_argument("file", metavar="FILE")
    run.add_argument("--conf", type=_conf, help="run configuration as a JSON object")
    run.add_argument(
        "--verbose", action="store_true", help="show Airflow's task logs instead of a log file"
    )
    run.set_defaults(handler=cmd_run)
