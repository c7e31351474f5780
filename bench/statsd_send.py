"""StatsD cost per metric through the emitter, to a server that reads and to no server at all.

"No server" is a closed UDP port on loopback: the kernel answers with ICMP port-unreachable, which
is what a StatsD outage looks like; a send must cost the same then.
"""

from __future__ import annotations

import socket

from bench.common import emit, quick, runs, summarise, timed

AREA = "statsd"


def _closed_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def per_metric_us(port: int, sends: int, *, tags: bool) -> list[float]:
    from airflow_wfe.core.metrics.emitter import MetricsSettings, StatsdEmitter

    emitter = StatsdEmitter(MetricsSettings(statsd_on=True, host="127.0.0.1", port=port, tags=tags))
    labels = {"dag_id": "bench_dag", "step": "load"}
    values = []
    for _ in range(runs()):

        def send_all() -> None:
            for _ in range(sends):
                emitter.incr("wfe.step.state.succeeded", tags=labels)

        elapsed = timed(send_all)
        values.append(elapsed / sends * 1e6)
    return values


def main() -> None:
    sends = 2000 if quick() else 50_000
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    listening = int(sink.getsockname()[1])
    closed = _closed_port()
    goal, check = "≤ 20", (lambda v: v <= 20.0)
    note = f"{sends:,} counters per run; anchor: 5–6 µs per raw send"
    emit(
        [
            summarise(
                AREA,
                "per metric, server listening",
                "µs",
                per_metric_us(listening, sends, tags=False),
                goal=goal,
                check=check,
                note=note,
            ),
            summarise(
                AREA,
                "per metric, no server (closed port)",
                "µs",
                per_metric_us(closed, sends, tags=False),
                goal=goal,
                check=check,
            ),
            summarise(
                AREA,
                "per metric with DogStatsD tags, server listening",
                "µs",
                per_metric_us(listening, sends, tags=True),
                goal=goal,
                check=check,
            ),
        ]
    )
    sink.close()


if __name__ == "__main__":
    main()
