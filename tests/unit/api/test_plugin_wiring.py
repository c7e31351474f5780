"""The plugin's web surface: lazy (no FastAPI in task processes), switched off by config and on an
Airflow too old for it."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_wfe import plugin
from airflow_wfe.api.lazy import AIRFLOW_APP_SCOPE_KEY, LazyASGI
from airflow_wfe.config import reset_settings


@pytest.fixture
def settings_reset() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


def test_importing_the_plugin_imports_no_fastapi_nor_airflow_api_security() -> None:
    # Task processes import every plugin: these would cost ~0.55 s each (airflow3.md §2.6).
    # (Jinja2 is not checked: Airflow's Task SDK imports it anyway.)
    code = (
        "import sys, airflow_wfe.plugin as p; p.WfePlugin(); "
        "print(sorted(m for m in sys.modules if m == 'fastapi' or m.startswith('fastapi.') "
        "or m in ('airflow.api_fastapi.core_api.security', 'airflow_wfe.api.app', "
        "'airflow_wfe.ui.app')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_plugin_mounts_lazy_apps_under_wfe_pages_first(settings_reset: None) -> None:
    apps, views = plugin.web_surface()
    assert [(a["url_prefix"], repr(a["app"])) for a in apps] == [
        ("/wfe/ui", "LazyASGI('airflow_wfe.ui.app:build_app')"),
        ("/wfe", "LazyASGI('airflow_wfe.api.app:build_app')"),
    ]
    assert {(v["destination"], v["url_route"], v["href"]) for v in views} == {
        ("nav", "wfe", "/wfe/ui/"),
        ("dag_run", "wfe-run", "/wfe/ui/runs/{DAG_ID}/{RUN_ID}"),
    }


def test_external_views_honour_the_base_url_path() -> None:
    hrefs = [view["href"] for view in plugin.external_views("/airflow")]
    assert hrefs == ["/airflow/wfe/ui/", "/airflow/wfe/ui/runs/{DAG_ID}/{RUN_ID}"]


def test_airflow_accepts_the_external_views() -> None:
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    for view in plugin.external_views(""):
        ExternalViewResponse.model_validate(view)


def test_disabled_means_no_web_surface(
    monkeypatch: pytest.MonkeyPatch, settings_reset: None
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__ENABLED", "False")
    reset_settings()
    assert plugin.web_surface() == ([], [])
    assert plugin.WfePlugin().fastapi_apps == []


def test_a_broken_wfe_section_leaves_the_web_surface_off(
    monkeypatch: pytest.MonkeyPatch, settings_reset: None, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW__WFE__ENABLED", "maybe")
    reset_settings()
    with caplog.at_level(logging.ERROR, logger="airflow_wfe.plugin"):
        assert plugin.web_surface() == ([], [])
    assert "not registered" in caplog.text
    assert "enabled" in caplog.text


def test_an_old_airflow_gets_no_web_surface_and_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, settings_reset: None, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(plugin, "_airflow_version", lambda: (3, 0))
    with caplog.at_level(logging.WARNING, logger="airflow_wfe.plugin"):
        assert plugin.web_surface() == ([], [])
    assert "Airflow 3.0 has no plugin FastAPI apps" in caplog.text
    assert "needs 3.1 or later" in caplog.text


calls: list[str] = []


def _factory() -> Any:
    calls.append("built")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope[AIRFLOW_APP_SCOPE_KEY])

    return app


def test_lazy_asgi_builds_once_and_keeps_airflows_app_in_the_scope() -> None:
    calls.clear()
    lazy = LazyASGI(f"{__name__}:_factory")
    assert calls == []

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    gc.unfreeze()
    try:
        for _ in range(2):
            asyncio.run(lazy({"type": "http", "app": "root"}, receive, send))
        # The process's long-lived objects leave the collector's sight once the app is built.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert calls == ["built", "root", "root"]
