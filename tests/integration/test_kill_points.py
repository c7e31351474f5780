"""Kill points: SIGKILL and sick dependencies at every step of a governed saga, 20 trials each.

A trial is one run of a tiny governed saga (``tests/scenarios/kill_points``: ``reserve`` >>
``charge``, ``reserve`` compensable; the gate's kill points run the same with a policy ``gate``
between them). The trials of a kill point run together, 20 concurrent runs in one real cluster
(``cluster.py``: api-server, dag-processor, scheduler, LocalExecutor with parallelism 8, Airflow's
metadata on PostgreSQL). A trial's plan (which task dies, on which tries, where, after how long;
whether ``charge`` fails so the saga runs) is drawn from a seeded RNG (``kp_plans.plan_for``) and
passed in the run's conf. Eleven kill points:

* the task process SIGKILLs itself inside a step before or after its side effect, inside the gate
  before or after its decision is recorded, inside a compensation before or after its effect, and
  inside the recorder's own store transaction (before its audit events, after them but before the
  commit, or after the commit) of a step's RUNNING or SUCCEEDED or of the saga's COMPENSATING or
  COMPENSATED: all at once in the first phase of the SQLite-store cluster;
* the scheduler SIGKILLed (with the task processes below it) while compensations run, and started
  again: the second phase of that cluster, which runs throughout with StatsD on and no daemon on
  its port;
* the wfe store's PostgreSQL server stopped mid-run (``pg_ctl stop -m fast``: every session cut,
  the port closed) and started again 20 s later: a server of the test's own (``pg_server.py``), so
  Airflow's metadata database on the machine's shared server stays up, in a second cluster that
  sends its metrics over OpenTelemetry to a collector that is not there.

Every trial must end right: Airflow's verdict as planned, the wfe run COMPLETED or (``charge``
failed) COMPENSATED, its history and each step's the expected path with no gap, no duplicate and no
illegal move, each side effect applied once and the compensation applied exactly once with the
saga's idempotency key (a real ledger, the SQLite file the tasks write to), the planned death
noted by the dying process (a trial that never died fails), nothing left in the spool, and ``wfe
audit verify`` passes.

``WFE_KP_SEED`` replays a campaign (a failure prints its seed and each broken trial's plan);
``WFE_KP_TRIALS`` changes the trials per point (20); ``WFE_KP_DEADLINE_S`` the budget of a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow_env import scenario
from cluster import Cluster, free_ports, render_records
from kill_checks import ledger_rows, problems
from pg_server import PrivateServer, private_server

sys.path.insert(0, str(scenario("kill_points")))
from kp_plans import DAG_ID, GATE_DAG_ID, plan_for, run_id_of

DAG_IDS = (DAG_ID, GATE_DAG_ID)
SEED = int(os.environ.get("WFE_KP_SEED") or random.SystemRandom().randrange(1, 10**6))
TRIALS = int(os.environ.get("WFE_KP_TRIALS") or 20)

#: Kill points whose trials all run together in the first phase of the SQLite cluster.
TASK_POINTS = (
    "step_before_effect",
    "step_after_effect",
    "gate_before_decision",
    "gate_after_decision",
    "compensation_before_effect",
    "compensation_after_effect",
    "write_step_running",
    "write_step_succeeded",
    "write_compensation",
)
SCHEDULER_POINT = "scheduler_mid_compensation"
PG_POINT = "pg_restart"

PG_URL = os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_ADMIN = PG_URL.replace("postgresql+psycopg://", "postgresql://")

#: The scheduler's wait for a killed task's heartbeat before it fails the try (Airflow: 300 s).
HEARTBEAT_TIMEOUT_S = 20
#: How many compensations must be running when the scheduler is killed (3 of 20 trials).
IN_FLIGHT = max(1, min(3, TRIALS // 5))
#: How long the store's server stays away.
OUTAGE_S = 20.0
DEADLINE_S = float(os.environ.get("WFE_KP_DEADLINE_S") or 900)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(int(DEADLINE_S) + 600),
]


@dataclass
class Campaign:
    """The runs of one cluster: each trial's plan, Airflow's verdict and the wfe record."""

    cluster: Cluster
    effects: Path
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    airflow: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    verify: subprocess.CompletedProcess[str] | None = None
    notes: list[str] = field(default_factory=list)

    def trigger(self, point: str) -> None:
        """Create the point's runs (each with its plan as conf). A busy API server may time out
        after creating a run: the POST is retried only while the run does not exist."""
        for trial in range(TRIALS):
            plan = plan_for(point, trial, SEED)
            run_id = run_id_of(point, trial, SEED)
            self.plans[run_id] = plan
            body = {"dag_run_id": run_id, "logical_date": None, "conf": plan}
            dag_id = plan["dag_id"]

            def created(dag_id: str = dag_id, run_id: str = run_id, body: Any = body) -> bool:
                if self.cluster.request("GET", self.cluster.run_path(dag_id, run_id))[0] == 200:
                    return True
                path = f"/api/v2/dags/{dag_id}/dagRuns"
                return self.cluster.request("POST", path, body)[0] == 200

            self.cluster.wait_until(f"run {run_id} created", created, interval=1.0)
        self.cluster.mark(f"{point}: {TRIALS} runs triggered")

    def pause(self, paused: bool) -> None:
        """Pause the DAGs (runs created meanwhile wait, queued) or unpause them."""
        for dag_id in DAG_IDS:
            self.cluster.wait_until(
                f"{dag_id} parsed",
                lambda dag_id=dag_id: (
                    self.cluster.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200
                ),
            )
            status, body = self.cluster.request(
                "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused}
            )
            if status != 200:
                self.cluster.fail(f"is_paused={paused} on {dag_id} answered {status}: {body}")

    def airflow_states(self) -> dict[str, str] | None:
        """Airflow's state of every run of the DAGs, page by page (the API serves at most 100 a
        page); ``None`` when the API server did not answer."""
        states = {}
        for dag_id in DAG_IDS:
            offset = 0
            while True:
                path = f"/api/v2/dags/{dag_id}/dagRuns?limit=100&offset={offset}"
                try:
                    status, body = self.cluster.request("GET", path)
                except OSError:
                    return None
                if status != 200:
                    return None
                states.update({r["dag_run_id"]: r["state"] for r in body["dag_runs"]})
                offset += len(body["dag_runs"])
                if not body["dag_runs"] or offset >= body["total_entries"]:
                    break
        return states

    def wait_finished(self, what: str) -> None:
        def finished() -> bool:
            states = self.airflow_states()
            return states is not None and all(
                states.get(run_id) in ("success", "failed") for run_id in self.plans
            )

        self.cluster.wait_until(what, finished, interval=2.0)
        self.cluster.mark(what)

    def collect(self) -> None:
        """Airflow's verdicts, and each wfe record once the run's end is written (the scheduler
        writes it on its writer thread, just after Airflow's own)."""
        self.airflow = self.cluster.wait_until("Airflow's run states", self.airflow_states)
        ends = ("COMPLETED", "COMPENSATED", "COMPENSATION_FAILED", "FAILED", "REJECTED")
        give_up = time.monotonic() + 60
        for run_id, plan in self.plans.items():
            path = f"/wfe/api/v1/runs/{plan['dag_id']}/{quote(run_id, safe='')}"
            while True:
                try:
                    status, body = self.cluster.request("GET", path)
                except OSError:
                    status, body = 0, None
                record = body if status == 200 else None
                if record and record["state"] in ends and record["state"] != "FAILED":
                    break
                if time.monotonic() > give_up:
                    break
                time.sleep(1)
            self.records[run_id] = record
        self.verify = self.cluster.wfe("audit", "verify", "--json", timeout=300)
        self.cluster.mark("records collected, audit verified")

    def summary(self) -> str:
        """The seed and what happened to the cluster (part of every failure's diagnostics)."""
        return "\n".join([f"--- seed: WFE_KP_SEED={SEED}", *(f"    {n}" for n in self.notes)])

    def check(self, points: tuple[str, ...]) -> None:
        calls, effects = ledger_rows(self.effects)
        report = []
        for run_id, plan in sorted(self.plans.items()):
            if plan["point"] not in points:
                continue
            mine_calls = [c for c in calls if c["run_id"] == run_id]
            mine_effects = [e for e in effects if e["run_id"] == run_id]
            record = self.records.get(run_id)
            found = problems(plan, record, self.airflow.get(run_id), mine_calls, mine_effects)
            if found:
                shown = render_records(record) if record else "(no record)"
                tries = "\n".join(
                    f"      try {c['try']} {c['task']}: {c['phase']} {c['key']}" for c in mine_calls
                )
                report.append(
                    f"trial {run_id}\n  plan: {plan}\n  problems:\n"
                    + "\n".join(f"    - {p}" for p in found)
                    + f"\n  calls:\n{tries}\n  record:\n{shown}"
                )
        assert self.verify is not None
        if self.verify.returncode != 0:
            report.append(f"wfe audit verify exited {self.verify.returncode}: {self.verify.stdout}")
        if report:
            self.cluster.fail(
                f"kill points {points}: {len(report)} broken trial(s); replay with "
                f"WFE_KP_SEED={SEED}\n\n" + "\n\n".join(report[:10])
            )


@contextlib.contextmanager
def _cpu_reported(what: str) -> Iterator[None]:
    """Print the CPU the cluster's processes used (components and the task processes they reaped,
    counted once the components have stopped), to size the test's share of a CI budget."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        yield
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"{what}: {cpu:.0f} s CPU in the cluster's processes")


def _env(effects: Path, **more: str) -> dict[str, str]:
    return {
        "WFE_KP_EFFECTS": str(effects),
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        # Queued tasks of the killed scheduler's executor are reset by the next scheduler once
        # the old one is found dead (30 s without a heartbeat); look for them every 15 s.
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "15",
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": "wfe-kill-points-test-key",
        **more,
    }


def _compensations_in_flight(campaign: Campaign, point: str) -> int:
    """Compensations of ``point``'s runs that have started and not returned yet."""
    calls, _ = ledger_rows(campaign.effects)
    mine = [c for c in calls if c["task"] == "compensate__reserve" and point in c["run_id"]]
    started = {c["run_id"] for c in mine if c["phase"] == "call"}
    done = {c["run_id"] for c in mine if c["phase"] == "done"}
    return len(started - done)


@pytest.fixture(scope="module")
def sqlite_campaign(
    tmp_path_factory: pytest.TempPathFactory, databases: Callable[[str], tuple[str, str]]
) -> Campaign:
    """The task kill points together, then the scheduler killed mid-compensation and restarted;
    the wfe store is SQLite, StatsD has no daemon."""
    tmp = tmp_path_factory.mktemp("kill-points-sqlite")
    (statsd_port,) = free_ports(1)  # nothing listens there: StatsD is down
    with _cpu_reported("SQLite-store cluster"):
        store = tmp / "wfe.db"
        effects = tmp / "effects.db"
        env = _env(
            effects,
            AIRFLOW__WFE__STORE_CONN=f"sqlite:///{store}",
            AIRFLOW__WFE__SPOOL_PATH=str(tmp / "spool"),
            AIRFLOW__METRICS__STATSD_ON="True",
            AIRFLOW__METRICS__STATSD_HOST="127.0.0.1",
            AIRFLOW__METRICS__STATSD_PORT=str(statsd_port),
        )
        with Cluster.running(
            tmp,
            dags=scenario("kill_points"),
            deadline_s=DEADLINE_S,
            extra_env=env,
            database_url=databases("airflow")[0],
        ) as cluster:
            campaign = Campaign(cluster, effects)
            cluster.add_diagnostics(campaign.summary)
            cluster.login()
            # Phase 1: every task kill point at once (created paused, then started together).
            campaign.pause(True)
            for trial_point in TASK_POINTS:
                campaign.trigger(trial_point)
            campaign.pause(False)
            campaign.wait_finished(f"{len(TASK_POINTS)} task kill points x {TRIALS} finished")
            # Phase 2: the scheduler dies while compensations run, and comes back.
            campaign.trigger(SCHEDULER_POINT)
            cluster.wait_until(
                "compensations in flight",
                lambda: _compensations_in_flight(campaign, SCHEDULER_POINT) >= IN_FLIGHT,
                interval=0.5,
            )
            in_flight = _compensations_in_flight(campaign, SCHEDULER_POINT)
            cluster.kill("scheduler")
            campaign.notes.append(f"scheduler killed with {in_flight} compensation(s) in flight")
            time.sleep(2)
            cluster.restart("scheduler")
            campaign.wait_finished("scheduler kill point finished")
            campaign.collect()
    # Stopped before the checks: the PostgreSQL cluster does not share the machine with this one.
    return campaign


@pytest.fixture(scope="module")
def databases() -> Iterator[Callable[[str], tuple[str, str]]]:
    """Makes PostgreSQL databases of this module's own (``role`` -> its URL and name), dropped
    after. Airflow's metadata database is one of them: on SQLite, Airflow's API server answers
    "database is locked" to triggers while 8 task processes and the scheduler write."""
    from sqlalchemy.engine import make_url

    psycopg = pytest.importorskip("psycopg")
    made: list[str] = []

    def make(role: str) -> tuple[str, str]:
        name = f"wfe_kp_{role}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            if os.environ.get("WFE_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"WFE_REQUIRE_POSTGRES=1 but PostgreSQL is unreachable: {exc}")
            pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
        made.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), name

    yield make
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        for name in made:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def store_server() -> Iterator[PrivateServer]:
    """The wfe store's own PostgreSQL server, to stop and start mid-run (``pg_server.py``)."""
    with private_server() as server:
        if isinstance(server, str):
            if os.environ.get("WFE_REQUIRE_POSTGRES") == "1":
                pytest.fail(
                    f"WFE_REQUIRE_POSTGRES=1 but no PostgreSQL server can be made: {server}"
                )
            pytest.skip(server)
        yield server


@pytest.fixture(scope="module")
def pg_campaign(
    tmp_path_factory: pytest.TempPathFactory,
    databases: Callable[[str], tuple[str, str]],
    store_server: PrivateServer,
) -> Campaign:
    """The wfe store on a PostgreSQL server of its own, stopped mid-run and started again; metrics
    over OpenTelemetry to a collector that is down (nothing on its port)."""
    tmp = tmp_path_factory.mktemp("kill-points-pg")
    url = store_server.url
    (otel_port,) = free_ports(1)
    effects = tmp / "effects.db"
    env = _env(
        effects,
        AIRFLOW__WFE__STORE_CONN=url,
        AIRFLOW__WFE__SPOOL_PATH=str(tmp / "spool"),
        AIRFLOW__METRICS__OTEL_ON="True",
        AIRFLOW__METRICS__OTEL_HOST="127.0.0.1",
        AIRFLOW__METRICS__OTEL_PORT=str(otel_port),
        AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS="1000",
    )
    cluster = Cluster(
        tmp,
        dags=scenario("kill_points"),
        deadline_s=DEADLINE_S,
        extra_env=env,
        database_url=databases("airflow")[0],
    )
    try:
        upgraded = cluster.wfe("db", "upgrade", timeout=120)
        if upgraded.returncode != 0:
            cluster.fail(f"wfe db upgrade exited with {upgraded.returncode}")
        cluster.start()
        campaign = Campaign(cluster, effects)
        cluster.add_diagnostics(campaign.summary)
        cluster.login()
        campaign.pause(False)
        campaign.trigger(PG_POINT)
        cluster.wait_until(
            "pg_restart runs under way",
            lambda: sum("pg_restart" in c["run_id"] for c in ledger_rows(effects)[0]) >= 5,
            interval=0.5,
        )
        store_server.stop()
        cluster.mark("store server stopped")
        try:
            time.sleep(OUTAGE_S)
        finally:
            store_server.start()
        cluster.mark("store server started again")
        campaign.wait_finished("pg_restart point finished")
        flushed = cluster.wfe("spool", "flush", "--json", timeout=120)
        campaign.notes.append(f"spool flush exit {flushed.returncode}")
        campaign.collect()
    finally:
        with _cpu_reported("PostgreSQL-store cluster"):
            cluster.stop()
    return campaign


@pytest.mark.parametrize("point", TASK_POINTS)
def test_a_task_killed_at_this_point_ends_right(sqlite_campaign: Campaign, point: str) -> None:
    sqlite_campaign.check((point,))


def test_the_scheduler_killed_mid_compensation_and_restarted(sqlite_campaign: Campaign) -> None:
    sqlite_campaign.check((SCHEDULER_POINT,))


def _nothing_spooled(campaign: Campaign) -> None:
    """The fault bit (facts went to the spool: a spool file exists only once one was written), and
    every fact the store could not take reached it later: none waits in the spool."""
    spool = Path(campaign.cluster.env["AIRFLOW__WFE__SPOOL_PATH"])
    if not list(spool.glob("*.jsonl")):
        campaign.cluster.fail(f"no fact was ever spooled in {spool}: the store never went away")
    spooled = campaign.cluster.wfe("spool", "status", "--json")
    if spooled.returncode != 0:
        campaign.cluster.fail(f"wfe spool status exited {spooled.returncode}: {spooled.stderr}")
    waiting = json.loads(spooled.stdout)["pending"]
    if waiting:
        campaign.cluster.fail(f"{waiting} fact(s) still wait in the spool: {spooled.stdout}")


def test_statsd_down_breaks_no_run(sqlite_campaign: Campaign) -> None:
    """Every trial of the SQLite cluster ran with StatsD on (Airflow's and wfe's metrics) and no
    daemon on its port."""
    env = sqlite_campaign.cluster.env
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
    sqlite_campaign.check(tuple({plan["point"] for plan in sqlite_campaign.plans.values()}))


def test_the_postgres_store_server_stopped_and_started_mid_run(pg_campaign: Campaign) -> None:
    pg_campaign.check((PG_POINT,))
    _nothing_spooled(pg_campaign)


def test_the_otel_collector_down_breaks_no_run(pg_campaign: Campaign) -> None:
    """Every trial of the PostgreSQL cluster ran with metrics over OpenTelemetry to a collector
    that is not there (the task processes' exporters were set up for it and could not connect)."""
    port = pg_campaign.cluster.env["AIRFLOW__METRICS__OTEL_PORT"]
    logs = pg_campaign.cluster.home / "logs"
    tried = [
        path
        for path in logs.glob("dag_id=*/**/*.log")
        if f"Connecting to OpenTelemetry Collector at http://127.0.0.1:{port}" in path.read_text()
    ]
    if not tried:
        pg_campaign.cluster.fail(f"no task process set up an OTLP exporter for port {port}")
    pg_campaign.check((PG_POINT,))
