"""``wfe doctor``: prints the deployment checks of :mod:`airflow_wfe.app.doctor`."""

from __future__ import annotations

from airflow_wfe.cli.output import emit

__all__ = ["run_doctor"]


def run_doctor(*, output: str) -> int:
    """Print the checks (one line per check for table and plain; json, yaml); 1 when any failed."""
    # Reads Airflow's plugins and providers: only `wfe doctor` pays for importing them.
    from airflow_wfe.app.doctor import diagnose

    report = diagnose()
    emit(
        output,
        report,
        text=lambda: "\n".join(
            f"{check.status:<4}  {check.name:<12} {check.detail}" for check in report.checks
        ),
    )
    return 0 if report.ok else 1
