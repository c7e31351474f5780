"""The benchmark harness (``make bench``) still runs: quick mode of two cheap benches, no timings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BENCH_QUICK": "1",
        "BENCH_ONLY": "statsd_send,policy_eval,listener_cost",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| statsd | per metric, server listening |" in done.stdout
    assert "| listener | listener cost per recorded transition, median |" in done.stdout
    assert "policy" in done.stdout
