"""``wfe doctor``: check a deployment the way a platform engineer would, one line per check.

Each check runs on its own and reports ``ok``, ``FAIL`` or ``skip`` with what it saw, so one broken
part does not hide the others; the command exits 1 when any check fails. The checks read the same
configuration every component reads (``[wfe]`` and ``[metrics]`` through Airflow), so running it on
each machine (scheduler, workers, API server) shows the one that differs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from airflow_wfe.config import get_settings

__all__ = ["Check", "DoctorReport", "diagnose", "run_checks"]

OK, FAIL, SKIP = "ok", "FAIL", "skip"


class Check(BaseModel):
    """One check's outcome: ``status`` is ok, FAIL or skip; ``detail`` says what was seen."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: str
    detail: str


def _check(name: str, status: str, detail: str) -> Check:
    return Check(name=name, status=status, detail=detail)


def _versions() -> Check:
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    from airflow_wfe.version import __version__

    try:
        declared = requires("airflow-wfe") or []
    except PackageNotFoundError:
        return _check("versions", FAIL, "airflow-wfe is importable but not installed (no metadata)")
    installed = {}
    problems = []
    for line in declared:
        requirement = Requirement(line)
        if requirement.marker is not None or requirement.name not in {
            "apache-airflow",
            "SQLAlchemy",
            "pydantic",
        }:
            continue
        try:
            found = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{requirement.name} not installed")
            continue
        installed[requirement.name] = found
        if not requirement.specifier.contains(found, prereleases=True):
            problems.append(f"{requirement.name} {found} is outside {requirement.specifier}")
    seen = ", ".join(f"{name} {found}" for name, found in installed.items())
    if problems:
        return _check("versions", FAIL, f"airflow-wfe {__version__}: " + "; ".join(problems))
    return _check("versions", OK, f"airflow-wfe {__version__} with {seen}")


def _store() -> Check:
    from airflow_wfe.app.schema import schema_status

    status = schema_status(get_settings())
    if status.current:
        return _check("store", OK, f"{status.url} reachable, at revision {status.revision}")
    return _check(
        "store",
        FAIL,
        f"{status.url} reachable but at revision {status.revision or '(empty)'}, this version "
        f"needs {status.expected}: run `wfe db upgrade`",
    )


def _signing_key() -> Check:
    settings = get_settings()
    value = settings.audit_signing_key
    server_store = not settings.store_conn.startswith("sqlite")
    if not value:
        if server_store:
            return _check(
                "signing key",
                FAIL,
                "[wfe] audit_signing_key is empty with a server store: run `wfe audit keygen` "
                "and configure the key on every machine that writes",
            )
        return _check(
            "signing key",
            OK,
            "not configured: an HMAC key generated into $AIRFLOW_HOME/wfe_audit.key "
            "(one machine only)",
        )
    for prefix in ("file:", "ed25519:"):
        if value.startswith(prefix):
            path = Path(value.removeprefix(prefix))
            if not path.is_file():
                return _check("signing key", FAIL, f"{prefix}{path}: no such file")
            try:
                path.read_bytes()
            except OSError as exc:
                return _check("signing key", FAIL, f"{prefix}{path}: cannot be read ({exc})")
            return _check("signing key", OK, f"{prefix}{path} readable")
    return _check("signing key", OK, "an HMAC key configured inline (value hidden)")


def _policies() -> Check:
    from airflow_wfe.app.policies import load_policies

    folder = get_settings().policy_path
    if not folder.is_dir():
        return _check("policies", SKIP, f"no policy folder at {folder} ([wfe] policy_path)")
    loaded = load_policies([], folder)
    return _check("policies", OK, f"{len(loaded)} loaded from {folder}")


def _plugin() -> Check:
    from airflow import plugins_manager

    names = [str(info.get("name")) for info in plugins_manager.get_plugin_info()]
    if "airflow_wfe" in names:
        return _check("plugin", OK, "airflow_wfe registered with Airflow (airflow.plugins)")
    errors = plugins_manager.get_import_errors()
    why = f"; import errors: {errors}" if errors else ""
    return _check("plugin", FAIL, f"airflow_wfe not among Airflow's plugins {names}{why}")


def _provider() -> Check:
    from airflow.providers_manager import ProvidersManager

    providers = ProvidersManager().providers  # type: ignore[no-untyped-call]
    if "airflow-wfe" in providers:
        return _check(
            "provider", OK, f"airflow-wfe {providers['airflow-wfe'].version} in Airflow's providers"
        )
    return _check("provider", FAIL, "airflow-wfe is not among Airflow's providers")


def _statsd() -> Check:
    from airflow_wfe.engine.emitter import metrics_settings

    metrics = metrics_settings()
    if not metrics.statsd_on:
        return _check("statsd", SKIP, "off ([metrics] statsd_on / [wfe] statsd_on)")
    family = socket.AF_INET6 if metrics.ipv6 else socket.AF_INET
    where = f"{metrics.host}:{metrics.port}"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.3)
            probe.connect((metrics.host, metrics.port))
            probe.send(b"wfe.doctor:1|c")
            # A closed port answers with ICMP "port unreachable" (ConnectionRefusedError here);
            # silence is what a listening StatsD sends back over UDP.
            with contextlib.suppress(TimeoutError):
                probe.recv(1)
    except OSError as exc:
        return _check("statsd", FAIL, f"{where} unreachable ({exc})")
    return _check("statsd", OK, f"{where} accepts UDP")


CHECKS: tuple[Callable[[], Check], ...] = (
    _versions,
    _store,
    _signing_key,
    _policies,
    _plugin,
    _provider,
    _statsd,
)
_NAMES = ("versions", "store", "signing key", "policies", "plugin", "provider", "statsd")


def run_checks() -> list[Check]:
    """Every check; one that raises is reported as FAIL with its error, not a crash."""
    results = []
    for name, check in zip(_NAMES, CHECKS, strict=True):
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - each failure is a finding, the rest still run
            results.append(_check(name, FAIL, f"{type(exc).__name__}: {exc}"))
    return results


class DoctorReport(BaseModel):
    """What ``wfe doctor --json`` prints: ``ok`` when no check failed, and every check."""

    ok: bool
    checks: list[Check]


def diagnose() -> DoctorReport:
    """Run every check (see :func:`run_checks`)."""
    results = run_checks()
    return DoctorReport(ok=not any(check.status == FAIL for check in results), checks=results)
