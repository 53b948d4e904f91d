"""A fast streaming reader of one worksheet's XML (``xl/worksheets/sheetN.xml``).

openpyxl's read-only mode builds an element per cell and reads about 2,700 work4all rows a
second; a one-million-record workbook then takes most of an hour. A worksheet is machine-written,
flat XML (``<sheetData>`` of ``<row>`` of ``<c>``), so this reader finds rows and cells with
regular expressions over the decompressed stream, 256 KiB at a time, and applies the same rules
as openpyxl's parser with ``data_only=True``:

- ``t="s"``: index into the shared strings; ``t="inlineStr"``: the ``<is>`` text (rich-text runs
  joined, phonetic runs ``<rPh>`` left out); ``t="str"``: a formula's cached string;
  ``t="b"``: a bool; ``t="e"``: the error text (``#REF!``); ``t="d"``: an ISO 8601 date.
- a number (``t="n"`` or none) is an int unless it has a point or an exponent; with a date or
  time style (from ``styles.xml``, as openpyxl reads it) it becomes a ``datetime``.
- text is unescaped as XML does (entities, line ends), and OOXML's ``_xHHHH_`` escapes of
  control characters are decoded.

A sheet whose XML stops before ``</worksheet>`` is damaged: :class:`SheetBrokenError` says after
which row, so the caller can name the place. Memory stays at one chunk plus one batch of rows.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from openpyxl.utils.datetime import from_excel

_CHUNK = 1 << 18
_P = r"(?:[A-Za-z_][\w.-]*:)?"  # an optional namespace prefix: <x:row>
_ROW = re.compile(rf"<{_P}row\b([^>]*?)(?:/>|>(.*?)</{_P}row>)", re.S)
_ROW_END = re.compile(rf"</{_P}row>")
_CELL = re.compile(rf"<{_P}c\b([^>]*?)(?:/>|>(.*?)</{_P}c>)", re.S)
_VALUE = re.compile(rf"<{_P}v>(.*?)</{_P}v>", re.S)
_TEXT = re.compile(rf"<{_P}t\b[^>]*?(?:/>|>(.*?)</{_P}t>)", re.S)
_PHONETIC = re.compile(rf"<{_P}rPh\b.*?</{_P}rPh>", re.S)
_REF = re.compile(r"""\br\s*=\s*["']([A-Za-z]*)(\d*)""")
_TYPE = re.compile(r"""\bt\s*=\s*["'](\w+)""")
_STYLE = re.compile(r"""\bs\s*=\s*["'](\d+)""")
_END = re.compile(rf"</{_P}worksheet\s*>")
# The canonical form openpyxl and Excel write: attributes r, s, t in that order, no prefix, a
# plain <v> or a one-run inline string. A row whose cells all match it takes the fast path.
_PLAIN_CELL = re.compile(
    r'<c r="([A-Z]+)\d+"(?: s="(\d+)")?(?: t="(\w+)")?\s*'
    r"(?:/>|>(?:<v>([^<]*)</v>|<is><t(?: [^>]*)?>([^<]*)</t></is>|<is><t/></is>)?</c>)"
)
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


class SheetBrokenError(ValueError):
    """The sheet's XML stops or breaks after ``last_row`` (the last row read whole)."""

    def __init__(self, last_row: int, reason: str) -> None:
        super().__init__(reason)
        self.last_row = last_row


def _column_number(letters: str) -> int:
    """``A`` → 1, ``AB`` → 28."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


_COLUMNS = {
    **{chr(65 + a): a + 1 for a in range(26)},
    **{chr(65 + a) + chr(65 + b): 26 * (a + 1) + b + 1 for a in range(26) for b in range(26)},
}


def _text(raw: str) -> str:
    if "&" in raw:
        raw = html.unescape(raw)
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if "_x" in raw:
        raw = _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), raw)
    return raw


class SheetReader:
    """Turns a worksheet's XML into rows of cell values."""

    def __init__(
        self,
        shared_strings: Sequence[str],
        date_styles: set[int] | frozenset[int],
        timedelta_styles: set[int] | frozenset[int],
        epoch: datetime,
    ) -> None:
        self._shared = shared_strings
        self._dates = date_styles
        self._timedeltas = timedelta_styles
        self._epoch = epoch

    def rows(self, source: IO[bytes]) -> Iterator[tuple[int, list[Any]]]:
        """Yield ``(row number, values)`` for every row that has cells; values from column A."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        pending = ""
        last = 0
        while True:
            chunk = source.read(_CHUNK)
            pending += decoder.decode(chunk, final=not chunk)
            if not chunk:
                break
            cut = _last_row_end(pending)
            if cut:
                for row in self._rows(pending[:cut], last):
                    last = row[0]
                    yield row
                pending = pending[cut:]
        for row in self._rows(pending, last):
            last = row[0]
            yield row
        if _END.search(pending) is None:
            raise SheetBrokenError(last, "the sheet's XML stops before its end")

    def _rows(self, text: str, last: int) -> Iterator[tuple[int, list[Any]]]:
        for match in _ROW.finditer(text):
            attributes, body = match.groups()
            ref = _REF.search(attributes)
            number = int(ref.group(2)) if ref is not None and ref.group(2) else last + 1
            last = number
            if body:
                values = self._cells(body)
                if values:
                    yield number, values

    def _cells(self, body: str) -> list[Any]:
        plain = _PLAIN_CELL.findall(body)
        if plain and len(plain) == body.count("<c "):
            return self._plain_cells(plain)
        values: list[Any] = []
        for match in _CELL.finditer(body):
            attributes, content = match.groups()
            ref = _REF.search(attributes)
            if ref is not None and ref.group(1):
                column = _column_number(ref.group(1))
                if column > len(values) + 1:
                    values.extend([None] * (column - 1 - len(values)))
                elif column <= len(values):
                    values = values[: column - 1]
            if not content:
                values.append(None)
                continue
            kind = _TYPE.search(attributes)
            values.append(self._value(kind.group(1) if kind else "n", attributes, content))
        while values and values[-1] is None:
            values.pop()
        return values

    def _plain_cells(self, cells: list[tuple[str, str, str, str, str]]) -> list[Any]:
        values: list[Any] = []
        columns = _COLUMNS
        for letters, style, kind, value, text in cells:
            column = columns.get(letters) or _column_number(letters)
            if column != len(values) + 1:
                if column > len(values) + 1:
                    values.extend([None] * (column - 1 - len(values)))
                else:
                    del values[column - 1 :]
            if kind == "inlineStr":
                values.append(_text(text) if text else None)
            elif not value:
                values.append(None)
            elif kind == "n" or not kind:
                number: int | float = (
                    float(value) if "." in value or "E" in value or "e" in value else int(value)
                )
                if style and int(style) in self._dates:
                    values.append(self._date(number, int(style)))
                else:
                    values.append(number)
            elif kind == "s":
                values.append(self._shared[int(value)])
            elif kind == "b":
                values.append(bool(int(value)))
            elif kind == "d":
                values.append(datetime.fromisoformat(value.rstrip("Z")))
            else:
                values.append(_text(value))
        while values and values[-1] is None:
            values.pop()
        return values

    def _value(self, kind: str, attributes: str, content: str) -> Any:
        if kind == "inlineStr":
            if "rPh" in content:
                content = _PHONETIC.sub("", content)
            return _text("".join(part or "" for part in _TEXT.findall(content)))
        found = _VALUE.search(content)
        if found is None:
            return None
        raw = found.group(1)
        if not raw:
            return None
        if kind == "n":
            number: int | float = float(raw) if "." in raw or "E" in raw or "e" in raw else int(raw)
            style = _STYLE.search(attributes)
            if style is not None and int(style.group(1)) in self._dates:
                return self._date(number, int(style.group(1)))
            return number
        if kind == "s":
            return self._shared[int(raw)]
        if kind == "b":
            return bool(int(raw))
        if kind == "d":
            return datetime.fromisoformat(raw.rstrip("Z"))
        return _text(raw)  # "str" (a formula's string) and "e" (an error such as #REF!)

    def _date(self, serial: float, style: int) -> Any:
        try:
            moment = from_excel(serial, self._epoch, timedelta=style in self._timedeltas)
        except (OverflowError, ValueError):
            return "#VALUE!"  # as openpyxl: a serial outside the dates Excel knows
        # a time of day or a duration has no date: its text is what a person sees
        return moment if isinstance(moment, datetime) else str(moment)


def _last_row_end(text: str) -> int:
    """The index just after the last ``</row>`` in ``text``, or 0."""
    position = text.rfind("row>")
    while position != -1:
        start = text.rfind("</", 0, position)
        if start != -1 and _ROW_END.fullmatch(text, start, position + 4):
            return position + 4
        position = text.rfind("row>", 0, position)
    return 0
