"""The ``[wfe]`` configuration section: declared once, read lazily, handed around frozen.

The option table below is the single source: the provider info publishes it to Airflow (so
``airflow config list --section wfe`` shows it with defaults and descriptions), and
:func:`get_settings` falls back to the same defaults when a process has not loaded provider config.
Values are read through Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__WFE__*``) the first time
something asks, never at import time, because DAG files import this package.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from airflow_wfe.exceptions import ConfigError

__all__ = [
    "GOVERNED_TAG",
    "OPTIONS",
    "GovernMode",
    "Option",
    "Settings",
    "get_settings",
    "reset_settings",
]

#: The DAG tag that opts a DAG in when ``[wfe] govern = tagged``.
GOVERNED_TAG: Final = "wfe"


class GovernMode(StrEnum):
    """Which DAGs the listeners record."""

    TAGGED = "tagged"
    ALL = "all"


@dataclass(frozen=True)
class Option:
    """One ``[wfe]`` option as Airflow's provider-info schema wants it."""

    name: str
    type: str
    default: str
    description: str
    example: str | None = None
    sensitive: bool = False


OPTIONS: Final[tuple[Option, ...]] = (
    Option(
        "enabled",
        "boolean",
        "True",
        "Master switch. False makes the plugin a no-op: no listener records anything and gates "
        "let everything through.",
        "False",
    ),
    Option(
        "govern",
        "string",
        GovernMode.TAGGED.value,
        f"Which DAGs are governed: ``tagged`` (only DAGs tagged ``{GOVERNED_TAG}``) or ``all``.",
        "all",
    ),
    Option(
        "fail_closed",
        "boolean",
        "False",
        "When True, a harness failure (store unreachable, illegal transition) fails the task "
        "instead of being logged and counted.",
        "True",
    ),
    Option(
        "store_conn",
        "string",
        "",
        "SQLAlchemy URL of the airflow-wfe state store. Empty means a SQLite file "
        "``wfe.db`` in $AIRFLOW_HOME (WAL mode), fine for one machine; use PostgreSQL when workers "
        "run on several machines.",
        "postgresql+psycopg://airflow:airflow@postgres/wfe",
        sensitive=True,
    ),
    Option(
        "policy_path",
        "string",
        "",
        "Folder of organization policy files (YAML). Empty means ``$AIRFLOW_HOME/wfe_policies``.",
        "/opt/airflow/wfe_policies",
    ),
    Option(
        "audit_signing_key",
        "string",
        "",
        "Key used to sign audit checkpoints (HMAC). Keep it in a secrets backend or an env var.",
        None,
        sensitive=True,
    ),
)

_DEFAULTS: Final = {option.name: option.default for option in OPTIONS}
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n", ""}


@dataclass(frozen=True)
class Settings:
    """The ``[wfe]`` section, parsed and checked."""

    enabled: bool
    govern: GovernMode
    fail_closed: bool
    store_conn: str
    policy_path: Path
    audit_signing_key: str

    @classmethod
    def from_getter(cls, get: Callable[[str], str | None], airflow_home: Path) -> Settings:
        """Build settings from a ``name -> raw value`` lookup (``None``: not set).

        Raises:
            ConfigError: naming the option, when a value cannot be parsed.
        """

        def raw(name: str) -> str:
            value = get(name)
            return _DEFAULTS[name] if value is None else value.strip()

        govern_raw = raw("govern").lower()
        try:
            govern = GovernMode(govern_raw)
        except ValueError:
            allowed = ", ".join(m.value for m in GovernMode)
            raise ConfigError("govern", govern_raw, f"expected one of: {allowed}") from None
        store_conn = raw("store_conn") or f"sqlite:///{airflow_home / 'wfe.db'}"
        policy_path = Path(raw("policy_path") or airflow_home / "wfe_policies")
        return cls(
            enabled=_parse_bool("enabled", raw("enabled")),
            govern=govern,
            fail_closed=_parse_bool("fail_closed", raw("fail_closed")),
            store_conn=store_conn,
            policy_path=policy_path,
            audit_signing_key=raw("audit_signing_key"),
        )


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, value, "expected a boolean (True or False)")


def _airflow_getter() -> Callable[[str], str | None]:
    """A lookup through Airflow's own configuration, so airflow.cfg and env vars both count."""
    try:
        # The Task SDK's parser works in every process (task processes included) and sees
        # airflow.cfg, AIRFLOW__WFE__* variables and the provider defaults.
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - only without Airflow, e.g. in a bare core checkout
        return lambda name: os.environ.get(f"AIRFLOW__WFE__{name.upper()}")

    def get(name: str) -> str | None:
        value: Any = conf.get("wfe", name, fallback=None)
        return None if value is None else str(value)

    return get


def _airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use and then cached.

    Call :func:`reset_settings` after changing configuration in the same process (tests do).
    """
    return Settings.from_getter(_airflow_getter(), _airflow_home())


def reset_settings() -> None:
    """Forget cached settings so the next :func:`get_settings` reads the configuration again."""
    get_settings.cache_clear()
