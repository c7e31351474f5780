"""The ``[wfe]`` configuration section: declared once, read lazily, handed around frozen.

The option table below is the single source: the provider info publishes it to Airflow (so
``airflow config list --section wfe`` shows it with defaults and descriptions), and
:func:`get_settings` falls back to the same defaults when a process has not loaded provider config.
Values are read through Airflow's configuration (``airflow.cfg`` or ``AIRFLOW__WFE__*``) the first time
something asks, never at import time, because DAG files import this package; a process that has not
imported Airflow (the ``wfe`` command) reads the same file and variables itself where that is exact.
"""

from __future__ import annotations

import configparser
import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from airflow_wfe.durations import parse_window
from airflow_wfe.exceptions import ConfigError

__all__ = [
    "GOVERNED_TAG",
    "OPTIONS",
    "PARSE_TIME_CHECKS",
    "GovernMode",
    "Option",
    "Settings",
    "airflow_config_file",
    "airflow_option",
    "fast_getter",
    "get_settings",
    "parse_window",
    "reset_settings",
]

#: What ``[wfe] parse_time_checks`` may name (see :mod:`airflow_wfe.adapters.parse_time_checks`).
PARSE_TIME_CHECKS: Final = ("owner", "retries", "execution_timeout", "tags", "compensation")

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
        "store_connect_timeout",
        "float",
        "3",
        "Seconds a hook waits to open a connection to the store (PostgreSQL ``connect_timeout``, "
        "at least 2 s by libpq's rule). When it runs out the transition goes to the spool "
        "(fail_closed = False) or the task fails (fail_closed = True); see docs/reliability.md.",
        "5",
    ),
    Option(
        "store_statement_timeout",
        "float",
        "5",
        "Seconds one statement of the store may run (PostgreSQL ``statement_timeout``; a SQLite "
        "statement only ever waits for the write lock, bounded by store_lock_timeout).",
        "10",
    ),
    Option(
        "store_lock_timeout",
        "float",
        "3",
        "Seconds a write waits for a lock held by another writer, retries included (PostgreSQL "
        "``lock_timeout``, SQLite ``busy_timeout``).",
        "5",
    ),
    Option(
        "spool_path",
        "string",
        "",
        "Folder of the local spool, where transitions the store could not take wait (one file per "
        "host and store, fsynced) until a later hook or ``wfe spool flush`` writes them. Empty "
        "means ``$AIRFLOW_HOME/wfe_spool``; use a local disk.",
        "/var/lib/airflow/wfe_spool",
    ),
    Option(
        "spool_max_mb",
        "integer",
        "64",
        "Size bound of one spool file, in MiB. A transition that finds the spool full is lost, "
        "with an error saying so (logged and counted as ``wfe.spool.full``).",
        "256",
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
        "Key that signs the audit chain's head, checkpoints, archives and anchors. Empty: an HMAC "
        "key generated into $AIRFLOW_HOME/wfe_audit.key by the first event of an empty trail, "
        "for the embedded SQLite store on one machine only (a server store refuses it: run "
        "``wfe audit keygen`` and configure the key on every machine that writes). "
        "``file:/path`` reads an HMAC key from a file, ``ed25519:/path/key.pem`` signs with an "
        "Ed25519 private key (verifiers need only its public key); any other value is the HMAC key "
        "itself (use ``AIRFLOW__WFE__AUDIT_SIGNING_KEY_SECRET`` or ``_CMD`` to keep it out of "
        "airflow.cfg).",
        "ed25519:/opt/airflow/secrets/wfe_audit.pem",
        sensitive=True,
    ),
    Option(
        "parse_time_checks",
        "string",
        "",
        "What every task of a governed DAG must declare, checked when Airflow parses the DAG "
        "file (a DAG that fails is refused with every problem listed): comma-separated among "
        "owner, retries, execution_timeout, tags, compensation; ``all`` for every one.",
        "owner,retries,execution_timeout,tags",
    ),
    Option(
        "audit_checkpoint_interval",
        "integer",
        "1000",
        "A signed checkpoint every this many audit events (0: only the signed head and manual "
        "checkpoints).",
        "500",
    ),
    Option(
        "audit_redact",
        "string",
        "",
        "Extra key-name fragments (comma-separated, case-insensitive) whose values never reach the "
        "store or the audit trail, on top of Airflow's secrets masker and the built-in list "
        "(password, secret, token, api_key, ...).",
        "iban,ssn",
    ),
    Option(
        "audit_verify_keys",
        "string",
        "",
        "Extra keys ``wfe audit verify`` accepts, comma-separated: Ed25519 public (or private) PEM "
        "files as paths or ``ed25519:PATH``, HMAC key files as ``file:PATH``. List the old keys "
        "here after a rotation, or only public keys on an auditor's machine. Never created.",
        "/opt/airflow/secrets/wfe-audit-2026.pub.pem,file:/opt/airflow/secrets/old.key",
    ),
    Option(
        "audit_anchor_dir",
        "string",
        "",
        "Folder outside the store (a mounted volume, an object store mount) where signed anchors "
        "of the chain's position are written: at every periodic checkpoint and by ``wfe audit "
        "anchor``. ``wfe audit verify --anchors DIR`` then detects a truncated, rolled back or "
        "erased store. Empty: none written.",
        "/mnt/wfe-anchors",
    ),
    Option(
        "audit_partitions",
        "integer",
        "16",
        "How many hash chains the audit trail is spread over, by a stable hash of the DAG id (1 to "
        "256). Writers of DAGs in different partitions never wait for each other, and "
        "``wfe audit verify`` checks partitions in parallel; a signed tree head over every "
        "partition's head keeps them one trail. 1: one chain, as before partitions existed. The "
        "default, 16, lets 8 concurrent writers of different DAGs mostly land on different "
        "partitions (docs/audit.md). Changing it later is safe: new events follow the new count, "
        "existing chains stay as they are.",
        "32",
    ),
    # -- metrics: empty means "as in Airflow's [metrics] section" ---------------------------------
    Option(
        "statsd_on",
        "string",
        "",
        "Send airflow-wfe's metrics to StatsD. Empty follows ``[metrics] statsd_on``.",
        "True",
    ),
    Option(
        "statsd_host",
        "string",
        "",
        "StatsD host for airflow-wfe's metrics. Empty follows ``[metrics] statsd_host``.",
        "statsd-exporter",
    ),
    Option(
        "statsd_port",
        "string",
        "",
        "StatsD UDP port. Empty follows ``[metrics] statsd_port``.",
        "9125",
    ),
    Option(
        "statsd_prefix",
        "string",
        "",
        "Prefix of every name (``<prefix>.wfe.run.state.completed``). Empty follows "
        "``[metrics] statsd_prefix``.",
        "airflow",
    ),
    Option(
        "statsd_allow_list",
        "string",
        "",
        "Comma-separated regexes of ``wfe.*`` names to send (matched against the un-prefixed name). "
        "Empty follows ``[metrics] metrics_allow_list``.",
        r"^wfe\.(run|dora)",
    ),
    Option(
        "statsd_tags",
        "boolean",
        "False",
        "Add DogStatsD-style tags (``dag_id``, ``step``, ...) to every metric line; "
        "statsd_exporter and Datadog turn them into labels.",
        "True",
    ),
    Option(
        "deployment_dags",
        "string",
        "",
        "Comma-separated DAG ids or glob patterns whose runs are deployments: the end of each of "
        "their runs emits the DORA gauges. ``wfe dora`` also counts DAGs tagged ``deployment``.",
        "deploy_*,release_api",
    ),
    Option(
        "dora_window",
        "string",
        "30d",
        "Window of the DORA gauges emitted at the end of a deployment run (``30d``, ``12h``).",
        "7d",
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
    parse_time_checks: tuple[str, ...] = ()
    audit_checkpoint_interval: int = 1000
    audit_redact: tuple[str, ...] = ()
    audit_verify_keys: tuple[str, ...] = ()
    audit_anchor_dir: Path | None = None
    audit_partitions: int = 16
    airflow_home: Path = Path()
    # Metrics overrides of Airflow's [metrics]: None / empty means "follow [metrics]".
    statsd_on: bool | None = None
    statsd_host: str = ""
    statsd_port: int | None = None
    statsd_prefix: str = ""
    statsd_allow_list: str = ""
    statsd_tags: bool = False
    deployment_dags: tuple[str, ...] = ()
    dora_window: timedelta = timedelta(days=30)
    # Bounded waits on the store and the local spool (docs/reliability.md).
    store_connect_timeout: float = 3.0
    store_statement_timeout: float = 5.0
    store_lock_timeout: float = 3.0
    spool_path: Path = Path()
    spool_max_mb: int = 64

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
            **_metrics_options(raw),
            enabled=_parse_bool("enabled", raw("enabled")),
            govern=govern,
            fail_closed=_parse_bool("fail_closed", raw("fail_closed")),
            store_conn=store_conn,
            policy_path=policy_path,
            audit_signing_key=raw("audit_signing_key"),
            parse_time_checks=_parse_checks(raw("parse_time_checks")),
            audit_checkpoint_interval=_parse_count(
                "audit_checkpoint_interval", raw("audit_checkpoint_interval")
            ),
            audit_redact=tuple(
                part.strip() for part in raw("audit_redact").split(",") if part.strip()
            ),
            audit_verify_keys=tuple(
                part.strip() for part in raw("audit_verify_keys").split(",") if part.strip()
            ),
            audit_anchor_dir=Path(raw("audit_anchor_dir")) if raw("audit_anchor_dir") else None,
            audit_partitions=_parse_partitions(raw("audit_partitions")),
            airflow_home=airflow_home,
            store_connect_timeout=_parse_seconds(
                "store_connect_timeout", raw("store_connect_timeout")
            ),
            store_statement_timeout=_parse_seconds(
                "store_statement_timeout", raw("store_statement_timeout")
            ),
            store_lock_timeout=_parse_seconds("store_lock_timeout", raw("store_lock_timeout")),
            spool_path=Path(raw("spool_path") or airflow_home / "wfe_spool"),
            spool_max_mb=_parse_count("spool_max_mb", raw("spool_max_mb")),
        )


def _parse_checks(value: str) -> tuple[str, ...]:
    # Parsed here, not in airflow_wfe.core.policy: every process reads its settings, and the policy
    # package loads pydantic models and CEL (hundreds of milliseconds) that most never need.
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if names == ["all"]:
        return PARSE_TIME_CHECKS
    unknown = sorted(set(names) - set(PARSE_TIME_CHECKS))
    if unknown:
        known = ", ".join(PARSE_TIME_CHECKS)
        raise ConfigError(
            "parse_time_checks",
            value,
            f"unknown check(s) {', '.join(unknown)}; known: all, {known}",
        )
    return tuple(n for n in PARSE_TIME_CHECKS if n in names)


def _parse_count(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(name, value, "expected a whole number, 0 or more")
    return number


def _parse_partitions(value: str) -> int:
    number = _parse_count("audit_partitions", value)
    if not 1 <= number <= 256:  # core.audit.partitions.MAX_PARTITIONS (not imported: parse cost)
        raise ConfigError("audit_partitions", value, "expected a whole number from 1 to 256")
    return number


def _parse_seconds(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < 86_400:
        raise ConfigError(name, value, "expected a number of seconds, more than 0 (e.g. 3 or 0.5)")
    return number


def _metrics_options(raw: Callable[[str], str]) -> dict[str, Any]:
    """The metrics overrides of :class:`Settings`, parsed."""
    port = raw("statsd_port")
    if port and not port.isdigit():
        raise ConfigError("statsd_port", port, "expected a port number")
    window = raw("dora_window")
    try:
        dora_window = parse_window(window)
    except ValueError as exc:
        raise ConfigError("dora_window", window, str(exc)) from None
    return {
        "statsd_on": _parse_bool("statsd_on", raw("statsd_on")) if raw("statsd_on") else None,
        "statsd_host": raw("statsd_host"),
        "statsd_port": int(port) if port else None,
        "statsd_prefix": raw("statsd_prefix"),
        "statsd_allow_list": raw("statsd_allow_list"),
        "statsd_tags": _parse_bool("statsd_tags", raw("statsd_tags")),
        "deployment_dags": tuple(p.strip() for p in raw("deployment_dags").split(",") if p.strip()),
        "dora_window": dora_window,
    }


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, value, "expected a boolean (True or False)")


# -- Reading airflow.cfg without importing Airflow ---------------------------------------------
# Importing Airflow to read its configuration costs about a second (its package __init__ loads
# settings, providers and logging), which the `wfe` command would pay before every answer. Most
# options come from two places this reader reads the way Airflow does: an AIRFLOW__SECTION__KEY
# environment variable, then `[section] key` in airflow.cfg ($AIRFLOW_CONFIG, else
# $AIRFLOW_HOME/airflow.cfg), both with Airflow's $VAR and ~ expansion; else the caller's default.
# Whatever it cannot reproduce exactly makes it step aside for Airflow's own configuration: a
# `_cmd` / `_secret` variant of an option of the section (a command to run, a secrets backend to
# ask), or a process that has imported Airflow's configuration already (nothing more to pay, and it
# sees options set in the process, e.g. by tests). Schedulers, workers and task processes always
# have, so only cold command-line processes take the fast path.

#: Airflow's configuration modules: once one of them is loaded, Airflow's ``conf`` answers.
_AIRFLOW_CONFIG_MODULES = ("airflow.configuration", "airflow.sdk.configuration")


def _expand(value: str) -> str:
    """``$VAR`` and ``~`` expanded until stable, as Airflow's ``expand_env_var`` does."""
    while True:
        expanded = os.path.expanduser(os.path.expandvars(value))
        if expanded == value:
            return expanded
        value = expanded


def airflow_config_file() -> Path:
    """The ``airflow.cfg`` Airflow reads: ``$AIRFLOW_CONFIG``, else ``$AIRFLOW_HOME/airflow.cfg``."""
    explicit = os.environ.get("AIRFLOW_CONFIG")
    if explicit is not None:
        return Path(_expand(explicit))
    home = _expand(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    return Path(home) / "airflow.cfg"


@functools.cache
def _parsed(path: Path, mtime_ns: int) -> configparser.ConfigParser:
    """``airflow.cfg`` parsed (cached per path and modification time)."""
    parser = configparser.ConfigParser()  # Airflow's parser is a ConfigParser: same interpolation
    parser.read(path, encoding="utf-8")
    return parser


def _file_section(section: str) -> Mapping[str, str]:
    path = airflow_config_file()
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:  # no airflow.cfg yet (Airflow writes one on its first start)
        return {}
    parser = _parsed(path, mtime_ns)
    if not parser.has_section(section):
        return {}
    return {key: parser.get(section, key) for key in parser.options(section)}


def _airflow_loaded() -> bool:
    return any(name in sys.modules for name in _AIRFLOW_CONFIG_MODULES)


def fast_getter(section: str) -> Callable[[str], str | None] | None:
    """A ``key -> value`` lookup of ``section`` read without Airflow, or None where it would differ.

    None means: ask Airflow's configuration (already imported, or the section uses ``_cmd`` /
    ``_secret`` options that only Airflow can resolve). The lookup returns None for an option set
    nowhere, so the caller applies its own default.

    Raises:
        configparser.Error: when ``airflow.cfg`` cannot be parsed (Airflow refuses it too).
    """
    if _airflow_loaded():
        return None
    prefix = f"AIRFLOW__{section.upper()}__"
    names = [name for name in os.environ if name.startswith(prefix)]
    from_file = _file_section(section)
    if any(name.endswith(("_CMD", "_SECRET")) for name in names) or any(
        key.endswith(("_cmd", "_secret")) for key in from_file
    ):
        return None

    def get(key: str) -> str | None:
        value = os.environ.get(f"{prefix}{key.upper()}")
        if value is None:
            value = from_file.get(key.lower())
        return None if value is None else _expand(value)

    return get


def airflow_option(section: str, key: str, fallback: str) -> str:
    """One option of Airflow's configuration: read without Airflow when exact, else through it.

    For callers outside ``[wfe]`` (the emitter reads ``[metrics]``); ``fallback`` is Airflow's own
    default for the option.
    """
    fast = fast_getter(section)
    if fast is not None:
        value = fast(key)
        return fallback if value is None else value
    from airflow.sdk import conf

    found = conf.get(section, key, fallback=fallback)
    return fallback if found is None else str(found)


def _airflow_getter() -> Callable[[str], str | None]:
    """A lookup through Airflow's own configuration, so airflow.cfg and env vars both count.

    A process that has not imported Airflow (the ``wfe`` command) reads ``airflow.cfg`` and the
    ``AIRFLOW__WFE__*`` variables itself when that gives the same answer (see
    :func:`fast_getter`): importing Airflow to read them would cost about a second.
    """
    fast = fast_getter("wfe")
    if fast is not None:
        return fast
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
    _parsed.cache_clear()
