"""Turning a store URL's libpq ``options`` into ``SET`` settings, for a server behind a pooler that
refuses startup options (the pooler itself: tests/integration/test_store_pgbouncer.py)."""

from __future__ import annotations

import pytest

from airflow_wfe.exceptions import ConfigError
from airflow_wfe.store.server_settings import session_settings


def test_url_options_are_set_one_by_one_and_others_are_refused_by_name() -> None:
    """The URL's own libpq options go the same way; one that is not a setting is a clear error."""
    assert session_settings("-c statement_timeout=1000 -csearch_path=wfe --lock-timeout=5") == [
        ("statement_timeout", "1000"),
        ("search_path", "wfe"),
        ("lock_timeout", "5"),
    ]
    with pytest.raises(ConfigError, match="'-v' in the URL's options is not"):
        session_settings("-c statement_timeout=1 -v")
