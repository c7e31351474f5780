"""The audit append's statements in each driver's own parameter style.

The append runs on the raw DBAPI cursor while the chain head is locked (every statement saved there is
time no other writer can append), so its SQL is written out once per driver (paramstyle, dialect)
instead of being compiled by SQLAlchemy per call; see :mod:`.audit_writer` for how it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection

from airflow_wfe.core.audit.partitions import MAIN
from airflow_wfe.core.audit.verify import ROW_COLUMNS
from airflow_wfe.store.tables import audit_event_table, audit_head_table

__all__ = ["CHAIN", "EVENT_COLUMNS", "HEAD_COLUMNS", "DriverSql", "driver_sql"]

#: The chain of an unpartitioned store, and partition 0 of a partitioned one.
CHAIN: Final = MAIN

#: Written in the order verification reads them back, after the chain's name.
EVENT_COLUMNS: Final = ("chain", *ROW_COLUMNS)
HEAD_COLUMNS: Final = ("seq", "hash", "at", "signature", "algorithm", "key_id")


@dataclass(frozen=True)
class DriverSql:
    """The append's statements in one driver's parameter style, and how to pass parameters."""

    lock_head: str
    insert_event: str
    move_head: str
    #: Insert one event and move the head in one statement (PostgreSQL: one round trip fewer
    #: while the head is locked); ``None`` where data-modifying CTEs do not exist.
    insert_and_move: str | None
    #: Move the head only if it is still where this process last left it (``old_seq`` and
    #: ``old_hash``): the append's optimistic path, which needs no read of the head first.
    move_head_if: str
    #: ``move_head_if`` and, only if it moved the head, the insert of the one event, in one
    #: statement (PostgreSQL); ``None`` elsewhere (the insert then follows ``move_head_if``).
    move_and_insert: str | None
    named: bool
    #: The dialect's name (``sqlite``, ``postgresql``...).
    dialect: str = ""

    @classmethod
    def build(cls, paramstyle: str, dialect: str) -> DriverSql:
        def mark(name: str, position: int) -> str:
            return {
                "qmark": "?",
                "format": "%s",
                "numeric": f":{position}",
                "named": f":{name}",
                "pyformat": f"%({name})s",
            }[paramstyle]

        named = paramstyle in ("named", "pyformat")
        events = audit_event_table.name
        head = audit_head_table.name
        values = ", ".join(mark(c, i) for i, c in enumerate(EVENT_COLUMNS, 1))
        assignments = ", ".join(f"{c} = {mark(c, i)}" for i, c in enumerate(HEAD_COLUMNS, 1))
        n = len(HEAD_COLUMNS)
        # SQLite has no FOR UPDATE: its transactions already hold the write lock (BEGIN IMMEDIATE).
        lock = "" if dialect == "sqlite" else " FOR UPDATE"
        insert_event = f"INSERT INTO {events} ({', '.join(EVENT_COLUMNS)}) VALUES ({values})"
        insert_and_move = None
        if dialect == "postgresql":
            # Parameters numbered on: the event's first, then the head's (same order as move_head).
            m = len(EVENT_COLUMNS)
            head_set = ", ".join(f"{c} = {mark(c, m + i)}" for i, c in enumerate(HEAD_COLUMNS, 1))
            insert_and_move = (
                f"WITH inserted AS ({insert_event}) UPDATE {head} SET {head_set} "
                f"WHERE chain = {mark('chain', m + n + 1)} AND seq = {mark('old_seq', m + n + 2)}"
            )
        where_if = (
            f"WHERE chain = {mark('chain', n + 1)} AND seq = {mark('old_seq', n + 2)} "
            f"AND hash = {mark('old_hash', n + 3)}"
        )
        move_head_if = f"UPDATE {head} SET {assignments} {where_if}"
        move_and_insert = None
        if dialect == "postgresql":
            # Parameters: the head's (as move_head_if), then the event's.
            selected = ", ".join(mark(c, n + 3 + i) for i, c in enumerate(EVENT_COLUMNS, 1))
            move_and_insert = (
                f"WITH moved AS ({move_head_if} RETURNING 1) "
                f"INSERT INTO {events} ({', '.join(EVENT_COLUMNS)}) SELECT {selected} FROM moved"
            )
        return cls(
            lock_head=f"SELECT seq, hash FROM {head} WHERE chain = {mark('chain', 1)}{lock}",
            insert_event=insert_event,
            move_head=f"UPDATE {head} SET {assignments} "
            f"WHERE chain = {mark('chain', n + 1)} AND seq = {mark('old_seq', n + 2)}",
            insert_and_move=insert_and_move,
            move_head_if=move_head_if,
            move_and_insert=move_and_insert,
            named=named,
            dialect=dialect,
        )


_DRIVER_SQL: dict[tuple[str, str], DriverSql] = {}


#: Drivers that take ``%s`` placeholders with a tuple as well as their declared ``pyformat``:
#: a tuple of values costs less to build (and for the driver to read) than a dict per append.
_POSITIONAL: Final = {"psycopg", "psycopg2"}


def driver_sql(connection: Connection) -> DriverSql:
    """The append's statements for ``connection``'s driver (built once per driver)."""
    dialect = connection.dialect
    style = dialect.paramstyle
    if style == "pyformat" and dialect.driver in _POSITIONAL:
        style = "format"
    key = (style, dialect.name)
    sql = _DRIVER_SQL.get(key)
    if sql is None:
        sql = _DRIVER_SQL[key] = DriverSql.build(style, dialect.name)
    return sql
