"""The listener's own timers, caught: a UDP StatsD socket that keeps ``wfe.listener.duration.<hook>``.

A governed cluster sends its listener's per-hook timers (``wfe.listener.duration.<hook>``, see
docs/metrics.md) to ``[wfe] statsd_port``; pointing that at :attr:`TimerSink.port` lets a test or a
bench read them back by hook. Both the Celery load test and ``bench/scheduler_mode.py`` use it, so
what counts as a timer is said once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping

__all__ = ["TimerSink"]

#: What precedes the hook's name in a listener timer (after any ``[wfe] statsd_prefix``).
MARKER = ".wfe.listener.duration."


class TimerSink:
    """A UDP StatsD socket collecting listener timers by hook, read on a thread of its own.

    Args:
        also: further timer names to keep, each under the key given (a test's own anchor timer).
        buffer_bytes: the socket's receive buffer; a large one keeps a burst (a thousand tasks
            finishing together) from dropping packets before the thread reads them.
    """

    def __init__(self, also: Mapping[str, str] | None = None, *, buffer_bytes: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if buffer_bytes:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.timings: dict[str, list[float]] = {}
        self._also = dict(also or {})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _key(self, name: str) -> str | None:
        if name in self._also:
            return self._also[name]
        if MARKER in f".{name}":
            return f".{name}".split(MARKER, 1)[1]
        return None

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                continue
            except OSError:
                return
            for line in packet.splitlines():
                name, _, rest = line.partition(":")
                key = self._key(name) if rest.endswith("|ms") else None
                if key is None:
                    continue
                with contextlib.suppress(ValueError), self._lock:
                    self.timings.setdefault(key, []).append(float(rest[:-3].split("|")[0]))

    def counts(self) -> dict[str, int]:
        """How many timers arrived so far, by hook."""
        with self._lock:
            return {key: len(values) for key, values in self.timings.items()}

    def snapshot(self) -> dict[str, list[float]]:
        """A copy of the timers so far, by hook."""
        with self._lock:
            return {key: list(values) for key, values in self.timings.items()}

    def take(self) -> dict[str, list[float]]:
        """The timers collected since the last call, by hook (and forget them)."""
        with self._lock:
            taken, self.timings = self.timings, {}
        return taken

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
