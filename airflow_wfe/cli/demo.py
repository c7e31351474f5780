"""``wfe demo``: run the example DAGs through real Airflow, print their recorded histories, serve the UI.

Everything runs in a project-local ``AIRFLOW_HOME`` on SQLite (Airflow's metadata and the wfe store),
through Airflow's own CLI (``airflow db migrate``, ``airflow dags test``, ``airflow standalone``), so
the demo exercises exactly what a user runs. It fails (exit 1) when a run's recorded end state does
not agree with Airflow's own verdict, which makes ``SERVE=0 make demo`` a smoke test in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from airflow_wfe.app import audit, runs
from airflow_wfe.app.context import AppContext
from airflow_wfe.cli.audit_text import describe
from airflow_wfe.cli.text import render_decisions, render_run

__all__ = ["run_demo"]

_AGREES = {True: {"COMPLETED"}, False: {"FAILED", "COMPENSATED", "COMPENSATION_FAILED", "REJECTED"}}


def _environment(dags_folder: Path, port: int) -> dict[str, str]:
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.cwd() / ".airflow-home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "plugins").mkdir(exist_ok=True)  # empty: the plugin comes from its entry point
    base_url = f"http://127.0.0.1:{port}"
    defaults = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-demo-only-secret-change-me-0123456789",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # The example policies (dags/policies/*.yaml) that the example gates evaluate.
        "AIRFLOW__WFE__POLICY_PATH": str(dags_folder / "policies"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return dict(os.environ)


def _airflow(args: list[str], env: dict[str, str], log_file: Path) -> int:
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    with log_file.open("a") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n")
        log.flush()
        return subprocess.call([airflow, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def _example_dag_ids(dags_folder: Path) -> list[str]:
    import logging

    from airflow.dag_processing.dagbag import DagBag

    logging.getLogger("airflow.dag_processing").setLevel(logging.WARNING)
    bag = DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        for file, error in bag.import_errors.items():
            print(f"  import error in {file}:\n{error}", file=sys.stderr)
    return sorted(dag_id for dag_id in bag.dag_ids if dag_id.startswith("wfe_example"))


def _audit_summary(ctx: AppContext, results: list[tuple[str, bool, str, str]]) -> int:
    """The audit trail of the demo's runs: one run's story, and the whole chain verified."""
    saga = next((r for r in results if "saga" in r[0]), results[0])
    run = runs.list_runs(ctx, dag_id=saga[0], limit=1).root[0]
    story = [e for e in audit.run_story(ctx, run.dag_id, run.run_id).events if e.step_id is None]
    print(f"\nAudit trail of {run.dag_id} (run-level events; `wfe audit show` has every step)")
    for event in story:
        print(f"  #{event.seq:<5} {event.at[11:23]}Z  {event.actor:<10} {describe(event)}")
    report = audit.verify(ctx).reports["store"]
    status = "verified" if report.ok else "BROKEN"
    print(
        f"  chain: {report.events} events #{report.first_seq}..#{report.last_seq}, "
        f"{report.checkpoints} signed checkpoint(s), signed head: {status}"
    )
    for finding in report.findings[:3]:
        print(f"  {finding}", file=sys.stderr)
    return 0 if report.ok else 1


def installed_examples() -> Path:
    """Where a pip install puts the example DAGs (pyproject's ``data-files``: <prefix>/share/...)."""
    return Path(sysconfig.get_path("data")) / "share" / "airflow-wfe" / "dags"


def default_dags_folder() -> Path:
    """``dags/`` of a checkout when run from one (``make demo``), else the installed examples.

    A user's own ``dags/`` folder without ``wfe_example*`` files is not taken for the examples.
    """
    local = Path.cwd() / "dags"
    if any(local.glob("wfe_example*.py")):
        return local
    return installed_examples()


def run_demo(*, dags_folder: str | None, serve: bool, port: int) -> int:
    """Run every ``wfe_example*`` DAG once and report; then serve Airflow unless ``serve`` is off."""
    folder = (Path(dags_folder) if dags_folder else default_dags_folder()).resolve()
    if not folder.is_dir():
        where = (
            "" if dags_folder else f" (no ./dags with wfe_example*.py, none installed at {folder})"
        )
        print(f"wfe demo: error: DAGs folder {folder} does not exist{where}", file=sys.stderr)
        return 2
    env = _environment(folder, port)
    home = Path(env["AIRFLOW_HOME"])
    logs = home / "demo-logs"
    logs.mkdir(exist_ok=True)
    print(f"airflow-wfe demo  (AIRFLOW_HOME={home}, DAGs from {folder})")
    print("  preparing Airflow's metadata database ...", flush=True)
    if _airflow(["db", "migrate"], env, logs / "db-migrate.log") != 0:
        print(
            f"wfe demo: error: `airflow db migrate` failed; see {logs / 'db-migrate.log'}",
            file=sys.stderr,
        )
        return 1

    ctx = AppContext.from_process()
    dag_ids = _example_dag_ids(folder)
    if not dag_ids:
        print(f"wfe demo: error: no wfe_example* DAGs in {folder}", file=sys.stderr)
        return 1
    results: list[tuple[str, bool, str, str]] = []
    for dag_id in dag_ids:
        print(f"  running {dag_id} through `airflow dags test` ...", flush=True)
        started = time.monotonic()
        code = _airflow(["dags", "test", dag_id], env, logs / f"{dag_id}.log")
        seconds = time.monotonic() - started
        latest = runs.list_runs(ctx, dag_id=dag_id, limit=1).root
        if not latest:
            print(
                f"wfe demo: error: no run of {dag_id} was recorded; see {logs / dag_id}.log",
                file=sys.stderr,
            )
            return 1
        record = runs.run_detail(ctx, dag_id, latest[0].run_id)
        airflow_ok = code == 0
        results.append((dag_id, airflow_ok, record.state, f"{seconds:.1f}s"))
        print()
        print("\n".join([render_run(record), *render_decisions(record.decisions)]))
        print()

    print("Summary")
    failures = 0
    for dag_id, airflow_ok, state, took in results:
        agrees = state in _AGREES[airflow_ok]
        failures += not agrees
        verdict = "agrees" if agrees else "DISAGREES"
        airflow_state = "success" if airflow_ok else "failed"
        print(f"  {dag_id:<34} Airflow: {airflow_state:<8} wfe: {state:<20} {verdict}  ({took})")
    failures += _audit_summary(ctx, results)
    print(f"\nAirflow logs of each run: {logs}")
    print("Explore: wfe runs list   |   wfe runs show DAG_ID RUN_ID [--json]")
    print("         wfe audit show DAG_ID RUN_ID   |   wfe audit verify")
    if failures:
        print(f"wfe demo: error: {failures} run(s) disagree with Airflow", file=sys.stderr)
        return 1
    if not serve:
        return 0
    return _serve(env, port)


def _serve(env: dict[str, str], port: int) -> int:
    """Replace this process with ``airflow standalone`` (UI with the plugin) until Ctrl-C."""
    print(f"\nServing Airflow with the plugin on http://127.0.0.1:{port} (Ctrl-C to stop).")
    print(
        "Log in as 'admin'; `airflow standalone` prints the generated password below.\n", flush=True
    )
    bin_dir = str(Path(sys.executable).parent)
    airflow = shutil.which("airflow", path=bin_dir) or "airflow"
    # `airflow standalone` starts its components as `airflow ...` subprocesses: find this venv's.
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    os.execve(airflow, [airflow, "standalone"], env)
    return 0  # pragma: no cover - execve does not return
