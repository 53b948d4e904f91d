"""The distributed event log: Apache Kafka through kafka-python.

Each :class:`Topic` is one Kafka topic, ``{prefix}.{topic}``, created on first use with an
explicit partition count and replication factor. The record key is the event key, so Kafka's
default (murmur2) partitioner keeps every record's events in one partition, in order. Consumer
groups, committed positions and rebalances are Kafka's own.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import OffsetSpec
from kafka.structs import MemberState

from ledger.events import Event, Topic
from ledger.log import (
    CommitFailedError,
    EventLog,
    LogError,
    Partition,
    Position,
    StoredEvent,
    Subscription,
    topics_or_all,
)

DEFAULT_PREFIX = "crmledger"

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]+")
_TOPIC_READY_TIMEOUT_S = 30.0
_READ_POLL_MS = 500
_READ_BATCH = 5000
# A read gives up when no partition moves for this long: the broker is gone, not slow.
_READ_STALL_S = 60.0
_CLOSE_TIMEOUT_S = 30.0
# Small enough that a crashed member's partitions move on within seconds, and above the
# broker's group.min.session.timeout.ms (6 s by default).
_SESSION_TIMEOUT_MS = 10_000
_HEARTBEAT_INTERVAL_MS = 1_000
_MAX_POLL_INTERVAL_MS = 300_000
# The group protocol errors that mean "rebalanced since you polled", not "broken".
_REBALANCED = (
    kafka_errors.CommitFailedError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
)


def _parse_url(url: str) -> tuple[list[str], str, int]:
    """Bootstrap servers, topic prefix and replication factor of a ``kafka://`` URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "kafka" or not parts.netloc:
        raise LogError(f"not a Kafka log URL: {url!r} (expected kafka://host:port)")
    servers = [server.strip() for server in parts.netloc.split(",") if server.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise LogError(f"Kafka server {server!r} in {url!r} is not host:port")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"prefix", "replication"}
    if unknown:
        raise LogError(f"unknown option(s) {sorted(unknown)} in {url!r}: use prefix, replication")
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if not _TOPIC_NAME.fullmatch(prefix):
        raise LogError(f"topic prefix {prefix!r} may only hold letters, digits, '.', '_', '-'")
    replication = options.get("replication", "1")
    if not replication.isdigit() or int(replication) < 1:
        raise LogError(f"replication must be a positive whole number, got {replication!r}")
    return servers, prefix, int(replication)


@dataclass(frozen=True)
class _Names:
    """Maps crmledger topics and partitions to Kafka's names and back."""

    prefix: str

    def topic(self, topic: Topic) -> str:
        return f"{self.prefix}.{topic.value}"

    def topic_partition(self, partition: Partition) -> Any:
        return TopicPartition(self.topic(partition.topic), partition.number)

    def partition(self, tp: Any) -> Partition:
        return Partition(Topic(tp.topic.removeprefix(f"{self.prefix}.")), tp.partition)


@contextmanager
def _failing_as_log_error(doing: str) -> Iterator[None]:
    """Raise kafka-python's errors as :class:`LogError`, saying what failed."""
    try:
        yield
    except kafka_errors.KafkaError as error:
        raise LogError(f"Kafka failed {doing}: {error}") from error


def _ready_partitions(description: Mapping[str, Any] | None) -> int:
    """How many partitions a described topic has, or 0 while it or a partition has no leader."""
    if description is None or description.get("error_code", 0) != 0:
        return 0
    partitions = description.get("partitions") or []
    if any(p.get("error_code", 0) != 0 or p.get("leader_id", -1) < 0 for p in partitions):
        return 0
    return len(partitions)


class KafkaEventLog(EventLog):
    """The event log in an Apache Kafka cluster."""

    def __init__(self, url: str, *, partitions: int = 6) -> None:
        """Connect lazily to the cluster at ``url``.

        ``partitions`` is the partition count of topics this log creates; a topic that already
        exists keeps its own count.
        """
        if partitions < 1:
            raise LogError(f"a topic needs at least one partition, not {partitions}")
        self.url = url
        self.partitions = partitions
        self._servers, prefix, self._replication = _parse_url(url)
        self._names = _Names(prefix)
        self._lock = threading.Lock()
        self._admin: Any = None
        self._producer: Any = None
        self._counts: dict[Topic, int] = {}

    def _admin_client(self) -> Any:
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self._servers, client_id=f"{self._names.prefix}-admin"
            )
        return self._admin

    def _partition_counts(self, topics: Iterable[Topic]) -> dict[Topic, int]:
        """The partition count of each topic, creating the topics that do not exist yet."""
        wanted = tuple(dict.fromkeys(topics))
        with self._lock:
            missing = [topic for topic in wanted if topic not in self._counts]
            if missing:
                with _failing_as_log_error("creating topics"):
                    self._counts.update(self._create_topics(missing))
            return {topic: self._counts[topic] for topic in wanted}

    def _create_topics(self, topics: Sequence[Topic]) -> dict[Topic, int]:
        admin = self._admin_client()
        names = {self._names.topic(topic): topic for topic in topics}
        response = admin.create_topics(
            {
                name: {"num_partitions": self.partitions, "replication_factor": self._replication}
                for name in names
            },
            raise_errors=False,
        )
        created: set[str] = set()
        for result in response["topics"]:
            error = kafka_errors.for_code(result["error_code"])
            if error is kafka_errors.NoError:
                created.add(result["name"])
            elif error is not kafka_errors.TopicAlreadyExistsError:
                message = result.get("error_message") or error.__name__
                raise LogError(f"could not create Kafka topic {result['name']!r}: {message}")
        # Creation returns before every partition has a leader; produce or fetch before that
        # fails. A topic someone else created keeps whatever count it was given.
        deadline = time.monotonic() + _TOPIC_READY_TIMEOUT_S
        while True:
            described = {info["name"]: info for info in admin.describe_topics(list(names))}
            counts = {name: _ready_partitions(described.get(name)) for name in names}
            if all(
                count >= (self.partitions if name in created else 1)
                for name, count in counts.items()
            ):
                return {names[name]: count for name, count in counts.items()}
            if time.monotonic() > deadline:
                raise LogError(
                    f"Kafka topics not ready after {_TOPIC_READY_TIMEOUT_S:.0f}s: {counts}"
                )
            time.sleep(0.1)

    def _producer_client(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self._servers,
                    client_id=f"{self._names.prefix}-producer",
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=100,
                    batch_size=512 * 1024,
                )
            return self._producer

    def append(self, events: Sequence[Event]) -> None:
        """Send ``events`` keyed by their key and wait until all in-sync replicas stored them.

        Raises :class:`LogError` if any event was not stored; others may have been, so a retry
        can store some twice (consumers drop a repeated ``event_id``).
        """
        if not events:
            return
        topics = [event.topic for event in events]
        names = {topic: self._names.topic(topic) for topic in self._partition_counts(topics)}
        with _failing_as_log_error("appending events"):
            producer = self._producer_client()
            futures = [
                producer.send(
                    names[topic],
                    key=event.key.encode("utf-8"),
                    value=event.to_json().encode("utf-8"),
                    headers=[
                        ("event_id", str(event.event_id).encode("ascii")),
                        ("type", event.type.encode("utf-8")),
                    ],
                )
                for event, topic in zip(events, topics, strict=True)
            ]
            producer.flush()
        failed = [future for future in futures if not future.succeeded()]
        if failed:
            cause = failed[0].exception
            raise LogError(
                f"Kafka did not store {len(failed)} of {len(events)} events: {cause}"
            ) from cause

    def _end_offsets(self, counts: Mapping[Topic, int]) -> dict[Any, int]:
        specs = {
            TopicPartition(self._names.topic(topic), number): OffsetSpec.LATEST
            for topic, count in counts.items()
            for number in range(count)
        }
        with self._lock, _failing_as_log_error("reading end offsets"):
            offsets = self._admin_client().list_partition_offsets(specs)
        return {tp: result.offset for tp, result in offsets.items()}

    def read(
        self, topics: Iterable[Topic] | None = None, start: Position | None = None
    ) -> Iterator[StoredEvent]:
        """Every event of ``topics`` (all if None) from ``start`` up to the end as of this call.

        The end offsets are taken now; the events are fetched as the iterator is consumed.
        """
        ends = self._end_offsets(self._partition_counts(topics_or_all(topics)))
        start = start or {}
        begin = {tp: start.get(self._names.partition(tp), 0) for tp in ends}
        return self._fetch(begin, {tp: end for tp, end in ends.items() if begin[tp] < end})

    def _fetch(self, begin: Mapping[Any, int], ends: dict[Any, int]) -> Iterator[StoredEvent]:
        if not ends:
            return
        with _failing_as_log_error("connecting to read events"):
            consumer = KafkaConsumer(
                bootstrap_servers=self._servers,
                client_id=f"{self._names.prefix}-reader",
                group_id=None,
                enable_auto_commit=False,
                # An offset before the log start (retention) reads from the oldest event kept.
                auto_offset_reset="earliest",
            )
        try:
            with _failing_as_log_error("reading events"):
                consumer.assign(list(ends))
                for tp in ends:
                    consumer.seek(tp, begin[tp])
                yield from self._fetch_until(consumer, ends)
        finally:
            consumer.close(autocommit=False)

    def _fetch_until(self, consumer: Any, ends: dict[Any, int]) -> Iterator[StoredEvent]:
        moved_at = time.monotonic()
        while ends:
            batches = consumer.poll(timeout_ms=_READ_POLL_MS, max_records=_READ_BATCH)
            for tp, records in batches.items():
                end = ends.get(tp)
                if end is None:
                    continue
                partition = self._names.partition(tp)
                for record in records:
                    if record.offset >= end:
                        break
                    yield StoredEvent(partition, record.offset, Event.from_json(record.value))
            # The position, not the last record, decides: offsets may have gaps.
            done = [tp for tp, end in ends.items() if consumer.position(tp) >= end]
            if batches or done:
                moved_at = time.monotonic()
            elif time.monotonic() - moved_at > _READ_STALL_S:
                raise LogError(f"Kafka read stalled for {_READ_STALL_S:.0f}s before the end")
            for tp in done:
                del ends[tp]
            if done:
                consumer.pause(*done)

    def end_position(self, topics: Iterable[Topic] | None = None) -> dict[Partition, int]:
        """The position just after the last stored event of every partition of ``topics``."""
        ends = self._end_offsets(self._partition_counts(topics_or_all(topics)))
        return {self._names.partition(tp): end for tp, end in ends.items()}

    def subscribe(self, group: str, topics: Iterable[Topic] | None = None) -> Subscription:
        """Join consumer group ``group`` for ``topics`` (all if None).

        A new group starts at the oldest event; nothing is committed until
        :meth:`Subscription.commit` is called.
        """
        names = [
            self._names.topic(topic) for topic in self._partition_counts(topics_or_all(topics))
        ]
        with _failing_as_log_error(f"joining consumer group {group!r}"):
            consumer = KafkaConsumer(
                *names,
                bootstrap_servers=self._servers,
                client_id=f"{self._names.prefix}-{group}",
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=_SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=_HEARTBEAT_INTERVAL_MS,
                max_poll_interval_ms=_MAX_POLL_INTERVAL_MS,
            )
            # Unless asked first, kafka-python joins before it knows the topics' partitions: the
            # leader then assigns nothing, and the group rebalances again once metadata arrives.
            for name in names:
                consumer.partitions_for_topic(name)
        return _KafkaSubscription(self._names, consumer)

    def close(self) -> None:
        """Flush and close the producer, then the admin client."""
        with self._lock:
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
        if producer is not None:
            producer.close(timeout=_CLOSE_TIMEOUT_S)
        if admin is not None:
            admin.close()


class _KafkaSubscription(Subscription):
    """A member of a Kafka consumer group; commits only when told to."""

    def __init__(self, names: _Names, consumer: Any) -> None:
        self._names = names
        self._consumer = consumer

    def poll(self, max_events: int = 500, timeout: float = 1.0) -> list[StoredEvent]:
        """Up to ``max_events`` events after this member's position, waiting up to ``timeout``.

        The first poll joins the group, which takes a rebalance.
        """
        with _failing_as_log_error("polling"):
            batches = self._consumer.poll(
                timeout_ms=max(0, int(timeout * 1000)), max_records=max_events
            )
        return [
            StoredEvent(self._names.partition(tp), record.offset, Event.from_json(record.value))
            for tp, records in batches.items()
            for record in records
        ]

    def commit(self, events: Sequence[StoredEvent]) -> None:
        """Commit, per partition, the offset after the highest of ``events``.

        Raises :class:`CommitFailedError` if the group was rebalanced since the events were
        polled, including when a partition now belongs to another member.
        """
        highest: dict[Partition, int] = {}
        for stored in events:
            highest[stored.partition] = max(stored.offset, highest.get(stored.partition, -1))
        if not highest:
            return
        lost = set(highest) - self.assignment()
        if lost:
            names = ", ".join(sorted(map(str, lost)))
            raise CommitFailedError(f"partitions {names} are no longer assigned to this member")
        offsets = {
            self._names.topic_partition(partition): OffsetAndMetadata(offset + 1, "", -1)
            for partition, offset in highest.items()
        }
        with _failing_as_log_error("committing"):
            try:
                self._consumer.commit(offsets)
            except _REBALANCED as error:
                raise CommitFailedError(f"commit refused after a rebalance: {error}") from error

    def assignment(self) -> frozenset[Partition]:
        """The partitions this member currently owns: none while it is not a settled member."""
        # kafka-python keeps the last assignment of a member the group has dropped until its
        # next poll; by then the partitions belong to someone else.
        if self._consumer.group_metadata().state != MemberState.STABLE:
            return frozenset()
        return frozenset(self._names.partition(tp) for tp in self._consumer.assignment())

    def close(self) -> None:
        """Leave the group at once without committing, so its partitions move on."""
        self._consumer.close(autocommit=False)
