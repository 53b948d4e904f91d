"""SQLite storage for emulator rows: one JSON document per row, alternate keys in a unique index.

Rows live in one table keyed by (space, id): a table's space is its logical name, except that all
activities share the `activitypointer` space, so an activityid is unique across activity tables.
The store is thread-safe through one re-entrant lock; `transaction()` holds it and opens a
SAVEPOINT, so a $batch changeset or a bulk message commits or rolls back as a whole.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    space TEXT NOT NULL, id TEXT NOT NULL, tbl TEXT NOT NULL,
    version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (space, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rows_by_table ON rows (tbl, id);
CREATE TABLE IF NOT EXISTS keys (
    tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (tbl, key, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_row ON keys (tbl, id);
"""


class DuplicateIdError(Exception):
    """A row with this primary key already exists in its space."""


class DuplicateKeyError(Exception):
    """An alternate-key value is already taken by another row."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def key_value(values: tuple[Any, ...]) -> str:
    """The canonical text of an alternate-key value, as stored in the unique index."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


class Store:
    """Rows of every table in one SQLite database (a file, or `:memory:`)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path or ":memory:"), check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        (self._version,) = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM rows").fetchone()
        self._depth = 0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nests through SAVEPOINTs."""
        with self._lock:
            name = f"sp{self._depth}"
            self._depth += 1
            self._db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
                raise
            else:
                self._db.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1

    def next_version(self) -> int:
        """A new row version, increasing across all tables (the etag value)."""
        with self._lock:
            self._version += 1
            return int(self._version)

    def insert(
        self,
        space: str,
        table: str,
        row_id: str,
        data: Row,
        version: int,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Insert a row and its alternate-key values (DuplicateIdError, DuplicateKeyError)."""
        if keys:
            with self.transaction():
                self._insert_row(space, table, row_id, data, version)
                self._insert_keys(table, row_id, keys)
        else:
            with self._lock:
                self._insert_row(space, table, row_id, data, version)

    def _insert_row(self, space: str, table: str, row_id: str, data: Row, version: int) -> None:
        try:
            self._db.execute(
                "INSERT INTO rows (space, id, tbl, version, data) VALUES (?, ?, ?, ?, ?)",
                (space, row_id, table, version, _dumps(data)),
            )
        except sqlite3.IntegrityError:
            raise DuplicateIdError(row_id) from None

    def replace(
        self,
        space: str,
        table: str,
        row_id: str,
        data: Row,
        version: int,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Overwrite an existing row; its alternate-key values are replaced by `keys` if given."""
        with self.transaction():
            self._db.execute(
                "UPDATE rows SET data = ?, version = ? WHERE space = ? AND id = ?",
                (_dumps(data), version, space, row_id),
            )
            if keys is not None:
                self._db.execute("DELETE FROM keys WHERE tbl = ? AND id = ?", (table, row_id))
                self._insert_keys(table, row_id, keys)

    def delete(self, space: str, table: str, row_id: str) -> bool:
        """Delete a row and its key values; False if it did not exist."""
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM rows WHERE space = ? AND id = ? AND tbl = ?", (space, row_id, table)
            )
            self._db.execute("DELETE FROM keys WHERE tbl = ? AND id = ?", (table, row_id))
            return cursor.rowcount > 0

    def get(self, space: str, row_id: str) -> tuple[str, int, Row] | None:
        """(table, version, data) of the row with this id in this space, or None."""
        with self._lock:
            found = self._db.execute(
                "SELECT tbl, version, data FROM rows WHERE space = ? AND id = ?", (space, row_id)
            ).fetchone()
        if found is None:
            return None
        return found[0], found[1], json.loads(found[2])

    def find_by_key(self, table: str, key: str, value: str) -> str | None:
        """The id of the row holding this alternate-key value, or None."""
        with self._lock:
            found = self._db.execute(
                "SELECT id FROM keys WHERE tbl = ? AND key = ? AND value = ?", (table, key, value)
            ).fetchone()
        return None if found is None else str(found[0])

    def scan(
        self, *, table: str | None = None, space: str | None = None, after: str | None = None
    ) -> Iterator[tuple[str, int, Row]]:
        """(table, version, data) of rows in id order, of one table or of a whole space."""
        column, value = ("tbl", table) if table is not None else ("space", space)
        sql = f"SELECT tbl, version, data FROM rows WHERE {column} = ?"
        params: list[Any] = [value]
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY id"
        with self._lock:
            fetched = self._db.execute(sql, params).fetchall()
        for tbl, version, data in fetched:
            yield tbl, version, json.loads(data)

    def keys_in_use(self, table: str, key: str) -> int:
        """How many rows hold a value for this alternate key."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM keys WHERE tbl = ? AND key = ?", (table, key)
            ).fetchone()
        return int(count)

    def counts(self) -> dict[str, int]:
        """Row count per table (tables without rows are left out)."""
        with self._lock:
            found = self._db.execute("SELECT tbl, COUNT(*) FROM rows GROUP BY tbl ORDER BY tbl")
            return {str(tbl): int(n) for tbl, n in found.fetchall()}

    def digest(self) -> str:
        """A SHA-256 over every row in (table, id) order: equal data gives an equal digest."""
        sha = hashlib.sha256()
        with self._lock:
            for tbl, row_id, data in self._db.execute(
                "SELECT tbl, id, data FROM rows ORDER BY tbl, id"
            ):
                sha.update(f"{tbl}\x1f{row_id}\x1f{data}\x1e".encode())
        return sha.hexdigest()

    def _insert_keys(self, table: str, row_id: str, keys: Mapping[str, str]) -> None:
        for key, value in keys.items():
            try:
                self._db.execute(
                    "INSERT INTO keys (tbl, key, value, id) VALUES (?, ?, ?, ?)",
                    (table, key, value, row_id),
                )
            except sqlite3.IntegrityError:
                raise DuplicateKeyError(key) from None


def _dumps(data: Row) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
