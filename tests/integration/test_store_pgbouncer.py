"""A PostgreSQL store behind a real PgBouncer, in session and in transaction pooling.

Airflow's Helm chart puts PgBouncer in front of its databases, and a platform team points the
state store at it too. PgBouncer refuses the startup ``options`` the store sends its server bounds
in, so the store could not connect through it at all ("unsupported startup parameter: options").
Now the first refusal switches the engine to ``SET`` on each connection, without psycopg's
server-side prepared statements (airflow_wfe/store/server_settings.py).

Needs Debian's ``pgbouncer`` and the PostgreSQL server of the other tests; .ci/run installs it and
sets WFE_REQUIRE_PGBOUNCER=1, where a missing binary is a failure, not a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from airflow_wfe.core.metrics import NullEmitter
from airflow_wfe.core.states import RunState, StepState
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store import SqlStore
from airflow_wfe.store import engine as engine_module
from airflow_wfe.store.engine import StoreBounds, configure_bounds, dispose_engines, get_engine

pytestmark = pytest.mark.slow

WRITERS = 4
STEPS = 12


def _binary() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )
    if found is None:
        if os.environ.get("WFE_REQUIRE_PGBOUNCER") == "1":
            pytest.fail("WFE_REQUIRE_PGBOUNCER=1 but pgbouncer is not installed")
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def pgbouncer(server_url: str, pool_mode: str) -> Iterator[str]:
    """A PgBouncer in front of ``server_url``'s server; yields the same URL through it.

    Its files are in a folder of their own under the system's temporary folder, which the
    ``postgres`` user PgBouncer then runs as can reach (pytest's ``tmp_path`` is private to root).
    """
    binary = _binary()
    server = make_url(server_url)
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="wfe-pgbouncer-"))
    # A session holds its server connection until it ends: as many as the process's engine may
    # open. A transaction holds one only while it runs: fewer than the clients, as deployed.
    pool_size = 10 if pool_mode == "session" else 3
    (folder / "users.txt").write_text(f'"{server.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 50\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (folder, *folder.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (folder / "pgbouncer.log").read_text()
                        if (folder / "pgbouncer.log").exists()
                        else ""
                    )
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"pgbouncer did not start: {output} {log}")
                time.sleep(0.1)
        yield server.set(port=port).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def short_bounds() -> Iterator[StoreBounds]:
    previous = configure_bounds(StoreBounds(connect=3.0, statement=1.0, lock=1.0))
    try:
        yield engine_module.bounds()
    finally:
        configure_bounds(previous)
        dispose_engines()


def _write_steps(url: str, writer: int, errors: list[BaseException]) -> None:
    try:
        recorder = Recorder(SqlStore(url), NullEmitter())
        for index in range(STEPS):
            for state in (StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED):
                recorder.step(
                    "bounced",
                    "manual__1",
                    f"task_{writer}",
                    state,
                    actor=f"worker-{writer}",
                    map_index=index,
                    try_number=1,
                )
    except BaseException as exc:  # the assertion below names it
        errors.append(exc)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_a_store_behind_pgbouncer_records_concurrent_writers(
    pg_url: str,
    pool_mode: str,
    tmp_path: Path,
    short_bounds: StoreBounds,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Four threads record 36 transitions each through PgBouncer (in transaction pooling more
    client connections than PgBouncer has server connections), each statement far more often
    than psycopg's prepare threshold: every transition is stored once, the run's steps all end
    SUCCEEDED, the bounds are in force on the server, and one warning names the switch."""
    with pgbouncer(pg_url, pool_mode) as url:
        recorder = Recorder(SqlStore(url), NullEmitter())
        recorder.run_started("bounced", "manual__1", actor="scheduler", reason="started")
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_write_steps, args=(url, writer, errors))
            for writer in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        run = SqlStore(url).get_run("bounced", "manual__1")
        assert run is not None
        assert run.state == RunState.RUNNING
        assert len(run.steps) == WRITERS * STEPS
        assert {step.state for step in run.steps} == {StepState.SUCCEEDED.value}
        with get_engine(url).connect() as connection:
            transitions = connection.execute(
                text("SELECT count(*) FROM wfe_transition WHERE step_pk IS NOT NULL")
            ).scalar()
            timeout = connection.execute(text("SHOW statement_timeout")).scalar()
        assert transitions == WRITERS * STEPS * 3
        if pool_mode == "session":  # a session setting is exact only where the session is
            assert timeout == "1s"
    refused = [r for r in caplog.records if "refused startup options" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]


def test_the_statement_bound_holds_behind_pgbouncer(
    pg_url: str, tmp_path: Path, short_bounds: StoreBounds
) -> None:
    """With session pooling the server still cancels a statement at the store's bound (1 s here),
    and the store reports it as the bound that ran out."""
    with pgbouncer(pg_url, "session") as url:
        store = SqlStore(url)
        assert store.list_runs(limit=1) == []
        started = time.monotonic()
        with (
            pytest.raises(OperationalError, match="statement timeout"),
            get_engine(url).connect() as connection,
        ):
            connection.execute(text("SELECT pg_sleep(10)"))
        assert time.monotonic() - started < 8
