"""Excel exports: one workbook, one sheet per table, the first row holding the column names.

The package's small parts (sheet names and parts, shared strings, date styles, epoch) are read
by :mod:`.xlsx_book`; each sheet's rows are streamed by
:class:`~producers.work4all.xlsx_sheet.SheetReader`, which reads more than twice as fast as
openpyxl's cell parser, in memory that does not grow with the sheet, and gives the same values
(formulas as their cached values). Row positions are Excel row numbers: the header is row 1, so
the first record is row 2.
"""

from __future__ import annotations

import unicodedata
import zipfile
import zlib
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from producers.work4all.errors import ExportError
from producers.work4all.readers import Export, RawValue, SourceRow
from producers.work4all.xlsx_book import WorkbookError, open_workbook
from producers.work4all.xlsx_sheet import SheetBrokenError, SheetReader

# What a damaged workbook raises: a cut zip, broken XML, a missing part, a bad number.
_BROKEN = (
    zipfile.BadZipFile, WorkbookError, ParseError, KeyError, OSError, EOFError, zlib.error,
    UnicodeDecodeError, ValueError, IndexError,
)  # fmt: skip


class XlsxExport(Export):
    """An ``.xlsx`` workbook with a sheet per work4all table."""

    position_unit = "sheet row"
    form = "xlsx"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self._name = path.name
        try:
            self._book = open_workbook(path)
        except _BROKEN as error:
            raise ExportError(
                path.name, f"not a readable .xlsx workbook (truncated or damaged): {error}"
            ) from error
        self._sheets = {unicodedata.normalize("NFC", name): name for name in self._book.sheets}
        self._reader = SheetReader(
            self._book.shared_strings,
            self._book.date_styles,
            self._book.timedelta_styles,
            self._book.epoch,
        )

    def tables(self) -> list[str]:
        """Return the table names, taken from the sheet names."""
        return list(self._sheets)

    def source(self, table: str) -> str:
        """Return ``book.xlsx[Sheet]`` for messages."""
        return f"{self._name}[{self._sheet_name(table)}]"

    def columns(self, table: str) -> list[str]:
        """Return the header row of ``table``'s sheet."""
        values = self._values(table)
        try:
            return self._header(table, next(values, (1, ()))[1])
        except _BROKEN as error:
            raise ExportError(
                self.source(table), f"sheet is damaged and cannot be read: {error}", row=1
            ) from error
        finally:
            values.close()

    def rows(self, table: str) -> Generator[SourceRow]:
        """Yield the sheet's rows after the header; wholly empty rows are skipped."""
        values = self._values(table)
        last = 0  # the last sheet row read whole, for the message when the sheet breaks off
        try:
            header = self._header(table, next(values, (1, ()))[1])
            last = 1
            for position, cells in values:
                last = position
                if all(cell is None for cell in cells):
                    continue
                # the sheet reader gives only str, int, float, bool, datetime and None
                raw: dict[str, RawValue] = dict(zip(header, cells, strict=False))
                for name in header[len(cells) :]:
                    raw[name] = None
                yield SourceRow(table, position, raw)
        except SheetBrokenError as error:
            last = max(last, error.last_row)
            raise ExportError(
                self.source(table),
                f"the sheet breaks off after row {last} (truncated or damaged): {error}",
                row=last + 1,
            ) from error
        except _BROKEN as error:
            raise ExportError(
                self.source(table),
                f"the sheet breaks off after row {last} (truncated or damaged): {error}",
                row=last + 1,
            ) from error
        finally:
            values.close()

    def close(self) -> None:
        """Close the workbook's file."""
        self._book.close()

    def _sheet_name(self, table: str) -> str:
        if table in self._sheets:
            return str(self._sheets[table])
        found = self.find_table(table)
        if found is None:
            raise ExportError(f"{self._name}[{table}]", "no such sheet in the workbook")
        return str(self._sheets[found])

    def _values(self, table: str) -> Generator[tuple[int, list[Any]]]:
        """``(sheet row, values)`` of every row with cells, the header first."""
        with self._book.open_sheet(self._sheet_name(table)) as source:
            yield from self._reader.rows(source)

    def _header(self, table: str, cells: Sequence[Any]) -> list[str]:
        header = [
            unicodedata.normalize("NFC", str(cell).strip()) if cell is not None else ""
            for cell in cells
        ]
        while header and not header[-1]:
            header.pop()
        if not header:
            raise ExportError(self.source(table), "empty sheet: no header row", row=1)
        return header
