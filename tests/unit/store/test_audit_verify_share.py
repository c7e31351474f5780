"""Parallel verification shares the partitions out evenly: every partition to exactly one worker,
largest first, so no worker is left with a last large partition while the others idle."""

from __future__ import annotations

from airflow_wfe.store.audit_verify import TrailPlan, share_out


def test_every_partition_goes_to_one_worker_and_the_loads_are_even() -> None:
    sizes = {"main": 10, "p1": 9, "p2": 1, "p3": 1, "p4": 5, "p5": 4}
    plan = TrailPlan(chains=list(sizes), sizes=sizes)
    groups = share_out(plan, 2)
    assert sorted(c for group in groups for c in group) == sorted(sizes)
    loads = sorted(sum(sizes[c] for c in group) for group in groups)
    assert loads == [15, 15]


def test_more_workers_than_partitions_leaves_no_empty_task() -> None:
    plan = TrailPlan(chains=["main", "p1"], sizes={"main": 3})
    groups = share_out(plan, 8)
    assert sorted(map(tuple, groups)) == [("main",), ("p1",)]
