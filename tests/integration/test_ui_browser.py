"""The pages in a real browser: Debian's chromium driven by Playwright's Python package, against a
real ``airflow api-server`` (with its scheduler and dag-processor) on a free loopback port.

One governed run of ``wfe_t_approval_one`` waits at its approval gate. The operator (a
SimpleAuthManager ``user``) signs in on Airflow's own login page, opens **Browse → Governed runs**
from Airflow's navigation (our overview in Airflow's iframe, the waiting run listed), opens the
run's **Governance** tab on Airflow's DAG-run page, approves the pending gate with a comment full
of markup, and watches the tab follow the run to COMPLETED with no reload by hand. A run whose DAG
id, run id, step id and reasons are markup renders as text: no dialog opens, no script element
beyond the page's own two.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``. Without Playwright or
chromium the test is skipped, saying which is missing; with ``WFE_REQUIRE_BROWSER=1`` (CI) that is
a failure instead. ``WFE_SCREENSHOTS=1`` writes the screenshots into docs/images (what docs/ui.md
and the README show); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow_env import scenario
from cluster import Cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.timeout(420),
    pytest.mark.cluster(
        "approvals",
        deadline_s=180.0,
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,operator:user"
        },
    ),
]

CHROMIUM = Path("/usr/bin/chromium")
#: Launch flags: headless, no sandbox (CI runs as root), nothing that phones home or updates.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DAG_ID = "wfe_t_approval_one"
GATE = "approve"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

#: No "/" in the ids that go into the URL path (Airflow allows none in DAG and run ids either).
HOSTILE_DAG = '<svg onload=alert("dag")>'
HOSTILE_RUN = "\"'><img src=x onerror=alert(1)>"
HOSTILE_STEP = "<script>alert('step')</script>"
HOSTILE_REASON = '<img src=x onerror="alert(2)"> "double" & \'single\''
HOSTILE_COMMENT = "<script>alert('comment')</script> \"approved\" & 'fine'"


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium through Playwright, or a skip (a failure under WFE_REQUIRE_BROWSER=1)."""
    missing = _unavailable()
    if missing:
        if os.environ.get("WFE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WFE_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("WFE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def _parked(cluster: Cluster, run_id: str) -> bool:
    """The gate awaits input and the scheduler saw its workload end (an earlier answer races
    Airflow 3.3's late "finished" event, see test_policy_approvals.py)."""
    ti = cluster.task_instances(DAG_ID, run_id).get(GATE, {})
    if ti.get("state") != "awaiting_input":
        return False
    log = (cluster.logs / "scheduler.log").read_text(errors="replace")
    return any(
        "TaskInstance Finished" in line and f"ti_id={ti['id']}" in line for line in log.splitlines()
    )


def _record_hostile_run(cluster: Cluster) -> None:
    """A run whose every id and reason is markup, written straight into the cluster's store."""
    from airflow_wfe.core.records import Move
    from airflow_wfe.store import SqlStore

    store = SqlStore(f"sqlite:///{cluster.home / 'wfe.db'}")
    run_moves = [Move("CREATED", HOSTILE_REASON), Move("VALIDATED", None), Move("RUNNING", None)]
    store.advance_run(HOSTILE_DAG, HOSTILE_RUN, lambda _c: run_moves, actor="<b>scheduler</b>")
    for to, why in (("PENDING", None), ("RUNNING", None), ("FAILED", HOSTILE_REASON)):
        store.advance_step(
            HOSTILE_DAG,
            HOSTILE_RUN,
            HOSTILE_STEP,
            -1,
            lambda _state, _try, to=to, why=why: [Move(to, why)],
            actor="worker",
        )
    store.advance_run(
        HOSTILE_DAG, HOSTILE_RUN, lambda _c: [Move("FAILED", HOSTILE_REASON)], actor="scheduler"
    )


def _sign_in(page: Any, cluster: Cluster, user: str) -> None:
    passwords = json.loads(
        (cluster.home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    page.goto(cluster.base_url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(passwords[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(cluster.base_url + "/", timeout=30_000)


def test_approve_a_gate_from_the_airflow_ui(browser: Any, cluster: Cluster, shots: Path) -> None:
    from playwright.sync_api import expect

    cluster.login()
    run_id = cluster.trigger(DAG_ID)
    cluster.wait_until("the gate to wait for an answer", lambda: _parked(cluster, run_id))

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, cluster, "operator")

    # Airflow's navigation: Browse -> Governed runs, our overview in Airflow's iframe.
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Governed runs").click()
    overview = page.frame_locator("iframe")
    expect(overview.get_by_role("heading", name="Governed runs", level=1)).to_be_visible()
    waiting = overview.get_by_role("region", name="Waiting for approval")
    expect(waiting.get_by_role("link", name=f"{DAG_ID} / {run_id}")).to_be_visible()
    page.screenshot(path=str(shots / "ui-overview.png"))

    # The run's tab on Airflow's DAG-run page: the pending gate, with the gate's options.
    page.goto(f"{cluster.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    page.get_by_role("link", name="Governance").click()
    tab = page.frame_locator("iframe")
    gate = tab.get_by_role("region", name="Waiting for approval")
    expect(gate).to_be_visible(timeout=30_000)
    expect(tab.locator("h1 .badge")).to_have_text("WAITING_APPROVAL")
    expect(gate.get_by_role("button", name="Reject")).to_be_visible()
    page.screenshot(path=str(shots / "ui-run-gate.png"))

    gate.get_by_label("Comment").fill(HOSTILE_COMMENT)
    gate.get_by_role("button", name="Approve").click()
    expect(tab.get_by_role("status")).to_contain_text("handed to Airflow")
    # The tab follows the run (live.js) as the gate resumes and the run completes.
    started = time.monotonic()
    expect(tab.locator("h1 .badge")).to_have_text("COMPLETED", timeout=120_000)
    resumed_s = time.monotonic() - started
    decisions = tab.get_by_role("region", name="Decisions and approvals")
    expect(decisions).to_contain_text("approved")
    expect(decisions).to_contain_text(HOSTILE_COMMENT)  # as text, not markup
    expect(tab.get_by_role("region", name="Waiting for approval")).to_have_count(0)
    page.screenshot(path=str(shots / "ui-run-completed.png"))
    cluster.verify(lambda: cluster.show_run(DAG_ID, run_id)["state"] == "COMPLETED")
    approvals = [
        d for d in cluster.show_run(DAG_ID, run_id)["decisions"] if d["kind"] == "approval"
    ]
    assert [(d["outcome"], d["comment"]) for d in approvals] == [("approved", HOSTILE_COMMENT)]
    assert "operator" in approvals[0]["actor"]

    # Markup in every id and reason renders as text. Recorded only now: its unsigned audit events
    # would otherwise be the trail's first, and the components then refuse to mint their key.
    _record_hostile_run(cluster)
    hostile = f"{cluster.base_url}/wfe/ui/runs/{quote(HOSTILE_DAG, safe='')}/{quote(HOSTILE_RUN, safe='')}"
    page.goto(hostile)
    expect(page.locator("h1")).to_contain_text(HOSTILE_RUN)
    expect(page.locator("h1")).to_contain_text(HOSTILE_DAG)
    expect(page.get_by_role("region", name="Steps")).to_contain_text(HOSTILE_STEP)
    expect(page.get_by_role("region", name="Run transitions")).to_contain_text(HOSTILE_REASON)
    assert page.locator("script").count() == 2  # theme.js and live.js, nothing injected
    assert page.locator("img").count() == 0
    page.goto(f"{cluster.base_url}/wfe/ui/")
    expect(page.get_by_role("region", name="Recent runs")).to_contain_text(HOSTILE_RUN)
    assert page.locator("script").count() == 2
    assert dialogs == [], dialogs

    # Light and dark, as the pages follow the browser's (and Airflow's) theme.
    run_page = f"{cluster.base_url}/wfe/ui/runs/{DAG_ID}/{quote(run_id, safe='')}"
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(run_page)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(24, 24, 27)")
        page.screenshot(path=str(shots / f"ui-run-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.goto(f"{cluster.base_url}/wfe/ui/")
    page.screenshot(path=str(shots / "ui-overview-dark.png"), full_page=True)
    assert resumed_s < 120


AXE = (
    Path(__file__).resolve().parents[2]
    / ".ci"
    / "node"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)


@pytest.mark.cluster("approvals", deadline_s=120.0, components=("api-server",))
def test_the_pages_have_no_critical_accessibility_violations(
    browser: Any, cluster: Cluster
) -> None:
    """axe-core (npm, installed by .ci/run into .ci/node) on the overview, the runs list and a run
    page, in light and dark: no critical or serious violation."""
    _require_axe()
    cluster.login()
    _record_hostile_run(cluster)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "_token", "value": cluster.token, "url": cluster.base_url}])
    page = context.new_page()
    run = f"/wfe/ui/runs/{quote(HOSTILE_DAG, safe='')}/{quote(HOSTILE_RUN, safe='')}"
    found = _axe_findings(page, cluster.base_url, ("/wfe/ui/", "/wfe/ui/runs", run))
    assert found == {key: [] for key in found}, found


def _require_axe() -> None:
    """axe-core must be there (skipped otherwise, a failure under WFE_REQUIRE_BROWSER=1)."""
    if not AXE.is_file():
        reason = f"axe-core is missing at {AXE} (npm install --prefix .ci/node axe-core)"
        if os.environ.get("WFE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WFE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def _axe_findings(page: Any, base_url: str, paths: Iterable[str]) -> dict[Any, list[str]]:
    """Critical and serious axe-core violations of each page, in light and dark."""
    found = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for path in paths:
            page.goto(base_url + path)
            # axe runs in the page; the CSP forbids inline script, so it goes in through
            # Playwright's isolated evaluation rather than a <script> element.
            page.evaluate(AXE.read_text())
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            found[(scheme, path)] = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                for v in result["violations"]
                if v["impact"] in ("critical", "serious")
            ]
    return found


#: The HMAC key the audit trail of the governance pages' cluster is signed with (the components,
#: the ``wfe`` CLI and the run this test writes share it, so the chain verifies).
AUDIT_KEY = "browser-test-hmac-key-0123456789abcdef"
ARTIFACT = "prompts/summary"
PROD_POLICY = """\
name: prod-changes
version: "3"
description: production changes need a person
applies_to: {dags: ["deploy_*"]}
rules:
  - id: prod-needs-ok
    when: 'run.params.env == "prod"'
    decision: needs_approval
    reason: production changes are approved by a person
  - id: no-risky
    when: 'step.risk == "high"'
    decision: deny
    reason: high-risk steps are not run unattended
"""
#: Line 4 holds the misspelt key.
BROKEN_POLICY = """\
name: freeze
rules:
  - id: year-end
    whne: 'true'
    decision: deny
    reason: year-end freeze
"""


def _record_signed_run(cluster: Cluster) -> None:
    """A governed run, written with the cluster's key, that used the artifact's active version."""
    from airflow_wfe.core.audit.signing import HmacSigner
    from airflow_wfe.core.records import Move
    from airflow_wfe.store import SqlStore
    from airflow_wfe.store.audit_writer import AuditLog

    store = SqlStore(
        f"sqlite:///{cluster.home / 'wfe.db'}",
        audit=AuditLog(signer=HmacSigner(AUDIT_KEY.encode())),
    )
    moves = [Move("CREATED", None), Move("VALIDATED", None), Move("RUNNING", None)]
    store.advance_run("deploy_web", "manual__1", lambda _c: moves, actor="scheduler")
    for to in ("PENDING", "RUNNING", "SUCCEEDED"):
        store.advance_step(
            "deploy_web",
            "manual__1",
            "ship",
            -1,
            lambda _s, _t, to=to: [Move(to, None)],
            actor="worker",
        )
    store.advance_run(
        "deploy_web",
        "manual__1",
        lambda _c: [Move("COMPLETED", "all steps succeeded")],
        actor="scheduler",
    )
    store.artifacts.use_pinned("deploy_web", "manual__1", ARTIFACT)


def test_the_audit_policies_and_artifacts_pages(browser: Any, tmp_path: Path, shots: Path) -> None:
    """From Airflow's navigation to the audit trail page (verified, anchored; a checkpoint signed
    by its button), the policies page (a load error with its line; a dry run's decision) and an
    artifact's page (rolled back by its button); axe-core finds nothing critical or serious on
    any of them, light or dark."""
    from playwright.sync_api import expect

    policies, anchors = tmp_path / "policies", tmp_path / "anchors"
    policies.mkdir()
    anchors.mkdir()
    (policies / "prod.yaml").write_text(PROD_POLICY)
    (policies / "year_end.yaml").write_text(BROKEN_POLICY)
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,operator:user",
        "AIRFLOW__WFE__AUDIT_SIGNING_KEY": AUDIT_KEY,
        "AIRFLOW__WFE__POLICY_PATH": str(policies),
        "AIRFLOW__WFE__AUDIT_ANCHOR_DIR": str(anchors),
    }
    with Cluster.running(
        tmp_path,
        dags=scenario("approvals"),
        deadline_s=120.0,
        components=("api-server",),
        extra_env=env,
    ) as cluster:
        cluster.login()
        for text in ("Summarise the release notes.", "Summarise the release notes briefly."):
            source = tmp_path / "prompt.txt"
            source.write_text(text)
            done = cluster.wfe("artifacts", "register", ARTIFACT, str(source), "--activate")
            assert done.returncode == 0, cluster.commands[-1]
        _record_signed_run(cluster)

        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        _sign_in(page, cluster, "operator")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Governed runs").click()
        frame = page.frame_locator("iframe")
        frame.get_by_role("navigation", name="airflow-wfe").get_by_role(
            "link", name="Audit trail"
        ).click()
        verification = frame.get_by_role("region", name="Verification")
        expect(verification).to_contain_text("Verified")
        expect(verification).to_contain_text(f"Anchors in {anchors}")

        # The audit page on its own: sign a checkpoint with its button.
        page.goto(f"{cluster.base_url}/wfe/ui/audit")
        page.get_by_label("Reason").fill("before the <b>audit</b>")
        page.get_by_role("button", name="Sign a checkpoint now").click()
        expect(page.get_by_role("status")).to_contain_text("A checkpoint was signed at event #")
        expect(page.get_by_role("status")).to_contain_text("and anchored")
        assert any(anchors.iterdir())
        page.screenshot(path=str(shots / "ui-audit.png"), full_page=True)

        # Policies: the broken file's line, then a dry run of the loaded one.
        page.get_by_role("navigation", name="airflow-wfe").get_by_role(
            "link", name="Policies"
        ).click()
        errors = page.get_by_role("region", name="Load errors")
        expect(errors.get_by_role("row", name="year_end.yaml 4")).to_contain_text("whne")
        loaded = page.get_by_role("region", name="Loaded")
        expect(loaded).to_contain_text("prod-changes")
        expect(loaded).to_contain_text("3+")
        page.get_by_label("prod-changes").check()
        page.get_by_label("Facts (a JSON object)").fill(
            '{"run": {"dag_id": "deploy_web", "params": {"env": "prod"}}, "step": {"risk": "low"}}'
        )
        page.get_by_role("button", name="Evaluate").click()
        decision = page.get_by_role("status", name="Decision")
        expect(decision).to_contain_text("needs_approval")
        expect(decision).to_contain_text("production changes are approved by a person")
        page.screenshot(path=str(shots / "ui-policies.png"), full_page=True)

        # Artifacts: roll the prompt back to its first version.
        page.get_by_role("navigation", name="airflow-wfe").get_by_role(
            "link", name="Artifacts"
        ).click()
        page.get_by_role("link", name=ARTIFACT).click()
        rollback = page.get_by_role("region", name="Roll back")
        button = rollback.get_by_role("button")
        first = button.inner_text().removeprefix("Roll back to ").strip()
        rollback.get_by_label("Reason").fill("prompt regression")
        button.click()
        expect(page.get_by_role("status")).to_contain_text(f"{first} is active again")
        expect(page.locator("code.active-version")).to_have_text(first)
        expect(page.get_by_role("region", name="Activations, newest first")).to_contain_text(
            "prompt regression"
        )
        expect(page.get_by_role("region", name="Runs that used it")).to_contain_text("manual__1")
        page.screenshot(path=str(shots / "ui-artifact.png"), full_page=True)
        shown = json.loads(cluster.wfe("artifacts", "show", ARTIFACT, "--json").stdout)
        assert shown["active_version"] == first

        # The chain still verifies after the checkpoint and the rollback's audit event.
        page.goto(f"{cluster.base_url}/wfe/ui/audit")
        expect(page.get_by_role("region", name="Verification")).to_contain_text("Verified")
        assert dialogs == [], dialogs

        _require_axe()
        paths = (
            "/wfe/ui/audit",
            "/wfe/ui/policies",
            "/wfe/ui/artifacts",
            f"/wfe/ui/artifacts/{ARTIFACT}",
        )
        found = _axe_findings(page, cluster.base_url, paths)
        assert found == {key: [] for key in found}, found
