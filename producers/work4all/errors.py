"""What can go wrong when reading a work4all export, named by file, row and column.

Two kinds of problem, kept apart on purpose:

- A :class:`Finding` is a problem with a value or a row that can still be used (a placeholder
  date, an amount that is not a number, a row that was not valid UTF-8). Readers and the
  normaliser return findings next to the data, so one bad cell never stops an export.
- An :class:`ExportError` is raised only when the input cannot be read at all (a truncated
  workbook, a binary file where a CSV was expected, a database that does not answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


def _where(file: str, row: int | None, column: str | None) -> str:
    parts = [file]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem with one value or row that does not stop the export from being read.

    ``kind`` is a stable, machine-readable class for counting; ``severity`` is ``error`` where a
    value or table was lost and ``warning`` where it was read, repaired or merely noted. Kinds:

    - from the readers: ``encoding`` (a line not in the file's encoding), ``field_count``;
    - from the normaliser: ``bad_value``, ``placeholder_date``, ``unknown_country``,
      ``encoding`` (mojibake repaired), ``too_long``, ``bad_custom_value``, ``missing_key``;
    - from the structure check: ``missing_table``, ``missing_column``, ``unreadable_table``,
      ``custom_field_without_column``, ``custom_field_undefined``.
    """

    file: str
    row: int | None
    column: str | None
    kind: str
    message: str
    severity: Severity = "warning"

    def __str__(self) -> str:
        return f"{_where(self.file, self.row, self.column)}: {self.message}"


class ExportError(Exception):
    """The export (or one of its files or tables) cannot be read."""

    def __init__(
        self, file: str, message: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(file, row, column, message)
        self.file = file
        self.row = row
        self.column = column
        self.message = message

    def __str__(self) -> str:
        return f"{_where(self.file, self.row, self.column)}: {self.message}"
