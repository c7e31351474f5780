"""What every use case works with: settings, the store, the emitter and the recorder.

One object instead of four process-wide getters, so a face builds it once (the CLI per command, the
REST API per process) and a test builds it around a temporary store (see :mod:`airflow_wfe.testing`).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from airflow_wfe.config import Settings, get_settings
from airflow_wfe.core.metrics import Emitter
from airflow_wfe.engine.harness import get_emitter, get_recorder, get_runtime_store
from airflow_wfe.engine.recorder import Recorder
from airflow_wfe.store.contract import Store

__all__ = ["AppContext", "cli_actor", "default_context"]


@dataclass(frozen=True)
class AppContext:
    """The collaborators of a use case.

    Attributes:
        settings: the ``[wfe]`` section.
        store: where runs, decisions, costs, the audit trail and artifacts live (only through the
            :class:`~airflow_wfe.store.contract.Store` contract).
        emitter: where metrics go (a recording one in tests).
        recorder: the one path for every state change (over ``store`` and ``emitter``).
    """

    settings: Settings
    store: Store
    emitter: Emitter
    recorder: Recorder

    @classmethod
    def from_process(cls) -> AppContext:
        """The context of this process: what ``[wfe]`` and ``[metrics]`` configure (cached by the
        harness, so every face of one process shares one store and one emitter)."""
        return cls(
            settings=get_settings(),
            store=get_runtime_store(),
            emitter=get_emitter(),
            recorder=get_recorder(),
        )

    @classmethod
    def for_store(
        cls, store: Store, emitter: Emitter, settings: Settings | None = None
    ) -> AppContext:
        """A context around a given store and emitter (tests, embedding), with a recorder of its own."""
        return cls(
            settings=settings or get_settings(),
            store=store,
            emitter=emitter,
            recorder=Recorder(store, emitter),
        )


def default_context() -> AppContext:
    """Shorthand for :meth:`AppContext.from_process`."""
    return AppContext.from_process()


def cli_actor() -> str:
    """Who a command-line write is attributed to: ``cli:<OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli:unknown"
