"""One contract for every EventLog backend, run against SQLite and a real Apache Kafka broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ledger.event_types import SourceRecordExtracted
from ledger.events import Event, Topic
from ledger.kafka_log import KafkaEventLog
from ledger.log import CommitFailedError, EventLog, Partition, StoredEvent, Subscription
from ledger.sqlite_log import SqliteEventLog

PARTITIONS = 3


def extracted(key: str, number: int, run_id: str = "contract") -> Event:
    """A SourceRecordExtracted event for ``key``; ``number`` makes it unique."""
    values = {"Code": number, "Name": f"Firma {number}"}
    return Event.create(
        SourceRecordExtracted(
            table=key.split(":")[0],
            source_key=key.split(":")[1],
            raw=values,
            normalised=values,
            content_hash=f"{number:064x}",
        ),
        run_id=run_id,
        key=key,
        cause=str(number),
    )


def many(count: int, keys: int) -> list[Event]:
    """``count`` events spread round-robin over ``keys`` record keys."""
    return [extracted(f"Kunden:{n % keys}", n) for n in range(count)]


def drain(subscription: Subscription, expected: int, settle: float = 2.0) -> list[StoredEvent]:
    """Poll until ``expected`` events arrived (60 s at most), then ``settle`` s more for extras."""
    received: list[StoredEvent] = []
    deadline = time.monotonic() + 60
    while len(received) < expected and time.monotonic() < deadline:
        received += subscription.poll(max_events=1000, timeout=0.5)
    quiet_until = time.monotonic() + settle
    while time.monotonic() < quiet_until:
        received += subscription.poll(max_events=1000, timeout=0.2)
    return received


def ids(events: Sequence[StoredEvent]) -> list[uuid.UUID]:
    """The event ids of ``events``, in order."""
    return [stored.event.event_id for stored in events]


class EventLogContract:
    """What every event log backend must do; subclasses provide the ``log`` fixture."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        raise AssertionError("a backend test class must override the log fixture")

    def test_events_of_one_key_keep_their_order(self, log: EventLog) -> None:
        appended = many(600, keys=7)
        for start in range(0, 600, 150):
            log.append(appended[start : start + 150])

        by_key: dict[str, list[uuid.UUID]] = defaultdict(list)
        for stored in log.read([Topic.SOURCE]):
            by_key[stored.event.key].append(stored.event.event_id)

        expected: dict[str, list[uuid.UUID]] = defaultdict(list)
        for event in appended:
            expected[event.key].append(event.event_id)
        assert by_key == expected

    def test_a_batch_of_10000_events_reads_back_intact(self, log: EventLog) -> None:
        appended = many(10_000, keys=500)
        log.append(appended)

        read = list(log.read())
        assert len(read) == 10_000
        assert {stored.event.to_json() for stored in read} == {e.to_json() for e in appended}
        assert sorted(read, key=lambda s: (s.partition, s.offset)) == sorted(
            read, key=lambda s: (s.partition, s.event.payload["raw"]["Code"])
        )

    def test_event_ids_survive_the_round_trip(self, log: EventLog) -> None:
        appended = many(50, keys=5)
        log.append(appended)

        read = list(log.read([Topic.SOURCE]))
        assert sorted(ids(read)) == sorted(e.event_id for e in appended)
        assert all(s.event == e for s in read for e in appended if e.event_id == s.event.event_id)
        with log.subscribe(f"ids-{uuid.uuid4().hex}", [Topic.SOURCE]) as consumer:
            assert sorted(ids(drain(consumer, 50, settle=0.5))) == sorted(ids(read))

    def test_reading_from_a_position_returns_only_later_events(self, log: EventLog) -> None:
        first, second = many(40, keys=4), [extracted(f"Kunden:{n % 4}", n) for n in range(40, 80)]
        log.append(first)
        position = log.end_position([Topic.SOURCE])
        log.append(second)

        later = list(log.read([Topic.SOURCE], position))
        assert sorted(ids(later)) == sorted(e.event_id for e in second)
        assert all(isinstance(p, Partition) for p in position)
        assert list(log.read([Topic.DECISIONS])) == []

    def test_a_consumer_that_crashes_before_committing_gets_the_uncommitted_events_again(
        self, log: EventLog
    ) -> None:
        appended = many(120, keys=12)
        log.append(appended)
        group = f"crash-{uuid.uuid4().hex}"

        first = log.subscribe(group, [Topic.SOURCE])
        received = drain(first, 120, settle=0.5)
        assert sorted(ids(received)) == sorted(e.event_id for e in appended)
        per_partition: dict[Partition, list[StoredEvent]] = defaultdict(list)
        for stored in received:
            per_partition[stored.partition].append(stored)
        committed = [s for events in per_partition.values() for s in events[: len(events) // 2]]
        first.commit(committed)
        first.close()  # the crash: everything after the committed half is left uncommitted

        with log.subscribe(group, [Topic.SOURCE]) as restarted:
            again = drain(restarted, 120 - len(committed))
        assert sorted(ids(again)) == sorted(set(ids(received)) - set(ids(committed)))

    def test_two_consumers_in_one_group_share_partitions_without_losing_or_repeating_work(
        self, log: EventLog
    ) -> None:
        group = f"pair-{uuid.uuid4().hex}"
        done: dict[str, list[StoredEvent]] = {"a": [], "b": []}
        assignments: dict[str, set[Partition]] = {"a": set(), "b": set()}
        members = {name: log.subscribe(group, [Topic.SOURCE]) for name in done}
        total = 900
        stop = threading.Event()

        def consume(name: str) -> None:
            member = members[name]
            while not stop.is_set():
                events = member.poll(max_events=100, timeout=0.2)
                assignments[name] |= set(member.assignment())
                if not events:
                    continue
                try:
                    member.commit(events)
                except CommitFailedError:
                    continue  # not committed: it will be delivered again, to someone
                done[name] += events

        threads = [threading.Thread(target=consume, args=(name,)) for name in done]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owned = [members[name].assignment() for name in done]
            if all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == PARTITIONS:
                break
            time.sleep(0.2)
        # Only now do events arrive, so the work is shared by the settled group of two.
        log.append(many(900, keys=90))
        while len(done["a"]) + len(done["b"]) < total and time.monotonic() < deadline + 60:
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for member in members.values():
            member.close()

        processed = ids(done["a"]) + ids(done["b"])
        assert len(processed) == len(set(processed)) == total
        assert done["a"], "both members must have done part of the work"
        assert done["b"], "both members must have done part of the work"
        assert not {s.partition for s in done["a"]} & {s.partition for s in done["b"]}


class TestSqliteEventLog(EventLogContract):
    """The embedded backend: a SQLite file in WAL mode."""

    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        with SqliteEventLog(f"sqlite:///{tmp_path / 'ledger.db'}", partitions=PARTITIONS) as log:
            yield log


@pytest.mark.kafka
class TestKafkaEventLog(EventLogContract):
    """The distributed backend: a real Apache Kafka broker."""

    @pytest.fixture
    def log(self, kafka_bootstrap: str) -> Iterator[EventLog]:
        url = f"kafka://{kafka_bootstrap}?prefix=test-{uuid.uuid4().hex[:12]}"
        with KafkaEventLog(url, partitions=PARTITIONS) as log:
            yield log
