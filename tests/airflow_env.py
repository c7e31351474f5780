"""What a throw-away Airflow home is, said once for every test that makes one.

Two kinds of test run Airflow: the in-process tests (``dag.test()``, the CLI) share the session's home
set up by ``tests/conftest.py`` before Airflow is imported, and the real-cluster tests
(``tests/integration/cluster.py``) start Airflow's components in a home of their own below
``tmp_path``. Both get the same base here: SQLite metadata database and wfe store inside the home, no
example DAGs, an empty plugins folder (the plugin comes from the installed entry point, exactly as
in production), the API on 127.0.0.1 with a test-only JWT secret.

Scenario folders (a DAGs folder per situation a test builds) are under ``tests/scenarios``; see its
README for what each holds.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SCENARIOS", "airflow_home_env", "scenario"]

#: The root of the scenario folders: one DAGs folder per situation under test.
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

#: Signs the API server's tokens in tests only (Airflow refuses to start the API without one).
_JWT_SECRET = "wfe-test-only-jwt-secret-0123456789abcdef"


def scenario(name: str) -> Path:
    """The DAGs folder of scenario ``name`` (``tests/scenarios/<name>``); an error when missing."""
    folder = SCENARIOS / name
    if not folder.is_dir():
        known = sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir())
        raise ValueError(f"no scenario {name!r} in {SCENARIOS}; known: {', '.join(known)}")
    return folder


def airflow_home_env(home: Path, dags: Path) -> dict[str, str]:
    """The ``AIRFLOW*`` variables of a throw-away home ``home`` whose DAGs folder is ``dags``.

    Creates the home's empty plugins folder. Callers add what is theirs (ports, executor, policies).
    """
    plugins = home / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": _JWT_SECRET,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__WFE__STORE_CONN": f"sqlite:///{home / 'wfe.db'}",
    }
