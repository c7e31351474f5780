"""``wfe doctor``: prints the deployment checks of :mod:`airflow_wfe.app.doctor`."""

from __future__ import annotations

from airflow_wfe.cli.text import print_json

__all__ = ["run_doctor"]


def run_doctor(*, as_json: bool) -> int:
    """Print the checks (text or JSON); 1 when any failed."""
    # Reads Airflow's plugins and providers: only `wfe doctor` pays for importing them.
    from airflow_wfe.app.doctor import diagnose

    report = diagnose()
    if as_json:
        print_json(report)
    else:
        for check in report.checks:
            print(f"{check.status:<4}  {check.name:<12} {check.detail}")
    return 0 if report.ok else 1
