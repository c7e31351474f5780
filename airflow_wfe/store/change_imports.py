"""Events imported from another system's log (Airflow's audit log), moved past by a cursor.

The cursor (the last imported row id per source) is written in the same transaction as the events it
covers, so an import never duplicates nor skips a row, even when two processes import at once: the
second one finds the cursor moved and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select, update

from airflow_wfe.core.audit.events import AuditEvent
from airflow_wfe.store.base import StoreBase
from airflow_wfe.store.tables import sync_cursor_table

__all__ = ["ChangeImports"]


class ChangeImports(StoreBase):
    """Sync cursors and the events imported under them."""

    def sync_position(self, source: str) -> int:
        """The last row id imported from ``source`` (0 before the first import)."""
        position = self._scalar(
            select(sync_cursor_table.c.position).where(sync_cursor_table.c.source == source)
        )
        return int(position or 0)

    def import_events(
        self, source: str, *, start: int, position: int, events: Sequence[AuditEvent]
    ) -> int:
        """Append ``events`` and move ``source``'s cursor from ``start`` to ``position``, in one
        transaction; returns how many events were written.

        Writes nothing (and returns 0) when the cursor is no longer at ``start``: another process
        imported these rows meanwhile.
        """

        def attempt(connection: Connection) -> int:
            current = connection.execute(
                select(sync_cursor_table.c.position)
                .where(sync_cursor_table.c.source == source)
                .with_for_update()
            ).scalar()
            if int(current or 0) != start:
                return 0
            if current is None:
                connection.execute(
                    insert(sync_cursor_table).values(source=source, position=position)
                )
            else:
                connection.execute(
                    update(sync_cursor_table)
                    .where(sync_cursor_table.c.source == source)
                    .values(position=position)
                )
            self.audit.append(connection, events)
            return len(events)

        return self._write(f"{source} import", attempt)
