"""Running the same function in several spawned processes released together (concurrency tests).

Workers use the ``spawn`` context (no inherited engines or SQLite handles); each builds its own store,
waits at a shared barrier, and puts ``(worker, "ok" | "error", payload)`` on the results queue.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Barrier
from typing import Any

WORKERS = 8
BARRIER_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 300.0

WorkerResult = tuple[int, str, Any]


def run_workers(
    target: Callable[[str, int, Barrier, multiprocessing.Queue[WorkerResult]], None], url: str
) -> dict[int, Any]:
    """Run ``WORKERS`` spawned processes of ``target``; their results by worker number."""
    context: SpawnContext = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results: multiprocessing.Queue[WorkerResult] = context.Queue()
    processes = [
        context.Process(target=target, args=(url, worker, barrier, results), daemon=True)
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    collected: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in processes:
            try:
                worker, status, payload = results.get(timeout=RESULT_TIMEOUT_S)
            except queue.Empty:
                break
            if status == "ok":
                collected[worker] = payload
            else:
                errors.append(f"worker {worker}:\n{payload}")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    assert sorted(collected) == list(range(WORKERS))
    return collected
