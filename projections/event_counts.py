"""Event counts per run, type and key prefix: the first projection, and the simplest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Connection, Table

from ledger.events import Topic
from ledger.log import StoredEvent
from projections.db import upsert
from projections.tables import event_counts


def key_prefix(key: str) -> str:
    """The part of a record key before its first colon: ``Kunden:1739201`` → ``Kunden``."""
    return key.split(":", 1)[0]


class EventCounts:
    """Counts every event by run, type and key prefix."""

    name = "event_counts"
    topics: tuple[Topic, ...] = tuple(Topic)
    tables: tuple[Table, ...] = (event_counts,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Add ``events`` to the counts."""
        counted = Counter(
            (stored.event.run_id, stored.event.type, key_prefix(stored.event.key))
            for stored in events
        )
        upsert(
            connection,
            event_counts,
            [
                {"run_id": run, "type": type_, "key_prefix": prefix, "count": n}
                for (run, type_, prefix), n in sorted(counted.items())
            ],
            keys=("run_id", "type", "key_prefix"),
            add=("count",),
        )
