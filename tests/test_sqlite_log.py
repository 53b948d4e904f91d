"""What only the embedded log promises: one writer process and several reader processes at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from ledger.events import Topic
from ledger.sqlite_log import SqliteEventLog, partition_for
from ledger.synthetic import synthetic_run

BATCHES, BATCH = 20, 500


def _write(url: str) -> None:
    with SqliteEventLog(url) as log:
        events = list(synthetic_run("concurrent", BATCHES * BATCH))
        for start in range(0, len(events), BATCH):
            log.append(events[start : start + BATCH])


def _read_while_writing(url: str, results: multiprocessing.Queue[object]) -> None:
    observed: list[int] = []
    with SqliteEventLog(url) as log:
        while not observed or observed[-1] < BATCHES * BATCH - 3:
            offsets = [stored.offset for stored in log.read()]
            # Every read sees a prefix of the log: offsets 1..n without a hole.
            if offsets != list(range(1, len(offsets) + 1)):
                results.put(f"read saw a gap: {len(offsets)} events, last {offsets[-1:]}")
                return
            observed.append(len(offsets))
    results.put(observed)


def test_one_writer_and_two_reader_processes_work_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    SqliteEventLog(url).close()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[object] = context.Queue()
    readers = [context.Process(target=_read_while_writing, args=(url, results)) for _ in range(2)]
    writer = context.Process(target=_write, args=(url,))
    for process in [*readers, writer]:
        process.start()
    for process in [writer, *readers]:
        process.join(timeout=300)

    assert writer.exitcode == 0
    assert [reader.exitcode for reader in readers] == [0, 0]
    for _ in readers:
        observed = results.get(timeout=5)
        assert isinstance(observed, list), observed
        assert observed == sorted(observed)
        assert observed[-1] == BATCHES * BATCH - 3


def test_an_event_appended_twice_is_stored_once(tmp_path: Path) -> None:
    with SqliteEventLog(f"sqlite:///{tmp_path / 'ledger.db'}") as log:
        events = list(synthetic_run("twice", 100))
        log.append(events)
        log.append(events[50:])

        assert [s.event for s in log.read()] == events


def test_an_existing_log_keeps_its_partition_count(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    SqliteEventLog(url, partitions=4).close()
    with SqliteEventLog(url, partitions=9) as log:
        assert log.partitions == 4
        assert len(log.end_position([Topic.SOURCE])) == 4


def test_partitions_match_kafkas_default_partitioner() -> None:
    # Values from Kafka's Java client: Utils.toPositive(Utils.murmur2(key)) % partitions.
    # (the vectors of kafka-python's test_murmur2_java_compatibility)
    assert [partition_for(key, 1000) for key in ("", "a", "ab", "abc", "123456789")] == [
        681,
        524,
        434,
        107,
        566,
    ]
