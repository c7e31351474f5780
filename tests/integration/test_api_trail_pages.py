"""The audit trail, policies and artifacts pages inside Airflow's own API app (in process).

Runs of two DAGs are recorded through the recorder into a store of this module's own; the
``outsider`` (a viewer) may read the first DAG only. Policies come from a folder holding a valid
file and a broken one; artifacts are registered through the application layer. Every assertion
goes through Airflow's JWT authentication and auth manager, our routes and Jinja2.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_users import users_with_an_outsider

from airflow_wfe.engine.harness import reset_runtime

pytestmark = [pytest.mark.integration]

OPEN_DAG = "wfe_pages_open"
SECRET_DAG = "wfe_pages_secret"
UI = "/wfe/ui"
ARTIFACT = "prompts/summary.v1"

GOOD_POLICY = """\
name: prod-changes
version: "3"
applies_to: {dags: ["deploy_*"]}
rules:
  - id: prod-needs-ok
    when: 'run.params.env == "prod"'
    decision: needs_approval
    reason: production changes are approved by a person
  - id: no-fridays
    when: 'step.risk == "<script>high</script>"'
    decision: deny
    reason: "risky <em>markup</em>"
"""
#: Line 4 holds the unknown key.
BROKEN_POLICY = """\
name: broken
rules:
  - id: r1
    whne: 'true'
    decision: deny
"""


class Pages:
    """The in-process client and a token per user."""

    def __init__(self, client: Any, tokens: dict[str, str], home: Path, used: str) -> None:
        self.client = client
        self.tokens = tokens
        self.home = home
        #: The version of ARTIFACT the run manual__open used.
        self.used = used

    def get(self, path: str, user: str | None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(UI + path, headers=headers, follow_redirects=False)

    def post(self, path: str, user: str, fields: list[tuple[str, str]], **headers: str) -> Any:
        from urllib.parse import urlencode

        sent = {
            "Authorization": f"Bearer {self.tokens[user]}",
            "Content-Type": "application/x-www-form-urlencoded",
            **headers,
        }
        return self.client.post(
            UI + path, content=urlencode(fields).encode(), headers=sent, follow_redirects=False
        )

    def token(self, user: str) -> str:
        from starlette.requests import Request

        from airflow_wfe.ui import csrf

        header = (b"authorization", f"Bearer {self.tokens[user]}".encode())
        return csrf.token_for(Request({"type": "http", "headers": [header]}))


def _record(dag_id: str, run_id: str, reason: str) -> None:
    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    recorder.run_started(dag_id, run_id, actor="scheduler", reason=reason)
    recorder.run_finished(dag_id, run_id, succeeded=True, actor="scheduler", reason="done")


@pytest.fixture(scope="module")
def pages(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    from airflow_wfe.app import artifacts
    from airflow_wfe.app.context import AppContext

    home = tmp_path_factory.mktemp("trail-pages")
    policies = home / "policies"
    policies.mkdir()
    (policies / "a_good.yaml").write_text(GOOD_POLICY)
    (policies / "b_broken.yaml").write_text(BROKEN_POLICY)
    (home / "anchors").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__WFE__STORE_CONN", f"sqlite:///{home / 'wfe.db'}")
        patch.setenv("AIRFLOW__WFE__POLICY_PATH", str(policies))
        patch.setenv("AIRFLOW__WFE__AUDIT_ANCHOR_DIR", str(home / "anchors"))
        reset_runtime()
        _record(OPEN_DAG, "manual__open", "opened")
        _record(SECRET_DAG, "manual__secret", "secret reason")
        ctx = AppContext.from_process()
        for text in (b"first prompt", b"second prompt"):
            artifacts.register(
                ctx, ARTIFACT, text, media_type="text/plain", actor="tester", activate_it=True
            )
        used = ctx.store.artifacts.use_pinned(OPEN_DAG, "manual__open", ARTIFACT).version
        with TestClient(create_app()) as client:
            manager: Any = get_auth_manager()
            tokens = users_with_an_outsider(patch, manager, OPEN_DAG, {OPEN_DAG, SECRET_DAG})
            yield Pages(client, tokens, home, used)
    reset_runtime()


SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}


def test_the_new_pages_are_in_every_page_navigation(pages: Pages) -> None:
    overview = pages.get("/", "viewer")
    assert overview.status_code == 200, overview.text
    # The broken policy file takes the budgets out, not the overview.
    assert "Spend and budgets cannot be shown" in overview.text
    assert "b_broken.yaml" in overview.text
    nav = re.search(r'<nav aria-label="airflow-wfe">(.*?)</nav>', overview.text, re.S)
    assert nav is not None
    for target in ("/wfe/ui/audit", "/wfe/ui/policies", "/wfe/ui/artifacts"):
        assert f'href="{target}"' in nav.group(1)


def test_the_audit_page_verifies_the_chain_and_its_anchors(pages: Pages) -> None:
    page = pages.get("/audit", "viewer")
    assert page.status_code == 200, page.text
    assert "<strong>Verified</strong>" in page.text
    assert "The store&#39;s chain" in page.text
    assert f"Anchors in {pages.home / 'anchors'}" in page.text
    assert 'href="/wfe/api/v1/audit/export?format=jsonl"' in page.text
    assert 'href="/wfe/api/v1/audit/export?format=csv"' in page.text
    # A viewer reads every audit log but may not sign a checkpoint.
    assert "Sign a checkpoint now" not in page.text
    assert "needs edit rights on the runs of every DAG" in page.text
    assert "Sign a checkpoint now" in pages.get("/audit", "user").text


def test_a_user_with_some_dags_sees_nothing_of_the_chain_wide_verdict(pages: Pages) -> None:
    overview = pages.get("/", "outsider").text
    assert "/wfe/api/v1/audit/verify" not in overview
    assert "Exports of the DAGs you may read" in overview
    assert "/wfe/api/v1/audit/verify" in pages.get("/", "viewer").text
    page = pages.get("/audit", "outsider")
    assert page.status_code == 200, page.text
    assert SECRET_DAG not in page.text
    assert "Verified" not in page.text
    assert "NOT verified" not in page.text
    assert "events checked" not in page.text
    assert f"export?format=jsonl&amp;dag_id={OPEN_DAG}" in page.text
    assert "Sign a checkpoint" not in page.text
    export = pages.client.get(
        f"/wfe/api/v1/audit/export?format=jsonl&dag_id={OPEN_DAG}",
        headers={"Authorization": f"Bearer {pages.tokens['outsider']}"},
    )
    assert export.status_code == 200
    assert OPEN_DAG in export.text
    assert SECRET_DAG not in export.text


def test_a_checkpoint_is_signed_from_the_page_with_csrf_and_edit_rights(pages: Pages) -> None:
    token = pages.token("user")
    fields = [("csrf_token", token), ("reason", "before the audit <b>visit</b>")]
    assert pages.post("/audit/checkpoint", "user", fields[1:], **SAME_ORIGIN).status_code == 403
    cross = pages.post("/audit/checkpoint", "user", fields, **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    viewer = [("csrf_token", pages.token("viewer")), ("reason", "x")]
    assert pages.post("/audit/checkpoint", "viewer", viewer, **SAME_ORIGIN).status_code == 403
    outsider = [("csrf_token", pages.token("outsider")), ("reason", "x")]
    assert pages.post("/audit/checkpoint", "outsider", outsider, **SAME_ORIGIN).status_code == 403
    anchors_before = set((pages.home / "anchors").iterdir())
    done = pages.post("/audit/checkpoint", "user", fields, **SAME_ORIGIN)
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    seq = re.fullmatch(r"/wfe/ui/audit\?checkpoint=(\d+)", location)
    assert seq is not None, location
    assert set((pages.home / "anchors").iterdir()) > anchors_before  # anchored too
    after = pages.get(location.removeprefix(UI), "user")
    assert f"A checkpoint was signed at event #{seq.group(1)} and anchored" in after.text
    assert "<strong>Verified</strong>" in after.text


def test_a_broken_chain_names_its_first_bad_entry(pages: Pages) -> None:
    from sqlalchemy import text

    from airflow_wfe.store.engine import get_engine

    engine = get_engine(f"sqlite:///{pages.home / 'wfe.db'}")
    with engine.begin() as connection:
        # By hash: an event's seq is unique only within its chain when the trail is partitioned.
        seq, digest, body = connection.execute(
            text(
                "SELECT seq, hash, body FROM wfe_audit_event WHERE body LIKE '%opened%' "
                "ORDER BY seq LIMIT 1"
            )
        ).one()
        connection.execute(
            text("UPDATE wfe_audit_event SET body = :b WHERE hash = :h"),
            {"b": body.replace("opened", "edited"), "h": digest},
        )
    try:
        page = pages.get("/audit", "viewer")
        assert page.status_code == 200, page.text
        assert "<strong>NOT verified</strong>" in page.text
        first = re.search(r'<p class="first-bad" role="alert">(.*?)</p>', page.text, re.S)
        assert first is not None, page.text
        assert f"event #{seq}" in first.group(1)
        assert 'class="chain-mark"' in page.text
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE wfe_audit_event SET body = :b WHERE hash = :h"),
                {"b": body, "h": digest},
            )
    assert "<strong>Verified</strong>" in pages.get("/audit", "viewer").text


def test_the_policies_page_lists_versions_and_load_errors_with_lines(pages: Pages) -> None:
    from airflow_wfe.core.policy import load_policy_file

    page = pages.get("/policies", "viewer")
    assert page.status_code == 200, page.text
    loaded = load_policy_file(pages.home / "policies" / "a_good.yaml")
    assert loaded.version.startswith("3+")
    assert f'<code title="SHA-256 {loaded.content_hash}">{loaded.version}</code>' in page.text
    assert "expression:prod-needs-ok" in page.text
    errors = re.findall(r'<tr class="load-error">(.*?)</tr>', page.text, re.S)
    rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", e, re.S)] for e in errors]
    unknown = [r for r in rows if "whne" in r[2]]
    assert len(unknown) == 1, rows
    assert unknown[0][:2] == ["b_broken.yaml", "4"]
    assert "did you mean 'when'" in unknown[0][3]
    assert pages.get("/policies", "outsider").status_code == 403


def test_a_dry_run_shows_the_decision_and_its_reasons(pages: Pages) -> None:
    token = pages.token("viewer")
    facts = '{"run": {"dag_id": "deploy_web", "params": {"env": "prod"}}, "step": {"risk": "<script>high</script>"}}'
    fields = [("csrf_token", token), ("policy", "prod-changes"), ("facts", facts)]
    page = pages.post("/policies/dry-run", "viewer", fields, **SAME_ORIGIN)
    assert page.status_code == 200, page.text
    assert 'class="badge decision-deny">deny<' in page.text
    assert "production changes are approved by a person" in page.text
    assert "risky &lt;em&gt;markup&lt;/em&gt;" in page.text
    assert "<script>high" not in page.text  # the facts echoed back, escaped
    # Every policy is asked for while a file is broken: refused, as a gate would.
    every = pages.post("/policies/dry-run", "viewer", [fields[0], fields[2]], **SAME_ORIGIN)
    assert every.status_code == 400
    assert "b_broken.yaml" in every.text
    bad = [("csrf_token", token), ("policy", "prod-changes"), ("facts", "{not json")]
    refused = pages.post("/policies/dry-run", "viewer", bad, **SAME_ORIGIN)
    assert refused.status_code == 400
    assert "is not JSON" in refused.text
    server_file = [("csrf_token", token), ("facts", "@/etc/passwd")]
    no_file = pages.post("/policies/dry-run", "viewer", server_file, **SAME_ORIGIN)
    assert no_file.status_code == 400
    assert "root:" not in no_file.text
    path_name = [("csrf_token", token), ("policy", "/etc/passwd"), ("facts", "{}")]
    assert "root:" not in pages.post("/policies/dry-run", "viewer", path_name, **SAME_ORIGIN).text
    no_token = pages.post("/policies/dry-run", "viewer", fields[1:], **SAME_ORIGIN)
    assert no_token.status_code == 403
    # The facts the form starts with evaluate as they are (a gate's facts, in their shape).
    from airflow_wfe.ui.policy_pages import EXAMPLE_FACTS

    example = [("csrf_token", token), ("policy", "prod-changes"), ("facts", EXAMPLE_FACTS)]
    first = pages.post("/policies/dry-run", "viewer", example, **SAME_ORIGIN)
    assert first.status_code == 200, first.text
    assert 'class="badge decision-needs_approval">needs_approval<' in first.text


def test_the_artifact_pages_show_versions_and_roll_back(pages: Pages) -> None:
    from urllib.parse import quote

    listing = pages.get("/artifacts", "viewer")
    assert listing.status_code == 200, listing.text
    assert ARTIFACT in listing.text
    path = f"/artifacts/{quote(ARTIFACT, safe='')}"
    assert f'href="/wfe/ui{path}"' in listing.text
    page = pages.get(path, "viewer")
    assert page.status_code == 200, page.text
    assert page.text.count("<tr") - page.text.count("<tr><th") >= 4  # 2 versions, 2 activations
    active = re.search(r'<code class="active-version">(\w+)</code>', page.text)
    assert active is not None
    assert "Rolling back needs edit rights" in page.text
    runs = page.text[page.text.index('id="h-runs"') :]
    assert f'href="/wfe/ui/runs/{OPEN_DAG}/manual__open"' in runs
    assert f"<code>{pages.used}</code>" in runs
    run_page = pages.get(f"/runs/{OPEN_DAG}/manual__open", "viewer").text
    used = run_page[run_page.index('id="h-artifacts"') :]
    assert f'href="/wfe/ui{path}"' in used
    assert f"<code>{pages.used}</code>" in used
    assert pages.get("/artifacts", "outsider").status_code == 403
    assert pages.get(path, "outsider").status_code == 403

    user_page = pages.get(path, "user").text
    target = re.search(r"Roll back to (\w+)", user_page)
    assert target is not None
    assert target.group(1) != active.group(1)
    fields = [("csrf_token", pages.token("user")), ("reason", "prompt <i>regression</i>")]
    assert pages.post(f"{path}/rollback", "user", fields[1:], **SAME_ORIGIN).status_code == 403
    viewer = [("csrf_token", pages.token("viewer"))]
    assert pages.post(f"{path}/rollback", "viewer", viewer, **SAME_ORIGIN).status_code == 403
    done = pages.post(f"{path}/rollback", "user", fields, **SAME_ORIGIN)
    assert done.status_code == 303, done.text
    after = pages.get(done.headers["location"].removeprefix(UI), "user")
    assert f"{target.group(1)} is active again" in after.text
    assert f'<code class="active-version">{target.group(1)}</code>' in after.text
    assert "prompt &lt;i&gt;regression&lt;/i&gt;" in after.text
    missing = pages.get("/artifacts/no/such", "viewer")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]


def test_a_long_run_page_shows_its_newest_events_and_checks_every_hash(pages: Pages) -> None:
    """The page keeps the newest 200 events; the count and the hash check cover all of them."""
    from sqlalchemy import text

    from airflow_wfe.core.states import StepState
    from airflow_wfe.engine.harness import get_recorder
    from airflow_wfe.store.engine import get_engine
    from airflow_wfe.ui.app import EVENTS_SHOWN

    recorder = get_recorder()
    recorder.run_started(OPEN_DAG, "manual__long", actor="scheduler", reason="long")
    for step in range(110):
        for state in (StepState.RUNNING, StepState.SUCCEEDED):
            recorder.step(OPEN_DAG, "manual__long", f"s{step:03d}", state, actor="worker")
    engine = get_engine(f"sqlite:///{pages.home / 'wfe.db'}")
    with engine.begin() as connection:
        total = connection.execute(
            text("SELECT count(*) FROM wfe_audit_event WHERE run_id = 'manual__long'")
        ).scalar_one()
    assert total > EVENTS_SHOWN
    page = pages.get(f"/runs/{OPEN_DAG}/manual__long", "viewer")
    assert page.status_code == 200, page.text
    assert f"{total} events; every body matches its hash." in page.text
    assert f"The last {EVENTS_SHOWN} are shown" in page.text
    audit = page.text[page.text.index('id="h-audit"') :]
    assert audit.count("<tr><td>") == EVENTS_SHOWN
    # An edit of the run's first event, far from the ones shown, is still seen.
    with engine.begin() as connection:
        digest, body = connection.execute(
            text(
                "SELECT hash, body FROM wfe_audit_event WHERE run_id = 'manual__long' "
                "ORDER BY seq LIMIT 1"
            )
        ).one()
        connection.execute(
            text("UPDATE wfe_audit_event SET body = :b WHERE hash = :h"),
            {"b": body.replace("long", "short"), "h": digest},
        )
    try:
        edited = pages.get(f"/runs/{OPEN_DAG}/manual__long", "viewer")
        assert "every body does NOT match its hash" in edited.text
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE wfe_audit_event SET body = :b WHERE hash = :h"),
                {"b": body, "h": digest},
            )
