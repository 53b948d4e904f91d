"""The event log interface, shared by the embedded (SQLite) and distributed (Kafka) backends.

A log holds one ordered stream per (topic, partition). An event's key chooses its partition, so
all events of one record stay in order. Positions are per partition: ``Position`` maps each
partition to the offset of the next event to read there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from ledger.events import Event, Topic


class LogError(RuntimeError):
    """The event log could not do what was asked."""


class CommitFailedError(LogError):
    """A consumer's commit was refused because its group was rebalanced since it polled.

    The consumer must poll again: it then receives, from the committed positions, every event it
    had not committed.
    """


@dataclass(frozen=True, order=True)
class Partition:
    """One ordered stream of a topic."""

    topic: Topic
    number: int

    def __str__(self) -> str:
        return f"{self.topic.value}/{self.number}"


Position = Mapping[Partition, int]
"""Offset of the next event to read, per partition; a partition not named starts at 0."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the log holds it: where it is and what it is."""

    partition: Partition
    offset: int
    event: Event


def advance(position: Position, events: Iterable[StoredEvent]) -> dict[Partition, int]:
    """The position just after ``events``, starting from ``position``."""
    moved = dict(position)
    for stored in events:
        if stored.offset >= moved.get(stored.partition, 0):
            moved[stored.partition] = stored.offset + 1
    return moved


class _Closeable(ABC):
    """Closed at the end of a ``with`` block."""

    @abstractmethod
    def close(self) -> None:
        """Release what this object holds."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Subscription(_Closeable):
    """A named consumer in a group: receives events of its partitions and commits its positions.

    Members of one group share the partitions; each event is delivered to one member, and again
    after a crash or rebalance only if its offset had not been committed.
    """

    @abstractmethod
    def poll(self, max_events: int = 500, timeout: float = 1.0) -> list[StoredEvent]:
        """Up to ``max_events`` events after this member's position, waiting up to ``timeout``."""

    @abstractmethod
    def commit(self, events: Sequence[StoredEvent]) -> None:
        """Record that ``events`` (and everything before them in their partitions) are done.

        Raises :class:`CommitFailedError` if the group was rebalanced since the last poll.
        """

    @abstractmethod
    def assignment(self) -> frozenset[Partition]:
        """The partitions this member currently owns."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group without committing anything further."""


class EventLog(_Closeable):
    """An append-only, partitioned log of :class:`Event` s."""

    url: str

    @abstractmethod
    def append(self, events: Sequence[Event]) -> None:
        """Append ``events`` durably, each to its type's topic and its key's partition.

        Returns once every event is stored (acknowledged by all in-sync replicas on Kafka).
        """

    @abstractmethod
    def read(
        self, topics: Iterable[Topic] | None = None, start: Position | None = None
    ) -> Iterator[StoredEvent]:
        """Every event of ``topics`` (all if None) from ``start`` up to the end as of this call.

        Order is kept within each partition; across partitions it is unspecified.
        """

    @abstractmethod
    def end_position(self, topics: Iterable[Topic] | None = None) -> dict[Partition, int]:
        """The position just after the last stored event of every partition of ``topics``."""

    @abstractmethod
    def subscribe(self, group: str, topics: Iterable[Topic] | None = None) -> Subscription:
        """Join consumer group ``group`` for ``topics`` (all if None)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and files."""


def topics_or_all(topics: Iterable[Topic] | None) -> tuple[Topic, ...]:
    """``topics`` as a tuple, or every topic when None."""
    return tuple(Topic) if topics is None else tuple(topics)


def open_log(url: str, *, partitions: int = 6) -> EventLog:
    """Open the event log at ``url``: ``sqlite:///path`` (embedded) or ``kafka://host:port``.

    ``partitions`` is the partition count of topics this log creates.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from ledger.sqlite_log import SqliteEventLog

        return SqliteEventLog(url, partitions=partitions)
    if scheme == "kafka":
        from ledger.kafka_log import KafkaEventLog

        return KafkaEventLog(url, partitions=partitions)
    raise LogError(
        f"unsupported log URL {url!r}: use sqlite:///path/to/ledger.db or kafka://host:port"
    )
