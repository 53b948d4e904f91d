"""One way to read every form of work4all export: ``open_export(location) -> Export``.

The form is chosen by what is found at ``location``:

- a directory of ``<Table>.csv`` files (or one ``.csv`` file): :mod:`.csv_reader`;
- an ``.xlsx`` workbook with one sheet per table: :mod:`.xlsx_reader`;
- a SQLite file (``.db``, ``.sqlite``) or any SQLAlchemy URL: :mod:`.sql_reader`. A restored
  work4all database is read unchanged through ``mssql+pyodbc://…``.

Every backend yields :class:`SourceRow` values one at a time and never holds a whole table.
The raw values are what the source holds (CSV text, Excel cell values, database values); the
typed, canonical form comes from :mod:`.normalise`.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self

from producers.work4all.errors import ExportError, Finding

RawValue = str | int | float | Decimal | bool | datetime | date | time | None

_SQLITE_MAGIC = b"SQLite format 3\x00"
_ZIP_MAGIC = b"PK\x03\x04"
_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row of one table as the source holds it.

    ``position`` is where a person finds the row in the source, in the unit the export names
    in ``Export.position_unit``: the physical line a CSV record starts on (the header is line
    1), the Excel row number of a sheet (the header is row 1), or the 1-based ordinal of the
    row in a SQL table read in key order. ``findings`` are problems the reader met while
    reading this row (bytes that were not in the file's encoding, a wrong number of fields).
    """

    table: str
    position: int
    raw: dict[str, RawValue]
    findings: tuple[Finding, ...] = ()


def fold_name(name: str) -> str:
    """Return a comparison key for a table or column name.

    Vendor scripts and file systems spell names differently (``Länder`` in NFC or NFD,
    ``Laender``, ``E-Mail`` vs ``EMail``), so names are compared after NFC, case folding,
    umlaut transliteration and dropping hyphens, spaces and underscores.
    """
    folded = unicodedata.normalize("NFC", name).strip().casefold().translate(_TRANSLITERATION)
    return "".join(ch for ch in folded if ch not in "-_ ")


class Export(ABC):
    """A work4all export: named tables whose rows can be streamed."""

    position_unit: ClassVar[str]
    form: ClassVar[Literal["sql", "csv", "xlsx"]]

    def __init__(self, location: str) -> None:
        self.location = location

    @abstractmethod
    def tables(self) -> list[str]:
        """Return the names of the tables in the export, as the export spells them."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """Return the column names of ``table`` in source order (the header of a file or sheet)."""

    @abstractmethod
    def rows(self, table: str) -> Generator[SourceRow]:
        """Yield the rows of ``table`` one at a time, in source order.

        Closing the generator early releases the file or cursor at once.
        """

    @abstractmethod
    def source(self, table: str) -> str:
        """Return how messages name ``table``'s origin: a file name, ``book.xlsx[Sheet]``, …."""

    def find_table(self, name: str) -> str | None:
        """Return the export's spelling of table ``name`` (``Laender`` for ``Länder``), if any."""
        wanted = fold_name(name)
        return next((table for table in self.tables() if fold_name(table) == wanted), None)

    @abstractmethod
    def close(self) -> None:
        """Release files and connections; the export cannot be read afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_export(location: str | Path) -> Export:
    """Open the export at ``location``, choosing the reader by what is found there.

    Raises :class:`ExportError` when ``location`` does not exist or is none of the known forms.
    """
    # The backends import this module for Export and SourceRow, so they are imported here.
    from producers.work4all import csv_reader, sql_reader, xlsx_reader

    text = str(location)
    if "://" in text:
        return sql_reader.SqlExport(text)
    path = Path(location)
    if path.is_dir():
        return csv_reader.CsvExport(path)
    if not path.is_file():
        raise ExportError(text, "no such file or directory")
    suffix = path.suffix.casefold()
    if suffix == ".csv" or suffix == ".txt":
        return csv_reader.CsvExport(path)
    with path.open("rb") as file:
        magic = file.read(len(_SQLITE_MAGIC))
    if magic.startswith(_ZIP_MAGIC) or suffix in (".xlsx", ".xlsm"):
        return xlsx_reader.XlsxExport(path)
    if magic == _SQLITE_MAGIC or suffix in (".db", ".sqlite", ".sqlite3"):
        return sql_reader.SqlExport.from_sqlite_file(path)
    raise ExportError(
        path.name,
        "not a work4all export: expected a directory of CSV files, an .xlsx workbook, "
        "a SQLite file or a SQLAlchemy URL",
    )
