"""A PostgreSQL server of a test's own, to stop and start again mid-run.

The fault tests need a store whose server really goes away (every session cut, the port closed,
a restart's crash-safe recovery) and comes back, while Airflow's metadata database, the other tests'
databases and anything else on the machine's shared server (127.0.0.1:5432) stay up. So the test
makes its own cluster with the machine's PostgreSQL binaries (Debian's ``postgresql`` package, the
same one that runs the shared server): ``initdb`` into a temporary folder, ``pg_ctl start`` on a free
port, and ``pg_ctl stop -m fast`` / ``start`` for the fault, exactly as an operator's restart does.

PostgreSQL refuses to run as root, so when the test runs as root the server runs as the ``postgres``
system user (``runuser``). Where no binaries or no such user exist, :func:`private_server` says why,
and the caller skips (or fails, under ``WFE_REQUIRE_POSTGRES=1`` in CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cluster import free_ports

__all__ = ["PrivateServer", "private_server", "server_binaries"]


def server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest installed major), if any."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        folder = Path(found)
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            return None
    return Path(shutil.which("pg_ctl") or "").parent


@dataclass
class PrivateServer:
    """One throwaway cluster: its data folder, port and the user its processes run as."""

    binaries: Path
    data: Path
    port: int
    user: str | None  # ``postgres`` when the test runs as root, else the test's own user

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of its ``postgres`` database (trust authentication, loopback only)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.binaries / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.data.parent / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} exited with {done.returncode}: "
                f"{done.stderr.strip() or done.stdout.strip()}\n{tail}"
            )

    def start(self) -> None:
        """Start it and wait until it takes connections (``pg_ctl -w``)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} "
            "-c fsync=on -c max_connections=200"
        )
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.data.parent / "server.log"), "-o", options,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop it as an operator's restart does: ``-m fast`` rolls back every open transaction,
        cuts every session and closes the port until :meth:`start`."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))

    def log(self) -> str:
        log = self.data.parent / "server.log"
        return log.read_text(errors="replace") if log.exists() else ""


@contextmanager
def private_server() -> Iterator[PrivateServer | str]:
    """A started :class:`PrivateServer`, removed afterwards; or, where one cannot be made here, the
    reason (a string) for the caller to skip with."""
    binaries = server_binaries()
    if binaries is None:
        yield "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
        return
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield "running as root and there is no 'postgres' user to run a server as"
            return
        if shutil.which("runuser") is None:
            yield "running as root and there is no runuser to run a server as 'postgres'"
            return
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="wfe-pg-"))
    try:
        if user is not None:
            shutil.chown(folder, user=user, group=None)
            os.chmod(folder, 0o700)
        (port,) = free_ports(1)
        server = PrivateServer(binaries=binaries, data=folder / "data", port=port, user=user)
        server._run(
            "initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", timeout=120,
        )  # fmt: skip
        server.start()
        try:
            yield server
        finally:
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
