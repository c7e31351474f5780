"""The REST API's run list and the run page, through Airflow's own API app, at scale.

Goals of issue 16: ``GET /wfe/api/v1/runs`` and the runs page (``/wfe/ui/runs``, which also counts
the matching runs) answer in ≤ 50 ms p99 with 100,000 runs in the store (index-backed keyset pages),
and the page of a run with 200 steps and 2,000 audit events renders in ≤ 200 ms. Requests go through Airflow's app in process (``create_app()``, a ``TestClient``): JWT
authentication, the auth manager's DAG rights, our routes, the store on SQLite, the JSON or the
Jinja2 page; only the network is left out. Each run of a figure times a series of requests and
reports their p99 (the run page: its p99 over 30 renders); the table shows the median, min and max
of those over the runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bench.common import emit, percentile, quick, runs, scratch_home, summarise

AREA = "api & pages"
KEY = "bench-only-hmac-key-0123456789abcdef"
DAGS = 50
BIG_DAG, BIG_RUN = "bench_big", "manual__2026-12-01T00:00:00+00:00"


def _fill_runs(url: str, count: int) -> None:
    """``count`` runs over ``DAGS`` DAGs, one second apart, written in bulk (their history is not
    what the list reads)."""
    from sqlalchemy import insert

    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.engine import get_engine
    from airflow_wfe.store.tables import run_table

    SqlStore(url).count_runs()  # creates the schema
    start = datetime(2026, 1, 1, tzinfo=UTC)
    states = ("COMPLETED",) * 17 + ("FAILED", "COMPENSATED", "RUNNING")
    rows = [
        {
            "dag_id": f"bench_dag_{i % DAGS:02d}",
            "run_id": f"scheduled__{i:07d}",
            "state": states[i % len(states)],
            "version": 1,
            "run_type": "scheduled",
            "created_at": start + timedelta(seconds=i),
            "updated_at": start + timedelta(seconds=i, milliseconds=500),
        }
        for i in range(count)
    ]
    with get_engine(url).begin() as connection:
        for chunk in range(0, count, 10_000):
            connection.execute(insert(run_table), rows[chunk : chunk + 10_000])


def _fill_big_run(url: str, steps: int, moves_per_step: int) -> None:
    """One run with ``steps`` steps of ``moves_per_step`` transitions each, every transition
    written with its audit event through the store's one write path."""
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.core.records import Move
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    store = SqlStore(url, audit=AuditLog(signer=HmacSigner(KEY.encode())))
    run_moves = [Move("CREATED", None), Move("VALIDATED", None), Move("RUNNING", None)]
    store.advance_run(BIG_DAG, BIG_RUN, lambda _c: run_moves, actor="bench")
    path = ["PENDING", "RUNNING"] + ["RETRYING", "RUNNING"] * ((moves_per_step - 2) // 2)
    for s in range(steps):
        for to in path:
            store.advance_step(
                BIG_DAG,
                BIG_RUN,
                f"step_{s:03d}",
                -1,
                lambda _c, _t, to=to: [Move(to, "bench")],
                actor="worker",
            )


def _p99_ms(client: Any, headers: dict[str, str], urls: list[str]) -> float:
    times = []
    for url in urls:
        started = time.perf_counter()
        answer = client.get(url, headers=headers)
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {url} answered {answer.status_code}: {answer.text[:300]}")
    return 1000 * percentile(times, 0.99)


def _cursor_urls(client: Any, headers: dict[str, str], first: str, pages: int) -> list[str]:
    urls, url = [first], first
    for _ in range(pages - 1):
        following = client.get(url, headers=headers).headers.get("x-next-cursor")
        if not following:
            break
        url = f"{first}&cursor={following}"
        urls.append(url)
    return urls


def main() -> None:
    home = scratch_home("api-pages-")
    os.environ.update(
        {
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-only-jwt-secret-0123456789abcdef-0123456789",
            "AIRFLOW__WFE__AUDIT_SIGNING_KEY": KEY,
        }
    )
    total = 2_000 if quick() else 100_000
    steps, moves = (20, 10) if quick() else (200, 10)
    url = f"sqlite:///{home}/wfe.db"
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
    )
    begun = time.perf_counter()
    _fill_runs(url, total)
    _fill_big_run(url, steps, moves)
    print(f"api_pages: store filled in {time.perf_counter() - begun:.0f} s", file=sys.stderr)

    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    api = "/wfe/api/v1/runs"
    series: dict[str, list[float]] = {
        k: [] for k in ("first", "deep", "one", "three", "ui", "ui_one", "page")
    }
    with TestClient(create_app()) as client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="b", role="admin"))
        headers = {"Authorization": f"Bearer {token}"}
        requests = 20 if quick() else 200
        deep = _cursor_urls(client, headers, f"{api}?limit=50", requests)
        one = _cursor_urls(client, headers, f"{api}?limit=50&dag_id=bench_dag_07", requests // 4)
        three = "&".join(f"dag_id=bench_dag_{d:02d}" for d in (3, 17, 41))
        three_urls = _cursor_urls(client, headers, f"{api}?limit=50&{three}", requests // 4)
        page = f"/wfe/ui/runs/{BIG_DAG}/{quote(BIG_RUN, safe='')}"
        html = client.get(page, headers=headers)
        if html.status_code != 200 or html.text.count("<tr>") < steps:
            raise RuntimeError(f"the run page answered {html.status_code}: {html.text[:300]}")
        for _ in range(runs()):
            series["first"].append(_p99_ms(client, headers, [f"{api}?limit=50"] * requests))
            series["deep"].append(_p99_ms(client, headers, deep))
            series["one"].append(_p99_ms(client, headers, one * 4))
            series["three"].append(_p99_ms(client, headers, three_urls * 4))
            series["ui"].append(_p99_ms(client, headers, ["/wfe/ui/runs?limit=50"] * requests))
            ui_one = "/wfe/ui/runs?limit=50&dag_id=bench_dag_07"
            series["ui_one"].append(_p99_ms(client, headers, [ui_one] * (requests // 4)))
            series["page"].append(_p99_ms(client, headers, [page] * (5 if quick() else 30)))
    size = f"{total:,} runs"
    list_goal: dict[str, Any] = {"goal": "≤ 50 ms p99", "check": lambda v: v <= 50}
    emit(
        [
            summarise(
                AREA,
                f"GET /runs, first page of 50 ({size})",
                "ms p99",
                series["first"],
                note="through Airflow's app: JWT, rights, keyset page, JSON",
                **list_goal,
            ),
            summarise(
                AREA,
                f"GET /runs, each of the first {len(deep)} pages by cursor ({size})",
                "ms p99",
                series["deep"],
                note="a deep page costs what the first does",
                **list_goal,
            ),
            summarise(
                AREA,
                f"GET /runs?dag_id=one DAG, {len(one)} pages ({size} over {DAGS} DAGs)",
                "ms p99",
                series["one"],
                **list_goal,
            ),
            summarise(
                AREA,
                f"GET /runs with 3 DAGs (a user's readable set), {len(three_urls)} pages",
                "ms p99",
                series["three"],
                **list_goal,
            ),
            summarise(
                AREA,
                f"runs page (/wfe/ui/runs), first page of 50 and the count ({size})",
                "ms p99",
                series["ui"],
                note="HTML: keyset page, count over the index, Jinja2",
                **list_goal,
            ),
            summarise(
                AREA,
                f"runs page of one DAG, first page and the count ({size} over {DAGS} DAGs)",
                "ms p99",
                series["ui_one"],
                **list_goal,
            ),
            summarise(
                AREA,
                f"run page, {steps} steps and {steps * moves:,} audit events",
                "ms p99",
                series["page"],
                goal="≤ 200 ms",
                check=lambda v: v <= 200,
                note="GET /wfe/ui/runs/...: store reads, SVG state machine and timeline, Jinja2; "
                "the newest 200 events shown, all hash-checked",
            ),
        ]
    )


if __name__ == "__main__":
    main()
