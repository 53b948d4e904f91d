"""SQLite storage for emulator rows: one JSON document per row, alternate keys in a unique index.

Rows live in one table keyed by (space, id): a table's space is its logical name, except that all
activities share the `activitypointer` space, so an activityid is unique across activity tables.
The store is thread-safe through one re-entrant lock; `transaction()` holds it and opens a
SAVEPOINT, so a $batch changeset or a bulk message commits or rolls back as a whole.

Two more things live in the same database, so they commit and roll back with the rows:

* a term index: for the (table, column) pairs a query asked for by equality (`index_column`), the
  case-folded text value of every row, so `$filter=x eq 'v' or x eq 'w'` reads only those rows;
* schema definitions (`save_definition`): what the metadata API added at runtime, in the order it
  was added, so a restarted emulator serves the same tables, columns and keys.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]
# Bound parameters per IN (…) list, well below SQLite's limit (32,766 since 3.32, 999 before).
_MAX_PARAMETERS = 500

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
CREATE TABLE IF NOT EXISTS indexed_columns (
    tbl TEXT NOT NULL, col TEXT NOT NULL,
    PRIMARY KEY (tbl, col)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS terms (
    tbl TEXT NOT NULL, col TEXT NOT NULL, term TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (tbl, col, term, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS terms_by_row ON terms (tbl, id);
CREATE TABLE IF NOT EXISTS definitions (
    kind TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
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
        self._indexed = self._load_indexed()

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
                self._indexed = self._load_indexed()  # an index made inside is rolled back too
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
        if keys or table in self._indexed:
            with self.transaction():
                self._insert_row(space, table, row_id, data, version)
                self._insert_keys(table, row_id, keys or {})
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
        self._insert_terms(table, row_id, data)

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
            if table in self._indexed:
                self._db.execute("DELETE FROM terms WHERE tbl = ? AND id = ?", (table, row_id))
                self._insert_terms(table, row_id, data)
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
            if table in self._indexed:
                self._db.execute("DELETE FROM terms WHERE tbl = ? AND id = ?", (table, row_id))
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

    def get_many(self, space: str, row_ids: Iterable[str]) -> list[tuple[str, int, Row]]:
        """(table, version, data) of the rows with these ids in this space, in id order."""
        wanted = sorted(set(row_ids))
        found: list[tuple[str, int, Row]] = []
        with self._lock:
            for start in range(0, len(wanted), _MAX_PARAMETERS):
                chunk = wanted[start : start + _MAX_PARAMETERS]
                marks = ",".join("?" * len(chunk))
                found.extend(
                    (tbl, version, json.loads(data))
                    for tbl, version, data in self._db.execute(
                        f"SELECT tbl, version, data FROM rows WHERE space = ? AND id IN ({marks})"
                        " ORDER BY id",
                        (space, *chunk),
                    )
                )
        return found

    def index_column(self, table: str, column: str) -> None:
        """Keep a term index of `column` in `table` from now on (building it from the rows)."""
        with self.transaction():
            if column in self._indexed.get(table, ()):
                return
            self._db.execute(
                "INSERT INTO indexed_columns (tbl, col) VALUES (?, ?)", (table, column)
            )
            found = self._db.execute(
                "SELECT id, json_extract(data, ?) FROM rows WHERE tbl = ?", (_path(column), table)
            ).fetchall()
            self._db.executemany(
                "INSERT OR IGNORE INTO terms (tbl, col, term, id) VALUES (?, ?, ?, ?)",
                (
                    (table, column, value.casefold(), row_id)
                    for row_id, value in found
                    if isinstance(value, str)
                ),
            )
            self._indexed = {**self._indexed, table: (*self._indexed.get(table, ()), column)}

    def ids_with_terms(self, table: str, column: str, terms: Iterable[str]) -> list[str]:
        """Ids of rows whose indexed `column` case-folds to one of `terms` (see `index_column`)."""
        wanted = sorted(set(terms))
        found: list[str] = []
        with self._lock:
            for start in range(0, len(wanted), _MAX_PARAMETERS):
                chunk = wanted[start : start + _MAX_PARAMETERS]
                marks = ",".join("?" * len(chunk))
                found.extend(
                    str(row_id)
                    for (row_id,) in self._db.execute(
                        f"SELECT id FROM terms WHERE tbl = ? AND col = ? AND term IN ({marks})",
                        (table, column, *chunk),
                    )
                )
        return found

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

    def digest(self, *, content: bool = False) -> str:
        """A SHA-256 over every row in (table, id) order: equal data gives an equal digest.

        ``content``: leave out what only says *when* a row was written (row versions, the
        modification time, the real insert time), so that the same writes made at other times,
        or retried, give the same digest.
        """
        sha = hashlib.sha256()
        with self._lock:
            for tbl, row_id, data in self._db.execute(
                "SELECT tbl, id, data FROM rows ORDER BY tbl, id"
            ):
                if content:
                    data = _dumps(_content_of(json.loads(data)))
                sha.update(f"{tbl}\x1f{row_id}\x1f{data}\x1e".encode())
        return sha.hexdigest()

    def save_definition(self, kind: str, name: str, data: Row) -> None:
        """Store a schema definition: a new one after all others, a changed one in its place."""
        with self._lock:
            self._db.execute(
                "INSERT INTO definitions (kind, name, seq, data) VALUES (?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM definitions), ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET data = excluded.data",
                (kind, name, _dumps(data)),
            )

    def delete_definition(self, kind: str, name: str) -> None:
        """Forget a schema definition."""
        with self._lock:
            self._db.execute("DELETE FROM definitions WHERE kind = ? AND name = ?", (kind, name))

    def definitions(self) -> list[tuple[str, str, Row]]:
        """(kind, name, data) of every stored schema definition, in the order they were added."""
        with self._lock:
            found = self._db.execute(
                "SELECT kind, name, data FROM definitions ORDER BY seq"
            ).fetchall()
        return [(str(kind), str(name), json.loads(data)) for kind, name, data in found]

    def _load_indexed(self) -> dict[str, tuple[str, ...]]:
        indexed: dict[str, tuple[str, ...]] = {}
        for tbl, col in self._db.execute("SELECT tbl, col FROM indexed_columns ORDER BY tbl, col"):
            indexed[tbl] = (*indexed.get(tbl, ()), col)
        return indexed

    def _insert_terms(self, table: str, row_id: str, data: Row) -> None:
        columns = self._indexed.get(table)
        if not columns:
            return
        self._db.executemany(
            "INSERT OR IGNORE INTO terms (tbl, col, term, id) VALUES (?, ?, ?, ?)",
            (
                (table, column, value.casefold(), row_id)
                for column in columns
                if isinstance(value := data.get(column), str)
            ),
        )

    def _insert_keys(self, table: str, row_id: str, keys: Mapping[str, str]) -> None:
        for key, value in keys.items():
            try:
                self._db.execute(
                    "INSERT INTO keys (tbl, key, value, id) VALUES (?, ?, ?, ?)",
                    (table, key, value, row_id),
                )
            except sqlite3.IntegrityError:
                raise DuplicateKeyError(key) from None


def _content_of(row: Row) -> Row:
    volatile = {"versionnumber", "modifiedon", "overriddencreatedon"}
    if "overriddencreatedon" not in row:
        volatile.add("createdon")  # the real insert time; with an override it is the given one
    # Dataverse has no "absent" column: a column never written and one set to null (with the
    # type of the lookup it no longer holds) are the same content.
    return {
        name: value
        for name, value in row.items()
        if name not in volatile
        and value is not None
        and not (name.endswith("@type") and row.get(name.removesuffix("@type")) is None)
    }


def _path(column: str) -> str:
    return '$."' + column + '"'


def _dumps(data: Row) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
