"""CI/CD: Commit → Build → Test → Risk Assessment → Canary Deploy → Monitoring → Promote or Rollback.

The deployment target is real and on this machine (see ``cicd_target.py``): releases are built into
``$AIRFLOW_HOME/wfe-demo-cicd/releases/<version>``, five hosts each serve the release their
``current`` symlink points at, and a small HTTP service on 127.0.0.1 answers for them, failing the
share of requests the release's ``error_rate`` says.

* **Risk assessment** rates the change (``lines_changed``, the paths it ``touches``) and the
  ``approve_release`` gate asks the ``cicd-release`` policy (``policies/cicd.yaml``): a low-risk
  change is approved automatically, a high-risk one waits for a person in Airflow's "Required
  actions".
* **Canary deploy** switches ``web-1`` to the new release; **monitoring** sends real HTTP requests
  to the canary and to the other hosts and judges the error rates (limit 5%). A release whose
  canary fails too often is **rolled back**: the gate fails, the run fails, and the saga points
  ``web-1`` back at the release it served before (``ls -l .../hosts/web-1/current``).
* **Promote** rolls the release out to the other four hosts in blast-radius waves (25%, 50%,
  100%), each wave checked before the next.

The DAG is tagged ``deployment``, so ``wfe dora`` counts its runs (lead time from the commit step,
change failure rate from the rolled-back ones). Try a bad release or a risky change::

    airflow dags test wfe_example_cicd -c '{"version": "2026.12.3", "error_rate": 0.2}'
    airflow dags trigger wfe_example_cicd -c '{"lines_changed": 900}'   # then approve it in the UI
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from cicd_target import HOSTS, ReleaseService, Target, client, default_root, error_rates, get

from airflow_wfe import CanaryGateOperator, compensate, policy_gate, rollout

#: Paths whose change makes a release high risk, whatever its size.
RISKY_PATHS = ("migrations/", "auth/", "payments/")
#: More changed lines than this is a high-risk change.
RISKY_LINES = 400
CANARY = HOSTS[0]
FLEET = list(HOSTS[1:])


def _params() -> dict[str, Any]:
    return dict(get_current_context()["params"])


def undo_canary(result: dict[str, Any], idempotency_key: str) -> None:
    """Put the canary host back on the release it served before this run."""
    Target(default_root()).restore(result["host"], result["version"], result["old"])


def deploy_host(target: str) -> dict[str, Any]:
    """One host of a wave: switch it to the run's release."""
    version = _params()["version"]
    old = Target(default_root()).switch(target, version)
    return {"host": target, "version": version, "old": old}


def undo_host(result: dict[str, Any], idempotency_key: str) -> None:
    Target(default_root()).restore(result["host"], result["version"], result["old"])


def measure_canary(context: Any) -> dict[str, Any]:
    """Real error rates: 30 batches of 40 requests to the canary, and as many to the fleet."""
    with ReleaseService(Target(default_root())) as service:
        canary = error_rates(service, [CANARY], batches=30, per_batch=40)
        baseline = error_rates(service, FLEET, batches=30, per_batch=40)
    return {"error_rate": {"canary": canary, "baseline": baseline}}


@dag(
    dag_id="wfe_example_cicd",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["wfe", "example", "deployment"],
    default_args={"owner": "platform", "retries": 0, "retry_delay": timedelta(seconds=1)},
    params={
        "version": Param("2026.12.2", type="string", pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$"),
        "error_rate": Param(0.01, type="number", minimum=0, maximum=1),
        "lines_changed": Param(120, type="integer", minimum=0),
        "touches": Param(["web/checkout.py", "web/templates/cart.html"], type="array"),
    },
    doc_md=__doc__,
)
def wfe_example_cicd() -> None:
    @task
    def commit() -> dict[str, Any]:
        """The change under release (from the run's params: what a push hook would send)."""
        params = _params()
        sha = hashlib.sha1(
            f"{params['version']}:{params['lines_changed']}:{params['touches']}".encode()
        ).hexdigest()[:10]
        return {
            "sha": sha,
            "version": params["version"],
            "lines_changed": params["lines_changed"],
            "touches": list(params["touches"]),
        }

    @task
    def build(change: dict[str, Any]) -> str:
        folder = Target(default_root()).build(change["version"], float(_params()["error_rate"]))
        return str(folder)

    @task
    def smoke_test(change: dict[str, Any], built: str) -> dict[str, Any]:
        """Serve the built release and request it: it must answer with its own page."""
        version = change["version"]
        with ReleaseService(Target(default_root())) as service, client(service) as connection:
            answers = [get(connection, f"/releases/{version}/") for _ in range(20)]
        served = [body for status, body in answers if status == 200]
        if not served or version not in served[0]:
            raise RuntimeError(f"release {version} does not serve its page: {answers[:3]}")
        return {"requests": len(answers), "ok": len(served)}

    @task
    def assess_risk(change: dict[str, Any]) -> dict[str, Any]:
        risky = sorted(p for p in change["touches"] if p.startswith(RISKY_PATHS))
        reasons = [f"touches {', '.join(risky)}"] if risky else []
        if change["lines_changed"] > RISKY_LINES:
            reasons.append(f"{change['lines_changed']} lines changed (> {RISKY_LINES})")
        return {
            "risk": "high" if reasons else "low",
            "why": "; ".join(reasons) or "small change, no sensitive path",
            "sha": change["sha"],
        }

    @policy_gate(policies=["cicd-release"])
    def approve_release(risk: dict[str, Any]) -> dict[str, Any]:
        return {"change": risk}

    @task
    def deploy_canary(change: dict[str, Any]) -> dict[str, Any]:
        target = Target(default_root())
        target.ensure_fleet()
        old = target.switch(CANARY, change["version"])
        return {"host": CANARY, "version": change["version"], "old": old}

    @task
    def release_done(change: dict[str, Any]) -> dict[str, Any]:
        fleet = Target(default_root()).fleet()
        behind = sorted(h for h, v in fleet.items() if v != change["version"])
        if behind:
            raise RuntimeError(f"{', '.join(behind)} do not serve {change['version']}: {fleet}")
        return fleet

    change = commit()
    built = build(change)
    tested = smoke_test(change, built)
    risk = assess_risk(change)
    gate = approve_release(risk)
    canary = deploy_canary(change)
    compensate(canary, undo_canary)
    monitoring = CanaryGateOperator(
        task_id="monitoring",
        samples=measure_canary,
        metrics=[{"name": "error_rate", "limit": 0.05, "tolerance": 0.5, "min_samples": 30}],
        poke_interval=5,
        timeout=120,
    )
    promote = rollout(
        deploy_host, targets=FLEET, waves=["25%", "50%", "100%"], undo=undo_host, group_id="promote"
    )
    [tested, gate] >> canary >> monitoring >> promote >> release_done(change)


wfe_example_cicd()
