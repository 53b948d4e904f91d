"""Export writers: the same rows as a SQL database, as German CSV files, or as one workbook.

Writers only format values; they never change them. A value's form follows its column's
``Kind`` from ``tables.py``.
"""

from __future__ import annotations

import csv
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa
from openpyxl import Workbook
from sqlalchemy.exc import SQLAlchemyError

from producers.work4all.generator import Row, TextDate
from producers.work4all.tables import TABLES, Kind, Table

SQLITE_FILE = "work4all.db"
XLSX_FILE = "work4all.xlsx"
CSV_ENCODING = "cp1252"
CSV_DELIMITER = ";"
FORMS = ("sql", "csv", "xlsx")
_CHUNK = 5000
_FIXED_TIME = datetime(2026, 1, 1)


class WriterError(Exception):
    """An export target that cannot be written (bad path, unreachable database)."""


class ExportWriter(Protocol):
    """Writes tables one after another; ``close`` finishes the export."""

    def write(self, table: Table, rows: Iterable[Row], progress: Callable[[int], None]) -> int:
        """Write every row of ``table``, calling ``progress(n)`` now and then; the row count."""
        ...

    def close(self) -> None:
        """Finish the export (commit, flush, save)."""
        ...


def open_writer(form: str, out: str) -> ExportWriter:
    """The writer for ``form`` into ``out`` (a directory, or for ``sql`` a SQLAlchemy URL)."""
    if form == "sql":
        return SqlWriter(out)
    if form == "csv":
        return CsvWriter(_directory(out))
    if form == "xlsx":
        return XlsxWriter(_directory(out))
    raise WriterError(f"unknown format {form!r}; choose one of {', '.join(FORMS)}")


def is_url(out: str) -> bool:
    """True if ``out`` is a SQLAlchemy URL rather than a directory."""
    return "://" in out


def _directory(out: str) -> Path:
    if is_url(out):
        raise WriterError(f"{out}: a URL is only valid with --format sql")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise WriterError(f"{out}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WriterError(f"{out}: cannot create directory ({error.strerror})") from error
    return path


def redact(out: str) -> str:
    """``out`` with any password in a database URL masked."""
    try:
        return sa.engine.make_url(out).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return out


class SqlWriter:
    """Tables in any SQLAlchemy database: ``work4all.db`` (SQLite) in a directory, or a URL.

    Text columns are created without a length limit so over-long values (a defect class) are
    stored as they are; the work4all limits are in ``tables.py``.
    """

    def __init__(self, out: str) -> None:
        if is_url(out):
            url = out
        else:
            target = _directory(out) / SQLITE_FILE
            target.unlink(missing_ok=True)
            url = f"sqlite:///{target}"
        try:
            self._engine = sa.create_engine(url)
            self._metadata = sa.MetaData()
            self._tables = {
                name: _sql_table(self._metadata, table) for name, table in TABLES.items()
            }
            with self._engine.begin() as connection:
                self._metadata.drop_all(connection)
                self._metadata.create_all(connection)
        except (SQLAlchemyError, ValueError, ImportError) as error:
            raise WriterError(f"{redact(out)}: cannot open the database ({error})") from error

    def write(self, table: Table, rows: Iterable[Row], progress: Callable[[int], None]) -> int:
        """Insert ``rows`` with executemany in chunks, one transaction per table."""
        target = self._tables[table.name]
        names = table.column_names
        count = 0
        chunk: list[dict[str, Any]] = []
        try:
            with self._engine.begin() as connection:
                for row in rows:
                    chunk.append({name: row.get(name) for name in names})
                    if len(chunk) == _CHUNK:
                        connection.execute(target.insert(), chunk)
                        count += len(chunk)
                        progress(len(chunk))
                        chunk = []
                if chunk:
                    connection.execute(target.insert(), chunk)
                    count += len(chunk)
                    progress(len(chunk))
        except SQLAlchemyError as error:
            raise WriterError(f"table {table.name}: {error}") from error
        return count

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()


_SQL_TYPES: dict[Kind, Callable[[], sa.types.TypeEngine[Any]]] = {
    Kind.CODE: sa.Integer,
    Kind.INT: sa.Integer,
    Kind.BOOL: sa.Integer,
    Kind.TEXT: sa.UnicodeText,
    Kind.MONEY: sa.Float,
    Kind.FLOAT: sa.Float,
    Kind.DATETIME: sa.DateTime,
}


def _sql_table(metadata: sa.MetaData, table: Table) -> sa.Table:
    return sa.Table(
        table.name,
        metadata,
        *(
            sa.Column(
                column.name,
                _SQL_TYPES[column.kind](),
                primary_key=column.name == table.key,
                autoincrement=False,
            )
            for column in table.columns
        ),
    )


def german_number(value: float) -> str:
    """``value`` as a German export shows it: thousands dot, decimal comma (``1.234,56``).

    Values with more than two decimals keep every digit of their shortest repr, so a float
    read back is the float written.
    """
    if value == round(value, 2):
        text = f"{value:,.2f}"
    else:
        digits = repr(abs(value))
        if "e" in digits or "." not in digits:
            digits = f"{abs(value):.17f}".rstrip("0")
        whole, fraction = digits.split(".")
        text = f"{'-' if value < 0 else ''}{int(whole):,}.{fraction}"
    return text.translate(str.maketrans(",.", ".,"))


def german_datetime(value: datetime) -> str:
    """``dd.mm.yyyy`` for midnight values, else ``dd.mm.yyyy hh:mm:ss``."""
    day = f"{value.day:02d}.{value.month:02d}.{value.year:04d}"
    if value.hour == value.minute == value.second == 0:
        return day
    return f"{day} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _csv_text(value: Any) -> str:
    return "" if value is None else str(value)


def _csv_number(value: Any) -> str:
    return "" if value is None else german_number(float(value))


def _csv_datetime(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, TextDate):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return german_datetime(value)


_CSV_CELL: dict[Kind, Callable[[Any], str]] = {
    Kind.CODE: _csv_text,
    Kind.INT: _csv_text,
    Kind.BOOL: _csv_text,
    Kind.TEXT: _csv_text,
    Kind.MONEY: _csv_number,
    Kind.FLOAT: _csv_number,
    Kind.DATETIME: _csv_datetime,
}


class CsvWriter:
    """One ``<Table>.csv`` per table as a German Excel user saves it.

    Windows-1252, ``;``, CRLF, header row, decimal comma with thousands dot, ``dd.mm.yyyy``,
    empty cell for NULL, fields with ``;``, quotes or line breaks quoted.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def write(self, table: Table, rows: Iterable[Row], progress: Callable[[int], None]) -> int:
        """Write ``<directory>/<table>.csv``."""
        names = table.column_names
        cells = [(column.name, _CSV_CELL[column.kind]) for column in table.columns]
        count = 0
        path = self._directory / f"{table.name}.csv"
        try:
            with path.open("w", encoding=CSV_ENCODING, newline="") as handle:
                writer = csv.writer(handle, delimiter=CSV_DELIMITER, lineterminator="\r\n")
                writer.writerow(names)
                for row in rows:
                    writer.writerow([cell(row.get(name)) for name, cell in cells])
                    count += 1
                    if count % _CHUNK == 0:
                        progress(_CHUNK)
        except OSError as error:
            raise WriterError(f"{path}: {error.strerror}") from error
        except UnicodeEncodeError as error:
            raise WriterError(
                f"{path}: value not representable in Windows-1252: {error}"
            ) from error
        progress(count % _CHUNK)
        return count

    def close(self) -> None:
        """Nothing to finish: each file is closed after its table."""


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        if isinstance(value, TextDate):
            return german_datetime(value)
        if value.year < 1900:
            # Excel has no dates before 1900; a placeholder survives only as text
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    return value


class XlsxWriter:
    """One workbook ``work4all.xlsx``, a sheet per table (openpyxl write-only mode)."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / XLSX_FILE
        self._workbook = Workbook(write_only=True)

    def write(self, table: Table, rows: Iterable[Row], progress: Callable[[int], None]) -> int:
        """Append a sheet named after ``table``."""
        sheet = self._workbook.create_sheet(title=table.name)
        names = table.column_names
        sheet.append(list(names))
        count = 0
        for row in rows:
            sheet.append([_xlsx_cell(row.get(name)) for name in names])
            count += 1
            if count % _CHUNK == 0:
                progress(_CHUNK)
        progress(count % _CHUNK)
        return count

    def close(self) -> None:
        """Save the workbook with fixed timestamps, so one seed gives one file."""
        self._workbook.properties.created = _FIXED_TIME
        temporary = self._path.with_suffix(".tmp.xlsx")
        try:
            self._workbook.save(temporary)
            _normalise_zip(temporary, self._path)
        except OSError as error:
            raise WriterError(f"{self._path}: {error.strerror}") from error
        finally:
            temporary.unlink(missing_ok=True)


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def _normalise_zip(source: Path, target: Path) -> None:
    """Copy a zip entry by entry with fixed entry times and a fixed ``modified`` property."""
    stamp = _FIXED_TIME.timetuple()[:6]
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            if info.filename == "docProps/core.xml":
                body = _MODIFIED.sub(rb"\g<1>2026-01-01T00:00:00Z\g<2>", zin.read(info))
                zout.writestr(fixed, body)
                continue
            with zin.open(info) as src, zout.open(fixed, "w") as dst:
                _copy(src, dst)


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    shutil.copyfileobj(source, target, 1 << 20)
