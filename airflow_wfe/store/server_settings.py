"""A server store's session settings, sent as startup options or, behind a pooler, with ``SET``.

The store bounds every statement and lock wait on the server (``statement_timeout``,
``lock_timeout``) and sends them the cheapest way: in the connection's startup ``options``, with
any ``options`` of the store's URL. PgBouncer, which Airflow's Helm chart puts in front of its
databases, refuses a startup ``options`` parameter ("unsupported startup parameter: options")
unless its ``ignore_startup_parameters`` names it, and then drops the settings silently; the store
could not connect through it at all.

So the store's engine opens its connections here. The first refusal is remembered for the engine:
from then on its connections are opened without ``options`` and the same settings are made with
``set_config`` on each new connection, committed before the connection is used. psycopg's
automatic server-side prepared statements are turned off as well, since in transaction pooling a
statement prepared on one server connection is missing on the next. In transaction pooling a
session setting stays with the server connection it was made on, which a later transaction of the
same client may not get: there the bounds belong on the store's role as well (docs/deployment.md,
"A connection pooler").
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable
from typing import Any

from airflow_wfe.exceptions import ConfigError

__all__ = ["ServerConnector", "session_settings"]

log = logging.getLogger("airflow_wfe.store")

#: What PostgreSQL's poolers answer to a startup parameter they do not pass on.
_REFUSED = "unsupported startup parameter"


def session_settings(options: str) -> list[tuple[str, str]]:
    """The ``name=value`` settings of a libpq ``options`` string (``-c name=value``,
    ``-cname=value`` or ``--name=value``), in order.

    Raises:
        ConfigError: something in it is not such a setting (it could not be made with ``SET``).
    """
    settings: list[tuple[str, str]] = []
    words = iter(shlex.split(options))
    for word in words:
        if word == "-c":
            setting = next(words, "")
        elif word.startswith(("-c", "--")):
            setting = word[2:]
        else:
            setting = ""
        name, equals, value = setting.partition("=")
        if not name or not equals:
            raise ConfigError(
                "store_conn",
                "options=(hidden)",
                f"{word!r} in the URL's options is not a '-c name=value' setting, so it cannot be "
                "made with SET behind a connection pooler that refuses startup options",
            )
        settings.append((name.replace("-", "_"), value))
    return settings


class ServerConnector:
    """The engine's ``do_connect`` handler: startup options first, ``SET`` once they are refused.

    ``before`` runs ahead of every attempt (the store's fail-fast check while it is marked down).
    """

    def __init__(self, where: str, *, psycopg3: bool, before: Callable[[], None]) -> None:
        self._where = where
        self._psycopg3 = psycopg3
        self._before = before
        self._lock = threading.Lock()
        #: The server refused startup options once: every later connection is opened without them.
        self.pooled = False

    def __call__(self, dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        self._before()
        if not self.pooled:
            try:
                return dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                if _REFUSED not in str(exc) or "options" not in str(exc):
                    raise
            with self._lock:
                if not self.pooled:
                    self.pooled = True
                    log.warning(
                        "wfe: the state store %s refused startup options (a connection pooler such "
                        "as PgBouncer); its statement and lock bounds are set on each connection "
                        "instead. With transaction pooling, set them on the store's role too "
                        "(docs/deployment.md, 'A connection pooler')",
                        self._where,
                    )
        params = dict(cparams)
        settings = session_settings(str(params.pop("options", "") or ""))
        if self._psycopg3:
            params["prepare_threshold"] = None
        connection = dialect.connect(*cargs, **params)
        try:
            cursor = connection.cursor()
            for name, value in settings:
                cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
            cursor.close()
            connection.commit()
        except BaseException:
            connection.close()
            raise
        return connection
