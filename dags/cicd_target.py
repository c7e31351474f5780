"""The deployment target of ``wfe_example_cicd``: versioned releases, hosts, and the HTTP service.

Everything is a directory you can look at (``$AIRFLOW_HOME/wfe-demo-cicd`` unless given another)::

    releases/<version>/release.json   what the build produced: the version and its error share
    releases/<version>/index.html     the page the release serves
    hosts/web-<n>/current             a symlink to the release that host serves
    hosts/web-<n>/previous            a symlink to the release it served before (for a rollback)

A host switches releases by replacing its ``current`` link atomically (``os.replace`` of a fresh
symlink), so a request never sees half a switch. :class:`ReleaseService` is a small stdlib HTTP server
on 127.0.0.1 (a free port) that serves ``/hosts/<host>/`` from whatever that host's ``current``
points at *when the request arrives*, and ``/releases/<version>/`` straight from the release. Each
release answers a configurable share of its requests with HTTP 500 (``error_rate`` in its
``release.json``); which requests fail is decided by a hash of the release and the request's number,
so the same requests get the same answers in every run, and the canary's figures are reproducible.

The example's tasks start the service in a thread for as long as they need it (the smoke test, the
canary's measurements), so no process outlives its task. To look at a target yourself::

    python dags/cicd_target.py            # serves $AIRFLOW_HOME/wfe-demo-cicd until Ctrl-C
    curl http://127.0.0.1:<port>/hosts/web-1/
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The hosts of the demo fleet; the first is the canary.
HOSTS = tuple(f"web-{n}" for n in range(1, 6))
#: What every host serves before the first deployment (a healthy release: 1% of errors).
INITIAL_RELEASE = ("2026.11.0", 0.01)


def default_root() -> Path:
    """Where the target lives: ``$AIRFLOW_HOME/wfe-demo-cicd``."""
    return Path(os.environ.get("AIRFLOW_HOME", ".")) / "wfe-demo-cicd"


@dataclass(frozen=True)
class Target:
    """The release directories and hosts under ``root``."""

    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    def host(self, name: str) -> Path:
        if name not in HOSTS:
            raise ValueError(f"unknown host {name!r}; the fleet is {', '.join(HOSTS)}")
        return self.root / "hosts" / name

    def build(self, version: str, error_rate: float) -> Path:
        """Write release ``version`` (idempotent: a rebuild writes the same files)."""
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate of release {version} is {error_rate}; give 0..1")
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"release version {version!r} is not a plain name")
        folder = self.releases / version
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"version": version, "error_rate": error_rate}
        (folder / "release.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "index.html").write_text(
            f"<!doctype html><title>shop {version}</title><h1>shop {version}</h1>\n"
        )
        return folder

    def release(self, version: str) -> dict[str, Any]:
        """A built release's ``release.json``."""
        path = self.releases / version / "release.json"
        if not path.is_file():
            raise FileNotFoundError(f"release {version} was never built (no {path})")
        return dict(json.loads(path.read_text()))

    def current(self, host: str) -> str | None:
        """The version ``host`` serves, or None when it serves nothing."""
        link = self.host(host) / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def previous(self, host: str) -> str | None:
        link = self.host(host) / "previous"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def _link(self, host: str, name: str, version: str | None) -> None:
        folder = self.host(host)
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / name
        if version is None:
            link.unlink(missing_ok=True)
            return
        fresh = folder / f".{name}.{os.getpid()}.tmp"
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(Path("..", "..", "releases", version))
        os.replace(fresh, link)

    def switch(self, host: str, version: str) -> str | None:
        """Point ``host`` at ``version`` (remembering what it served); returns the old version."""
        self.release(version)  # refuse a release that was never built
        old = self.current(host)
        if old == version:
            return old
        if old is not None:
            self._link(host, "previous", old)
        self._link(host, "current", version)
        return old

    def restore(self, host: str, version: str, old: str | None) -> None:
        """Undo :meth:`switch`: ``host`` serves ``old`` again if it still serves ``version``
        (idempotent: a second call, or a host something newer went to since, is left alone)."""
        if self.current(host) != version or old == version:
            return
        self._link(host, "current", old)

    def ensure_fleet(self) -> None:
        """Give every host the initial release if it serves nothing yet (the first run ever)."""
        version, error_rate = INITIAL_RELEASE
        if not (self.releases / version / "release.json").is_file():
            self.build(version, error_rate)
        for host in HOSTS:
            if self.current(host) is None:
                self._link(host, "current", version)

    def fleet(self) -> dict[str, str | None]:
        """What each host serves."""
        return {host: self.current(host) for host in HOSTS}


def _fails(version: str, number: int, error_rate: float) -> bool:
    """Whether request ``number`` to ``version`` fails: a hash as a uniform draw, reproducible."""
    digest = hashlib.sha256(f"{version}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < error_rate


class ReleaseService:
    """The target's HTTP service, on 127.0.0.1 and a free port, in a daemon thread.

    Use it as a context manager; :attr:`url` is its base address while it runs.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the release service is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _answer(self, path: str) -> tuple[int, bytes]:
        parts = [p for p in path.split("?", maxsplit=1)[0].split("/") if p]
        if len(parts) < 2 or parts[0] not in ("hosts", "releases"):
            return 404, b"try /hosts/<host>/ or /releases/<version>/\n"
        try:
            version = self.target.current(parts[1]) if parts[0] == "hosts" else parts[1]
            meta = self.target.release(version) if version else None
        except (ValueError, FileNotFoundError) as exc:
            return 404, f"{exc}\n".encode()
        if meta is None:
            return 503, f"{parts[1]} serves no release\n".encode()
        with self._lock:
            number = self._served.get(meta["version"], 0)
            self._served[meta["version"]] = number + 1
        if _fails(meta["version"], number, float(meta["error_rate"])):
            return 500, f"release {meta['version']} failed request {number}\n".encode()
        page = self.target.releases / meta["version"] / "index.html"
        return 200, page.read_bytes()

    def __enter__(self) -> ReleaseService:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the canary sends thousands of requests
            # Headers and body are two writes: with Nagle's algorithm and delayed ACKs each
            # keep-alive request would wait ~40 ms for the second one.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                status, body = service._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # one line per request would drown the task log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="release-service", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextlib.contextmanager
def client(service: ReleaseService) -> Iterator[Any]:
    """A keep-alive HTTP connection to the service, closed on the way out."""
    from http.client import HTTPConnection

    host, port = service.url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        yield connection
    finally:
        connection.close()


def get(connection: Any, path: str) -> tuple[int, str]:
    """GET ``path`` on a connection from :func:`client`: the status and the body."""
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def error_rates(
    service: ReleaseService, hosts: Sequence[str], *, batches: int, per_batch: int
) -> list[float]:
    """The share of failed requests in each of ``batches`` batches of ``per_batch`` real requests,
    spread over ``hosts`` in turn."""
    rates = []
    with client(service) as connection:
        for _ in range(batches):
            failed = 0
            for number in range(per_batch):
                status, _ = get(connection, f"/hosts/{hosts[number % len(hosts)]}/")
                failed += status >= 500
            rates.append(failed / per_batch)
    return rates


if __name__ == "__main__":
    import sys
    import time

    where = Path(sys.argv[1]) if len(sys.argv) > 1 else default_root()
    target = Target(where)
    with ReleaseService(target) as running:
        print(f"serving {where} on {running.url}  (Ctrl-C to stop)")
        for name, version in target.fleet().items():
            print(f"  {running.url}/hosts/{name}/  -> {version or 'nothing'}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
