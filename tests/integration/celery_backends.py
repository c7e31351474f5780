"""Fresh backends for a CeleryExecutor cluster test: PostgreSQL databases, a Redis database, a key.

A Celery cluster test (``cluster.py`` with :class:`cluster.CeleryBackends`) needs Airflow's metadata
database and the wfe store on PostgreSQL (fresh databases, dropped afterwards), a Redis database as
broker that nothing else uses (flushed before and after), and, for a server store, a signing key as
docs/audit.md says. Each test names its own Redis database, so two such tests (or a test and the
Celery bench, which uses 6-8) never take each other's messages.

Without Redis, PostgreSQL or the Celery provider the test is skipped with the reason; under
``WFE_REQUIRE_POSTGRES=1`` (CI) that is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import BIN

PG_URL = os.environ.get("WFE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The Redis server (no database number: each test appends its own).
REDIS_SERVER = os.environ.get("WFE_TEST_REDIS_SERVER", "redis://127.0.0.1:6379")


def dsn(url: str) -> str:
    """A libpq DSN of a SQLAlchemy URL."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def missing(redis_url: str, pg_url: str = PG_URL) -> str | None:
    """What this machine lacks for a Celery cluster test, or None."""
    try:
        import airflow.providers.celery  # noqa: F401
        import redis
    except ImportError as exc:
        return f"the Celery provider is not installed (pip install 'airflow-wfe[celery]'): {exc}"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {redis_url} is unreachable: {exc}"
    try:
        import psycopg

        with psycopg.connect(dsn(pg_url), connect_timeout=3) as connection:
            connection.execute("select 1")
    except Exception as exc:  # psycopg missing or server away: either way, no PostgreSQL
        return f"PostgreSQL at {pg_url} is unreachable: {exc}"
    return None


def skip_unless_available(redis_url: str, pg_url: str = PG_URL) -> None:
    """Skip the test naming what is missing (a failure under ``WFE_REQUIRE_POSTGRES=1``)."""
    reason = missing(redis_url, pg_url)
    if reason:
        if os.environ.get("WFE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"WFE_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@contextlib.contextmanager
def fresh_databases(prefix: str, redis_url: str, pg_url: str = PG_URL) -> Iterator[dict[str, str]]:
    """``{"airflow": URL, "store": URL}``: new PostgreSQL databases named ``<prefix>_<role>_...``,
    dropped on the way out, and the Redis database of ``redis_url`` flushed before and after."""
    skip_unless_available(redis_url, pg_url)
    import psycopg
    import redis
    from sqlalchemy.engine import make_url

    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    names = {role: f"{prefix}_{role}_{suffix}" for role in ("airflow", "store")}
    with psycopg.connect(dsn(pg_url), autocommit=True) as connection:
        for name in names.values():
            connection.execute(f'CREATE DATABASE "{name}"')
    base = make_url(pg_url)
    try:
        yield {
            role: base.set(database=name).render_as_string(hide_password=False)
            for role, name in names.items()
        }
    finally:
        broker.flushdb()
        broker.close()
        with psycopg.connect(dsn(pg_url), autocommit=True) as connection:
            for name in names.values():
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def keygen(folder: Path) -> Path:
    """An Ed25519 signing key made by ``wfe audit keygen`` in ``folder`` (the private key's path)."""
    made = subprocess.run(
        [str(BIN / "wfe"), "audit", "keygen", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return folder / "wfe-audit.pem"
