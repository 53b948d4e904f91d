"""Database exports, read through SQLAlchemy: a SQLite file or any database URL.

A vendor-assisted copy of a work4all Mandant is a SQL Server database (``WorkM001``). Restore it
and read it unchanged with a URL such as::

    mssql+pyodbc://user:password@host/WorkM001?driver=ODBC+Driver+18+for+SQL+Server

PostgreSQL (``postgresql+psycopg://…``) and SQLite files work the same way. Tables and columns are
found by reflection; names keep their umlauts, hyphens and spaces (``Straße``, ``E-Mail``,
``Korrektur LKZ``) and are quoted by the dialect.

Rows are streamed with a server-side cursor (``stream_results`` with ``yield_per``), so a table
is never held in memory. Columns are selected without SQLAlchemy types, so values arrive as the
driver returns them: SQLite, which has no date type, gives the text of a ``datetime`` column
even when a row holds ``'02.10.2025'`` there, and the normaliser parses it. Row positions are
the 1-based ordinal of the row in primary-key order (``Code`` when a table has no primary key).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, Inspector, create_engine, inspect, make_url, select
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from producers.work4all.errors import ExportError
from producers.work4all.readers import Export, RawValue, SourceRow

_BATCH = 2_000


_PLAIN = frozenset({str, int, float, Decimal, bool, datetime, date, time, type(None)})


def _value(value: Any) -> RawValue:
    """Return a driver value as a raw value; identifiers and binary become text."""
    # An exact type lookup first: this runs once per cell.
    if type(value) in _PLAIN or isinstance(
        value, str | int | float | Decimal | bool | datetime | date | time
    ):
        return value  # type: ignore[no-any-return]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


class SqlExport(Export):
    """A work4all database reachable by a SQLAlchemy URL or engine."""

    position_unit = "row in key order"
    form = "sql"

    def __init__(self, url: str, *, engine: Engine | None = None, name: str | None = None) -> None:
        super().__init__(url)
        try:
            self._name = name or make_url(url).render_as_string(hide_password=True)
            self._engine = engine or create_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError) as error:
            raise ExportError(url, f"not a usable database URL: {error}") from error

    @classmethod
    def from_sqlite_file(cls, path: Path) -> Self:
        """Open a SQLite file read-only, so that reading can never change or create it."""
        uri = f"{path.resolve().as_uri()}?mode=ro"
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
        )
        return cls(f"sqlite:///{path}", engine=engine, name=path.name)

    def tables(self) -> list[str]:
        """Return the names of the tables (and views) in the default schema."""
        with self._failures(None):
            return sorted(self._inspector.get_table_names() + self._inspector.get_view_names())

    def source(self, table: str) -> str:
        """Return ``database[Table]`` for messages, with any password hidden."""
        return f"{self._name}[{table}]"

    def columns(self, table: str) -> list[str]:
        """Return the column names of ``table`` in table order."""
        name = self._table_name(table)
        with self._failures(name):
            return [str(column["name"]) for column in self._inspector.get_columns(name)]

    def rows(self, table: str) -> Generator[SourceRow]:
        """Yield ``table``'s rows in key order through a server-side cursor."""
        name = self._table_name(table)
        names = self.columns(name)
        with self._failures(name):
            keys = self._inspector.get_pk_constraint(name).get("constrained_columns") or []
        keys = keys or [column for column in names if column == "Code"]
        selectable = sql_table(name, *(sql_column(column) for column in names))
        statement = select(selectable).order_by(*(selectable.c[key] for key in keys))
        position = 0
        with self._failures(name, lambda: position + 1), self._engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=_BATCH).execute(
                statement
            )
            for position, values in enumerate(result, start=1):
                raw = {column: _value(value) for column, value in zip(names, values, strict=True)}
                yield SourceRow(table, position, raw)

    def close(self) -> None:
        """Close the engine's connections."""
        self._engine.dispose()

    @cached_property
    def _inspector(self) -> Inspector:
        with self._failures(None):
            return inspect(self._engine)

    def _table_name(self, table: str) -> str:
        if table in self.tables():
            return table
        found = self.find_table(table)
        if found is None:
            raise ExportError(self.source(table), "no such table in the database")
        return found

    @contextmanager
    def _failures(self, table: str | None, row: Callable[[], int] | None = None) -> Iterator[None]:
        """Turn driver errors into an ExportError naming the database, table and row."""
        try:
            yield
        except SQLAlchemyError as error:
            detail = getattr(error, "orig", None) or error
            raise ExportError(
                self.source(table) if table else self._name,
                f"cannot read the database: {detail}",
                row=row() if row else None,
            ) from error
