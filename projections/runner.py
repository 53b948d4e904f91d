"""The projection runner: applies log events to SQL tables, position and effect in one transaction.

Each batch is one database transaction that reads the projection's stored positions, applies only
the events at or after them, and stores the new positions. A crash between batches loses
nothing (the log still has the events) and a redelivered event is skipped (its offset is below
the stored position), so applying the log any number of times gives the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol

from sqlalchemy import Connection, Engine, Table, delete, select, text

from ledger.events import Topic
from ledger.log import EventLog, Partition, StoredEvent, advance
from projections.db import upsert
from projections.delta_state import DeltaState
from projections.event_counts import EventCounts
from projections.records import RecordStates
from projections.rollback_plan import RollbackPlan
from projections.tables import projection_positions
from projections.throughput import Throughput


class Projection(Protocol):
    """A read model fed from the log."""

    name: str
    topics: tuple[Topic, ...]
    tables: tuple[Table, ...]

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply ``events`` (new to this projection, in partition order) within ``connection``."""


def default_projections() -> list[Projection]:
    """Every projection crmledger maintains."""
    return [EventCounts(), RecordStates(), RollbackPlan(), DeltaState(), Throughput()]


Progress = Callable[[int], None]


def _batches(events: Iterator[StoredEvent], size: int) -> Iterator[list[StoredEvent]]:
    while batch := list(islice(events, size)):
        yield batch


class ProjectionRunner:
    """Keeps ``projections`` in the database behind ``engine`` up to date with ``log``."""

    def __init__(
        self,
        log: EventLog,
        engine: Engine,
        projections: Iterable[Projection] | None = None,
        *,
        batch_size: int = 2000,
    ) -> None:
        """Prepare a runner; the schema must already be at Alembic head."""
        self._log = log
        self._engine = engine
        self._projections = list(default_projections() if projections is None else projections)
        self._batch_size = batch_size

    def run(self, progress: Progress | None = None) -> int:
        """Apply every event up to the current end of the log; return how many were applied."""
        topics = sorted({topic for p in self._projections for topic in p.topics})
        with self._engine.connect() as connection:
            stored = {p.name: self._positions(connection, p.name) for p in self._projections}
        start = {
            partition: min(positions.get(partition, 0) for positions in stored.values())
            for partition in self._log.end_position(topics)
        }
        applied = 0
        for batch in _batches(iter(self._log.read(topics, start)), self._batch_size):
            applied += self.apply_batch(batch)
            if progress is not None:
                progress(len(batch))
        return applied

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empty every projection and its positions, then apply the whole log again."""
        with self._engine.begin() as connection:
            for projection in self._projections:
                for table in projection.tables:
                    connection.execute(delete(table))
                connection.execute(
                    delete(projection_positions).where(
                        projection_positions.c.projection == projection.name
                    )
                )
        return self.run(progress)

    def apply_batch(self, batch: Sequence[StoredEvent]) -> int:
        """Apply ``batch`` in one transaction, skipping events already applied.

        Returns how many events at least one projection applied.
        """
        applied: set[tuple[Partition, int]] = set()
        with self._engine.begin() as connection:
            for projection in self._projections:
                self._lock(connection, projection.name)
                # Positions are re-read inside the transaction: another runner may have moved them.
                positions = self._positions(connection, projection.name)
                new = [
                    stored
                    for stored in batch
                    if stored.partition.topic in projection.topics
                    and stored.offset >= positions.get(stored.partition, 0)
                ]
                if not new:
                    continue
                projection.apply(connection, new)
                moved = advance(positions, new)
                upsert(
                    connection,
                    projection_positions,
                    [
                        {
                            "projection": projection.name,
                            "topic": partition.topic.value,
                            "partition": partition.number,
                            "next_offset": offset,
                        }
                        for partition, offset in sorted(moved.items())
                        if positions.get(partition) != offset
                    ],
                    keys=("projection", "topic", "partition"),
                )
                applied.update((stored.partition, stored.offset) for stored in new)
        return len(applied)

    @staticmethod
    def _lock(connection: Connection, name: str) -> None:
        # SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs an explicit lock so
        # two runners of one projection cannot both apply the same batch.
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name}
            )

    @staticmethod
    def _positions(connection: Connection, name: str) -> dict[Partition, int]:
        rows = connection.execute(
            select(
                projection_positions.c.topic,
                projection_positions.c.partition,
                projection_positions.c.next_offset,
            ).where(projection_positions.c.projection == name)
        )
        return {Partition(Topic(topic), part): offset for topic, part, offset in rows}
