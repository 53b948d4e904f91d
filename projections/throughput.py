"""Events per run, type and second: how fast each stage moved, from the events' own times."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC

from sqlalchemy import Connection, Table

from ledger.events import Topic
from ledger.log import StoredEvent
from projections.db import upsert
from projections.tables import event_throughput


class Throughput:
    """Counts every event by run, type and the second of its ``occurred_at``."""

    name = "event_throughput"
    topics: tuple[Topic, ...] = tuple(Topic)
    tables: tuple[Table, ...] = (event_throughput,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Add ``events`` to the per-second counts."""
        counted = Counter(
            (
                stored.event.run_id,
                stored.event.type,
                stored.event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            )
            for stored in events
        )
        upsert(
            connection,
            event_throughput,
            [
                {"run_id": run, "type": type_, "second": second, "count": n}
                for (run, type_, second), n in sorted(counted.items())
            ],
            keys=("run_id", "type", "second"),
            add=("count",),
        )
