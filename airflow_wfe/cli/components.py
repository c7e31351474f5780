"""Airflow's components (API server, dag-processor, scheduler) as child processes of a command.

``wfe demo`` runs its examples the way production does: a scheduler with the LocalExecutor forking
one process per task, tasks talking to the API server's Execution API, a dag-processor parsing the
DAGs folder. Each component is ``airflow <component>`` from this interpreter's environment, in a
process group of its own (so stopping it also stops the workers it forked), its output in a log
file. Stopping is SIGTERM to the group, then SIGKILL after a grace period: nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["COMPONENTS", "Components", "free_port"]

#: Each component's ``airflow`` arguments, in start order (the API server's address is added).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server",),
    "dag-processor": ("dag-processor",),
    # --skip-serve-logs: the log server would otherwise bind 0.0.0.0:8793.
    "scheduler": ("scheduler", "--skip-serve-logs"),
}
STOP_GRACE_S = 10.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_executable() -> str:
    """This environment's ``airflow`` (next to the running interpreter), else the one on PATH."""
    return shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"


class Components:
    """Started components, by name; a context manager that stops them on the way out."""

    def __init__(self, env: Mapping[str, str], logs: Path, *, api_port: int) -> None:
        self.env = dict(env)
        self.logs = logs
        self.api_port = api_port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, names: Sequence[str] = tuple(COMPONENTS)) -> None:
        """Start ``names`` (see :data:`COMPONENTS`), each logging to ``<logs>/<name>.log``."""
        for name in names:
            args = COMPONENTS[name]
            if name == "api-server":
                args = (*args, "-H", "127.0.0.1", "-p", str(self.api_port), "-w", "1")
            with (self.logs / f"{name}.log").open("ab") as out:
                self.processes[name] = subprocess.Popen(
                    [airflow_executable(), *args],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )

    def exited(self) -> dict[str, int]:
        """The components that are no longer running, with their exit codes."""
        return {
            name: code for name, proc in self.processes.items() if (code := proc.poll()) is not None
        }

    def stop(self) -> None:
        """SIGTERM every component's process group, SIGKILL whatever outlives the grace period."""
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        grace_end = time.monotonic() + STOP_GRACE_S
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, grace_end - time.monotonic()))
        for proc in self.processes.values():
            # Also reaches the children that stayed (LocalExecutor workers, parsing processes).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> Components:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
