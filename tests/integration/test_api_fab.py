"""DAG-level access through Airflow's FAB auth manager, against a real ``airflow api-server``.

SimpleAuthManager knows roles only: a viewer reads every DAG. FAB grants rights DAG by DAG
(``DAG:<dag_id>`` resources), which is what "a user who cannot read a DAG sees none of its runs,
events or costs, in lists, counts and exports too" has to hold against. The user ``one`` may read
(and edit) ``fab_open`` only; ``viewer`` has FAB's Viewer role (every DAG); ``admin`` everything.

FAB cannot live in the project's venv: ``apache-airflow-providers-fab`` 3.10.2 needs
flask-appbuilder 5.2.2, which needs ``python-dateutil<3``, and ``constraints.txt`` pins 4.0.0
(older FAB providers need SQLAlchemy < 2). So this test runs the components from a venv of their
own, named by ``WFE_FAB_VENV`` (made by ``.ci/run``: Airflow 3.3.2, the FAB provider, this
package); without it the test is skipped, saying how to make one (a failure under
``WFE_REQUIRE_FAB=1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cluster import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

OPEN_DAG, SECRET_DAG = "fab_open", "fab_secret"
AUDIT_KEY = "fab-test-hmac-key-0123456789abcdef-0123"
PASSWORDS = {"admin": "admin-pw-1", "viewer": "viewer-pw-1", "one": "one-pw-1"}
API = "/wfe/api/v1"

DAG_FILE = """\
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for dag_id in ("fab_open", "fab_secret"):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1)):
        EmptyOperator(task_id="noop")
"""

#: Run with the FAB venv's Python: a role with read and edit on one DAG, and the three users.
SETUP = """\
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

passwords = json.loads(sys.argv[1])
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    one = sm.find_role("wfe_one_dag") or sm.add_role("wfe_one_dag")
    for action, resource in [
        ("can_read", "DAG:fab_open"), ("can_edit", "DAG:fab_open"),
        ("can_read", "DAG Runs"), ("can_edit", "DAG Runs"), ("can_read", "Audit Logs"),
    ]:
        sm.add_permission_to_role(one, sm.create_permission(action, resource))
    for name, role in (("admin", "Admin"), ("viewer", "Viewer"), ("one", "wfe_one_dag")):
        found = sm.find_role(role)
        assert found is not None, role
        sm.add_user(name, name, "tester", f"{name}@example.com", found, password=passwords[name])
    print("users ready")
"""


def _fab_venv() -> Path:
    venv = os.environ.get("WFE_FAB_VENV", "")
    missing = None
    if not venv:
        missing = "WFE_FAB_VENV is not set"
    elif not (Path(venv) / "bin" / "airflow").is_file():
        missing = f"WFE_FAB_VENV={venv} has no bin/airflow"
    if missing:
        how = (
            f"{missing}: the FAB provider cannot be installed beside constraints.txt "
            "(flask-appbuilder needs python-dateutil<3); make a venv with apache-airflow==3.3.2, "
            "apache-airflow-providers-fab and this package (see .ci/run) and name it there"
        )
        if os.environ.get("WFE_REQUIRE_FAB") == "1":
            pytest.fail(f"WFE_REQUIRE_FAB=1 but {how}", pytrace=False)
        pytest.skip(how)
    return Path(venv)


class Fab:
    """The running API server and a token per user."""

    def __init__(self, cluster: Cluster, tokens: dict[str, str], runs: dict[str, list[str]]):
        self.cluster = cluster
        self.tokens = tokens
        self.runs = runs

    def call(self, method: str, path: str, user: str | None, body: Any = None) -> tuple[int, str]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.cluster.base_url + path, data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if user:
            request.add_header("Authorization", f"Bearer {self.tokens[user]}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def get_json(self, path: str, user: str) -> Any:
        status, text = self.call("GET", path, user)
        assert status == 200, (path, user, status, text[:500])
        return json.loads(text)


def _record_runs(cluster: Cluster) -> dict[str, list[str]]:
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.core.records import Move
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    store = SqlStore(
        f"sqlite:///{cluster.home / 'wfe.db'}",
        audit=AuditLog(signer=HmacSigner(AUDIT_KEY.encode())),
    )
    runs: dict[str, list[str]] = {OPEN_DAG: [], SECRET_DAG: []}
    for dag_id, count in ((OPEN_DAG, 3), (SECRET_DAG, 2)):
        for i in range(count):
            run_id = f"manual__{dag_id}_{i}"
            moves = [Move("CREATED", None), Move("VALIDATED", None), Move("RUNNING", None)]
            store.advance_run(dag_id, run_id, lambda _c, m=moves: m, actor="scheduler")
            end = [Move("COMPLETED", f"{dag_id} done")]
            store.advance_run(dag_id, run_id, lambda _c, e=end: e, actor="scheduler")
            runs[dag_id].append(run_id)
    return runs


@pytest.fixture(scope="module")
def fab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fab]:
    venv = _fab_venv()
    import cluster as cluster_module

    tmp_path = tmp_path_factory.mktemp("fab")
    source = tmp_path / "source-dags"
    source.mkdir()
    (source / "fab_dags.py").write_text(DAG_FILE)
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        ),
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": AUDIT_KEY,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cluster_module, "BIN", venv / "bin")
        with Cluster.running(
            tmp_path, dags=source, deadline_s=150.0, components=("api-server",), extra_env=env
        ) as cluster:
            cluster.run_cli("reserialize", "dags", "reserialize", timeout=180)
            setup = subprocess.run(
                [str(venv / "bin" / "python"), "-c", SETUP, json.dumps(PASSWORDS)],
                env=cluster.env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            if setup.returncode != 0:
                cluster.fail(f"FAB users could not be made:\n{setup.stdout}\n{setup.stderr}")
            runs = _record_runs(cluster)
            cluster.wait_until(
                "the API server", lambda: cluster.request("GET", "/api/v2/version")[0] == 200
            )
            tokens = {}
            for user, password in PASSWORDS.items():
                status, body = cluster.request(
                    "POST", "/auth/token", {"username": user, "password": password}
                )
                if status != 201:
                    cluster.fail(f"POST /auth/token for {user} answered {status}: {body}")
                tokens[user] = body["access_token"]
            cluster.mark("FAB users signed in")
            yield Fab(cluster, tokens, runs)


def test_a_user_with_one_dag_lists_and_counts_only_its_runs(fab: Fab) -> None:
    listed = fab.get_json(f"{API}/runs?limit=100", "one")
    assert sorted(r["run_id"] for r in listed) == sorted(fab.runs[OPEN_DAG])
    assert {r["dag_id"] for r in fab.get_json(f"{API}/runs?limit=100", "viewer")} == {
        OPEN_DAG,
        SECRET_DAG,
    }
    status, _ = fab.call("GET", f"{API}/runs?dag_id={SECRET_DAG}", "one")
    assert status == 403
    status, page = fab.call("GET", "/wfe/ui/runs", "one")
    assert status == 200
    assert "3 runs match" in page
    assert SECRET_DAG not in page
    status, overview = fab.call("GET", "/wfe/ui/", "one")
    assert status == 200
    assert SECRET_DAG not in overview
    assert OPEN_DAG in overview


def test_a_user_with_one_dag_reads_its_runs_and_not_the_others(fab: Fab) -> None:
    mine, theirs = fab.runs[OPEN_DAG][0], fab.runs[SECRET_DAG][0]
    for path in ("", "/audit", "/decisions"):
        assert fab.call("GET", f"{API}/runs/{OPEN_DAG}/{mine}{path}", "one")[0] == 200, path
        assert fab.call("GET", f"{API}/runs/{SECRET_DAG}/{theirs}{path}", "one")[0] == 403, path
    assert fab.call("GET", f"/wfe/ui/runs/{OPEN_DAG}/{quote(mine)}", "one")[0] == 200
    assert fab.call("GET", f"/wfe/ui/runs/{SECRET_DAG}/{quote(theirs)}", "one")[0] == 403


def test_the_whole_trail_needs_every_dag_and_one_dag_exports_its_own(fab: Fab) -> None:
    # FAB gives the audit log to Admin only; artifacts serve every DAG, which Viewer reads.
    for path in ("/audit/verify", "/audit/export", "/artifacts"):
        assert fab.call("GET", f"{API}{path}", "one")[0] == 403, path
        assert fab.call("GET", f"{API}{path}", "admin")[0] == 200, path
    assert fab.call("GET", f"{API}/audit/verify", "viewer")[0] == 403
    assert fab.call("GET", f"{API}/artifacts", "viewer")[0] == 200
    status, lines = fab.call("GET", f"{API}/audit/export?dag_id={OPEN_DAG}", "one")
    assert status == 200
    assert OPEN_DAG in lines
    assert SECRET_DAG not in lines
    assert fab.call("GET", f"{API}/audit/export?dag_id={SECRET_DAG}", "one")[0] == 403
    status, trail = fab.call("GET", "/wfe/ui/audit", "one")
    assert status == 200
    assert SECRET_DAG not in trail
    assert "Verified" not in trail
    assert f"dag_id={OPEN_DAG}" in trail
    status, trail = fab.call("GET", "/wfe/ui/audit", "admin")
    assert "<strong>Verified</strong>" in trail
    for page in ("/wfe/ui/artifacts", "/wfe/ui/policies"):
        assert fab.call("GET", page, "one")[0] == 403, page
    # Acting on the whole trail needs edit on every DAG; one DAG's edit right is not that.
    assert fab.call("POST", f"{API}/audit/checkpoint", "one", {})[0] == 403
    assert fab.call("POST", f"{API}/audit/checkpoint", "admin", {})[0] == 200


def test_every_endpoint_hides_the_other_dag_from_a_one_dag_user(fab: Fab) -> None:
    """Generated from the OpenAPI schema, as with SimpleAuthManager: a route naming the DAG is 403,
    a trail-wide or artifact route is 403, a list answers without a trace of it; no token is 401."""
    schema = fab.get_json(f"{API}/openapi.json", "one")
    values = {
        "dag_id": SECRET_DAG,
        "run_id": fab.runs[SECRET_DAG][0],
        "task_id": "no_such_gate",
        "name": "no/such/artifact",
    }
    checked = {}
    for template, operations in schema["paths"].items():
        path = "/wfe" + template
        for key, value in values.items():
            path = path.replace(f"{{{key}}}", value).replace(f"{{{key}:path}}", value)
        for method in operations:
            verb = method.upper()
            body = {} if verb == "POST" else None
            assert fab.call(verb, path, None, body)[0] == 401, (verb, template)
            status, text = fab.call(verb, path, "one", body)
            if verb != "GET" or "{dag_id}" in template:
                assert status == 403, (verb, template, text[:300])
            elif "/artifacts" in template or template.endswith(("/audit/export", "/audit/verify")):
                assert status == 403, (template, text[:300])
            else:
                assert status == 200, (template, status, text[:300])
                assert SECRET_DAG not in text, (template, text[:300])
            checked[(verb, template)] = status
    assert len(checked) >= 15
