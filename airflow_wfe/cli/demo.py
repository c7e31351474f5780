"""``wfe demo``: the example workflows through a real Airflow, a report of what was recorded, the UI.

Everything runs in a project-local ``AIRFLOW_HOME`` on SQLite (Airflow's metadata and the wfe store)
with Airflow's own components (:mod:`airflow_wfe.cli.components`): an API server, a dag-processor
and a scheduler whose LocalExecutor runs every task in its own process, as in production. The demo
triggers its scenarios (:data:`SCENARIOS`: success paths, a rolled-back canary, a budget stop, a
data-quality denial, a compensated failure), shows their progress live on stderr, prints the report
(:mod:`airflow_wfe.cli.demo_report`), then keeps the API server running so the runs can be explored
in the UI, until Ctrl-C. It exits 1 when a run does not end in the state its scenario expects or
the audit chain does not verify, which makes ``SERVE=0 make demo`` a smoke test in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_wfe.app import artifacts, runs
from airflow_wfe.app.context import AppContext
from airflow_wfe.cli.components import Components, airflow_executable, free_port
from airflow_wfe.cli.demo_report import Outcome, render_report
from airflow_wfe.cli.local_run import airflow_output_to
from airflow_wfe.cli.progress import Progress, progress_of
from airflow_wfe.exceptions import ArtifactNotFoundError, RunNotFoundError

__all__ = ["SCENARIOS", "Scenario", "run_demo"]

#: How long the scenarios get, from the first trigger, before the demo gives up.
RUNS_DEADLINE_S = 420.0
#: How long the dag-processor gets to parse the examples.
PARSE_DEADLINE_S = 120.0
CAMPAIGN_PROMPT = ("campaign/prompt", "prompts/campaign-v1.txt")


@dataclass(frozen=True)
class Scenario:
    """One run the demo triggers, and the wfe state it must end in.

    Scenarios of one ``group`` run one after the other (they share a deployment target); groups
    run side by side.
    """

    dag_id: str
    label: str
    expect: str
    conf: dict[str, Any] = field(default_factory=dict)
    group: str = ""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("wfe_example_success", "a governed run", "COMPLETED"),
    Scenario("wfe_example_saga", "a failure, compensated", "COMPENSATED"),
    Scenario("wfe_example_yaml_data_pipeline", "data pipeline (YAML)", "COMPLETED", group="data"),
    Scenario(
        "wfe_example_yaml_data_pipeline",
        "data pipeline: a data-quality denial",
        "REJECTED",
        {"bad_rows": 3},
        group="data",
    ),
    Scenario("wfe_example_cicd", "CI/CD: a healthy release", "COMPLETED", group="cicd"),
    Scenario(
        "wfe_example_cicd",
        "CI/CD: a rolled-back canary",
        "COMPENSATED",
        {"version": "2026.12.3", "error_rate": 0.2},
        group="cicd",
    ),
    Scenario("wfe_example_campaign", "AI campaign", "COMPLETED", group="campaign"),
    Scenario(
        "wfe_example_campaign",
        "AI campaign: a budget stop",
        "COMPENSATED",
        {"media_spend": 80.0},
        group="campaign",
    ),
)


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
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "wfe-demo-only-secret-change-me-0123456789",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        # The example policies (dags/policies/*.yaml) that the example gates evaluate.
        "AIRFLOW__WFE__POLICY_PATH": str(dags_folder / "policies"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return dict(os.environ)


def _airflow(args: list[str], env: dict[str, str], log_file: Path) -> int:
    with log_file.open("a") as log:
        log.write(f"\n$ airflow {' '.join(args)}\n")
        log.flush()
        return subprocess.call(
            [airflow_executable(), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )


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


def _task_counts(dags_folder: Path, log: Path) -> dict[str, int]:
    """Tasks per example DAG (the progress view's denominators); import errors are printed."""

    from airflow.dag_processing.dagbag import DagBag

    # Airflow's components put the DAGs folder on sys.path, so example DAGs import their helpers.
    if str(dags_folder) not in sys.path:
        sys.path.insert(0, str(dags_folder))
    with log.open("a") as sink, airflow_output_to(sink.fileno()):
        bag = DagBag(dag_folder=str(dags_folder))
    for file, error in bag.import_errors.items():
        print(f"  import error in {file}:\n{error}", file=sys.stderr)
    return {dag_id: len(dag.tasks) for dag_id, dag in bag.dags.items()}


def _register_prompt(ctx: AppContext, dags_folder: Path) -> bool:
    """The campaign needs an active prompt version: register the shipped one unless one is active.

    Returns whether the campaign can run (False: no active version and no shipped prompt).
    """
    name, relative = CAMPAIGN_PROMPT
    source = dags_folder / relative
    try:
        artifacts.active_content(ctx, name)
        return True
    except ArtifactNotFoundError:
        pass
    if not source.is_file():
        print(f"  no {source}: the campaign scenarios are left out", file=sys.stderr)
        return False
    artifacts.register(
        ctx, name, source.read_bytes(), media_type="text/plain", actor="demo", activate_it=True
    )
    print(f"  registered {source.name} as the active version of {name}")
    return True


def _wait_parsed(dag_ids: set[str], components: Components) -> None:
    """Wait until the dag-processor has put every DAG in Airflow's database, then unpause them."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    deadline = time.monotonic() + PARSE_DEADLINE_S
    missing = set(dag_ids)
    while time.monotonic() < deadline:
        if components.exited():
            raise RuntimeError(f"Airflow components exited: {components.exited()}")
        with create_session() as session:
            found = {d: DagModel.get_dagmodel(d, session=session) for d in dag_ids}
            missing = {d for d, model in found.items() if model is None}
            if not missing:
                for model in found.values():
                    if model is not None and model.is_paused:
                        model.is_paused = False
                return
        time.sleep(1)
    raise RuntimeError(f"the dag-processor did not parse {sorted(missing)} in time")


def _trigger(scenario: Scenario, log: Path) -> str:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    # Airflow logs each run it creates to this process's stdout: to the demo's log instead.
    with log.open("a") as sink, airflow_output_to(sink.fileno()), create_session() as session:
        run = trigger_dag(
            scenario.dag_id,
            triggered_by=DagRunTriggeredByType.CLI,
            triggering_user_name="wfe-demo",
            conf=dict(scenario.conf),
            session=session,
        )
        if run is None:
            raise RuntimeError(f"Airflow did not create a run of {scenario.dag_id}")
        return str(run.run_id)


def _airflow_state(dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun

    found = DagRun.find(dag_id=dag_id, run_id=[run_id])
    return str(found[0].state) if found else None


@dataclass
class _Active:
    scenario: Scenario
    key: str
    run_id: str
    started: float


def _queues(scenarios: tuple[Scenario, ...]) -> Iterator[list[Scenario]]:
    groups: dict[str, list[Scenario]] = {}
    for index, scenario in enumerate(scenarios):
        groups.setdefault(scenario.group or f"#{index}", []).append(scenario)
    yield from groups.values()


def _run_scenarios(
    ctx: AppContext,
    scenarios: tuple[Scenario, ...],
    totals: dict[str, int],
    components: Components,
    logs: Path,
) -> list[Outcome]:
    """Trigger every scenario (a group's one after the other), follow them, return how they ended."""
    queues = [list(q) for q in _queues(scenarios)]
    keys = {id(s): f"{i}" for i, s in enumerate(scenarios)}
    outcomes: dict[str, Outcome] = {}
    active: list[_Active] = []
    deadline = time.monotonic() + RUNS_DEADLINE_S
    with Progress() as progress:
        for scenario in scenarios:
            progress.add(keys[id(scenario)], scenario.label, totals.get(scenario.dag_id, 0))
        while queues or active:
            for queue in list(queues):
                if not any(a.scenario.group and a.scenario.group == queue[0].group for a in active):
                    scenario = queue.pop(0)
                    run_id = _trigger(scenario, logs / "triggers.log")
                    key = keys[id(scenario)]
                    active.append(_Active(scenario, key, run_id, time.monotonic()))
                    progress.update(key, state="TRIGGERED")
                    if not queue:
                        queues.remove(queue)
            for run in list(active):
                try:
                    record = runs.run_detail(ctx, run.scenario.dag_id, run.run_id)
                except RunNotFoundError:
                    continue
                done, current = progress_of(record, totals.get(run.scenario.dag_id, 0))
                airflow_state = _airflow_state(run.scenario.dag_id, run.run_id)
                over = airflow_state in ("success", "failed") and record.state in {
                    "COMPLETED", "FAILED", "COMPENSATED", "COMPENSATION_FAILED", "REJECTED",
                }  # fmt: skip
                progress.update(run.key, state=record.state, done=done, current=current, ended=over)
                if over:
                    active.remove(run)
                    outcomes[run.key] = Outcome(
                        label=run.scenario.label,
                        expected=run.scenario.expect,
                        airflow_state=str(airflow_state),
                        record=record,
                        seconds=time.monotonic() - run.started,
                    )
            if components.exited():
                raise RuntimeError(f"Airflow components exited: {components.exited()}")
            if time.monotonic() > deadline:
                late = ", ".join(f"{a.scenario.label} ({a.run_id})" for a in active)
                raise RuntimeError(f"runs still going after {RUNS_DEADLINE_S:.0f}s: {late}")
            progress.tick()
            time.sleep(1.0)
    return [outcomes[keys[id(s)]] for s in scenarios]


def run_demo(*, dags_folder: str | None, serve: bool, port: int) -> int:
    """Run the scenarios through Airflow's components, report; then serve unless ``serve`` is off."""
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
    totals = _task_counts(folder, logs / "dagbag.log")
    scenarios = tuple(s for s in SCENARIOS if s.dag_id in totals)
    if any(s.dag_id == "wfe_example_campaign" for s in scenarios) and not _register_prompt(
        ctx, folder
    ):
        scenarios = tuple(s for s in scenarios if s.dag_id != "wfe_example_campaign")
    if not scenarios:
        print(f"wfe demo: error: none of the example DAGs is in {folder}", file=sys.stderr)
        return 1
    components = Components(env, logs, api_port=port)
    try:
        print(
            "  starting Airflow: api-server, dag-processor, scheduler (LocalExecutor) ...",
            flush=True,
        )
        components.start()
        _wait_parsed({s.dag_id for s in scenarios}, components)
        print(f"  running {len(scenarios)} scenarios through the scheduler:", flush=True)
        outcomes = _run_scenarios(ctx, scenarios, totals, components, logs)
        deployments = sorted({s.dag_id for s in scenarios if s.dag_id == "wfe_example_cicd"})
        text, ok = render_report(ctx, outcomes, deployments)
        print(text)
        print(f"\nAirflow's logs: {logs} (components), {home / 'logs'} (tasks)")
        print("Explore: wfe runs list   |   wfe runs show DAG_ID RUN_ID [--json]")
        print("         wfe audit show DAG_ID RUN_ID   |   wfe dora   |   wfe artifacts list")
        if not ok:
            print("wfe demo: error: a run did not end as expected, or the audit trail did not "
                  "verify (see above)", file=sys.stderr)  # fmt: skip
            return 1
        if serve:
            _serve(home, port)
        return 0
    except RuntimeError as exc:
        print(f"wfe demo: error: {exc}; see the logs in {logs}", file=sys.stderr)
        return 1
    finally:
        components.stop()


def _serve(home: Path, port: int) -> None:
    """Keep the components (and so the UI) running until Ctrl-C or SIGTERM."""
    passwords = home / "simple_auth_manager_passwords.json.generated"
    password = "see " + str(passwords)
    if passwords.is_file():
        password = json.loads(passwords.read_text()).get("admin", password)
    print(
        f"\nAirflow with the wfe pages: http://127.0.0.1:{port}/  (user admin, password {password})"
    )
    print(f"  the runs above: http://127.0.0.1:{port}/wfe/ui/   — Ctrl-C to stop", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
