"""The embedded event log: one SQLite file in WAL mode, consumer groups and positions in it.

Safe for one writer process and several reader processes: WAL lets readers run while the writer
appends, and every write (append, heartbeat, commit) is a short ``BEGIN IMMEDIATE`` transaction.
Offsets are the log's global sequence numbers, so within a partition they grow but have gaps.

Consumer groups follow Kafka's rules: members share the partitions round-robin; every change of
membership starts a new generation, and a commit from an older generation is refused, so work a
member did before a rebalance is redelivered rather than committed twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from functools import lru_cache
from pathlib import Path

from kafka.partitioner.default import murmur2

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    part INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_partition ON events (topic, part, seq);
CREATE TABLE IF NOT EXISTS group_generations (grp TEXT PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
    grp TEXT NOT NULL, member TEXT NOT NULL, seen_at REAL NOT NULL, PRIMARY KEY (grp, member)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, part)
);
"""

_BUSY_TIMEOUT_S = 30.0
_READ_CHUNK = 2000


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise LogError(f"not a SQLite log URL: {url!r} (expected sqlite:///path/to/ledger.db)")
    path = url[len(prefix) :].split("?", 1)[0]
    if path == ":memory:":
        raise LogError("the SQLite event log needs a file: readers and consumers share it")
    return Path(path)


@lru_cache(maxsize=4096)
def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key``: Kafka's default partitioner, so both backends agree."""
    # Cached: a record's events are appended close together, and murmur2 is pure Python;
    # small, so memory stays flat however large the log grows.
    return int(murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


@contextmanager
def _write(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _stored(seq: int, topic: str, part: int, body: str) -> StoredEvent:
    return StoredEvent(Partition(Topic(topic), part), seq, Event.from_json(body))


class SqliteEventLog(EventLog):
    """The event log in one SQLite file (WAL mode)."""

    def __init__(self, url: str, *, partitions: int = 6, session_timeout: float = 10.0) -> None:
        """Open (and create if needed) the log at ``url``.

        ``partitions`` applies only when the file is created; an existing log keeps its count.
        ``session_timeout`` is how long a silent consumer stays in its group.
        """
        self.url = url
        self._path = sqlite_path(url)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = _connect(self._path)
        self.session_timeout = session_timeout
        # CREATE ... IF NOT EXISTS is idempotent, so concurrent openers may both run it.
        self._connection.executescript(_SCHEMA)
        with self._lock, _write(self._connection) as db:
            db.execute(
                "INSERT OR IGNORE INTO log_meta (name, value) VALUES ('partitions', ?)",
                (str(partitions),),
            )
            row = db.execute("SELECT value FROM log_meta WHERE name = 'partitions'").fetchone()
        self.partitions = int(row[0])

    def append(self, events: Sequence[Event]) -> None:
        """Append ``events`` in one transaction; an event id already in the log is skipped."""
        rows = [
            (
                event.topic.value,
                partition_for(event.key, self.partitions),
                str(event.event_id),
                event.key,
                event.type,
                event.to_json(),
            )
            for event in events
        ]
        with self._lock, _write(self._connection) as db:
            db.executemany(
                "INSERT OR IGNORE INTO events (topic, part, event_id, key, type, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def read(
        self, topics: Iterable[Topic] | None = None, start: Position | None = None
    ) -> Iterator[StoredEvent]:
        """Events of ``topics`` after ``start``, in the log's global order."""
        wanted = topics_or_all(topics)
        start = dict(start or {})
        lowest = min(
            (start.get(Partition(t, p), 0) for t in wanted for p in range(self.partitions)),
            default=0,
        )
        marks = ",".join("?" * len(wanted))
        with closing(_connect(self._path)) as connection:
            end = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            cursor = connection.execute(
                f"SELECT seq, topic, part, body FROM events WHERE seq >= ? AND seq <= ?"
                f" AND topic IN ({marks}) ORDER BY seq",
                (lowest, end, *(t.value for t in wanted)),
            )
            while rows := cursor.fetchmany(_READ_CHUNK):
                for seq, topic, part, body in rows:
                    if seq >= start.get(Partition(Topic(topic), part), 0):
                        yield _stored(seq, topic, part, body)

    def end_position(self, topics: Iterable[Topic] | None = None) -> dict[Partition, int]:
        """Per partition, one past the offset of its last event (0 when empty)."""
        wanted = topics_or_all(topics)
        ends = {Partition(t, p): 0 for t in wanted for p in range(self.partitions)}
        with self._lock:
            rows = self._connection.execute(
                "SELECT topic, part, MAX(seq) FROM events GROUP BY topic, part"
            ).fetchall()
        for topic, part, seq in rows:
            partition = Partition(Topic(topic), part)
            if partition in ends:
                ends[partition] = seq + 1
        return ends

    def subscribe(self, group: str, topics: Iterable[Topic] | None = None) -> Subscription:
        """Join ``group`` as a new member with its own connection."""
        return _SqliteSubscription(self, group, topics_or_all(topics))

    def close(self) -> None:
        """Close the log's connection."""
        with self._lock:
            self._connection.close()

    def _new_connection(self) -> sqlite3.Connection:
        return _connect(self._path)


class _SqliteSubscription(Subscription):
    def __init__(self, log: SqliteEventLog, group: str, topics: tuple[Topic, ...]) -> None:
        self._log = log
        self._group = group
        self._topics = topics
        self._member = f"{uuid.uuid4()}"
        self._connection = log._new_connection()
        self._generation = -1
        self._assigned: tuple[Partition, ...] = ()
        self._fetch: dict[Partition, int] = {}
        self._closed = False

    def poll(self, max_events: int = 500, timeout: float = 1.0) -> list[StoredEvent]:
        deadline = time.monotonic() + timeout
        while True:
            self._heartbeat()
            events = self._fetch_events(max_events)
            if events or time.monotonic() >= deadline:
                return events
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def commit(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        highest: dict[Partition, int] = {}
        for stored in events:
            highest[stored.partition] = max(highest.get(stored.partition, -1), stored.offset)
        with _write(self._connection) as db:
            if self._current_generation(db) != self._generation or not self._is_member(db):
                raise CommitFailedError(f"group {self._group!r} was rebalanced; poll again")
            foreign = [str(p) for p in highest if p not in self._assigned]
            if foreign:
                raise CommitFailedError(f"partitions {foreign} are not assigned to this member")
            db.executemany(
                "INSERT INTO group_offsets (grp, topic, part, next_offset) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (grp, topic, part) DO UPDATE SET next_offset = excluded.next_offset",
                [(self._group, p.topic.value, p.number, o + 1) for p, o in highest.items()],
            )

    def assignment(self) -> frozenset[Partition]:
        return frozenset(self._assigned)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _write(self._connection) as db:
            gone = db.execute(
                "DELETE FROM group_members WHERE grp = ? AND member = ?",
                (self._group, self._member),
            ).rowcount
            if gone:
                self._bump_generation(db)
        self._connection.close()

    def _heartbeat(self) -> None:
        if self._closed:
            raise LogError("the subscription is closed")
        now = time.time()
        with _write(self._connection) as db:
            changed = not self._is_member(db)
            db.execute(
                "INSERT INTO group_members (grp, member, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT (grp, member) DO UPDATE SET seen_at = excluded.seen_at",
                (self._group, self._member, now),
            )
            expired = db.execute(
                "DELETE FROM group_members WHERE grp = ? AND seen_at < ?",
                (self._group, now - self._log.session_timeout),
            ).rowcount
            if changed or expired:
                self._bump_generation(db)
            generation = self._current_generation(db)
            if generation == self._generation:
                return
            members = [
                row[0]
                for row in db.execute(
                    "SELECT member FROM group_members WHERE grp = ? ORDER BY member",
                    (self._group,),
                )
            ]
            every = [Partition(t, p) for t in self._topics for p in range(self._log.partitions)]
            mine = members.index(self._member)
            self._assigned = tuple(
                p for i, p in enumerate(sorted(every)) if i % len(members) == mine
            )
            committed = dict(
                ((Topic(topic), part), offset)
                for topic, part, offset in db.execute(
                    "SELECT topic, part, next_offset FROM group_offsets WHERE grp = ?",
                    (self._group,),
                )
            )
            self._fetch = {p: committed.get((p.topic, p.number), 0) for p in self._assigned}
            self._generation = generation

    def _fetch_events(self, max_events: int) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        for partition in self._assigned:
            remaining = max_events - len(found)
            if remaining <= 0:
                break
            rows = self._connection.execute(
                "SELECT seq, topic, part, body FROM events WHERE topic = ? AND part = ?"
                " AND seq >= ? ORDER BY seq LIMIT ?",
                (partition.topic.value, partition.number, self._fetch[partition], remaining),
            ).fetchall()
            for seq, topic, part, body in rows:
                found.append(_stored(seq, topic, part, body))
            if rows:
                self._fetch[partition] = rows[-1][0] + 1
        found.sort(key=lambda stored: stored.offset)
        return found

    def _is_member(self, db: sqlite3.Connection) -> bool:
        return (
            db.execute(
                "SELECT 1 FROM group_members WHERE grp = ? AND member = ?",
                (self._group, self._member),
            ).fetchone()
            is not None
        )

    def _current_generation(self, db: sqlite3.Connection) -> int:
        row = db.execute(
            "SELECT generation FROM group_generations WHERE grp = ?", (self._group,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _bump_generation(self, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO group_generations (grp, generation) VALUES (?, 1)"
            " ON CONFLICT (grp) DO UPDATE SET generation = generation + 1",
            (self._group,),
        )
