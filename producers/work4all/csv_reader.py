"""CSV exports: one ``<Table>.csv`` file per table, read one line at a time.

A German Excel CSV is Windows-1252 with ``;``; a vendor script may write UTF-8 (with or without
a byte-order mark), UTF-16 ("Unicode" in SSMS) or ``,``. Each file's encoding is decided from a
sample of its first 64 KiB, and each line is decoded on its own, so a file that mixes encodings
(UTF-8 rows pasted into a Windows-1252 file) is read with the odd rows flagged, not rejected.
The delimiter is the one of ``;``, ``,``, TAB and ``|`` that splits the header most often.

Row positions are physical line numbers: the header is line 1, and a record whose quoted note
spans several lines is placed on the line it starts on.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from _csv import Reader as _CsvReader
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from producers.work4all.errors import ExportError, Finding, Severity
from producers.work4all.readers import Export, RawValue, SourceRow

_SAMPLE_BYTES = 64 * 1024
_DELIMITERS = (";", ",", "\t", "|")
_UTF8 = "utf-8"
_CP1252 = "cp1252"
# Notes, RTF and HTML bodies routinely exceed the csv module's default 128 KiB field limit.
csv.field_size_limit(2**31 - 1)


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one file is encoded and delimited, decided once from its first bytes."""

    encoding: str | None  # None: the sample was plain ASCII, the first non-ASCII line decides
    skip: int  # bytes of byte-order mark before the header
    delimiter: str
    whole_stream: bool  # UTF-16 cannot be split into lines before decoding


@dataclass(frozen=True, slots=True)
class _LineProblem:
    line: int
    kind: str
    severity: Severity
    message: str
    marker: str  # which characters show the affected cells: non-ASCII or U+FFFD


def _binary_offset(sample: bytes) -> int | None:
    """Return the offset of the first byte that no text file contains, if any."""
    for offset, byte in enumerate(sample):
        if byte < 0x20 and byte not in (0x09, 0x0A, 0x0D, 0x0C):
            return offset
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """Return ``utf-16-le``/``-be`` when NUL bytes sit in every other position, as in UTF-16."""
    even, odd = sample[0::2], sample[1::2]
    if len(sample) < 4:
        return None
    if odd.count(0) > 0.6 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _sample_encoding(sample: bytes) -> str | None:
    """Decide between UTF-8 and Windows-1252 by the sample's non-ASCII lines (majority wins)."""
    complete = sample[: sample.rfind(b"\n") + 1] if b"\n" in sample else sample
    utf8 = cp1252 = 0
    for line in complete.splitlines():
        if line.isascii():
            continue
        try:
            line.decode(_UTF8)
            utf8 += 1
        except UnicodeDecodeError:
            cp1252 += 1
    if utf8 == cp1252 == 0:
        return None
    return _UTF8 if utf8 >= cp1252 else _CP1252


def _delimiter(header: str) -> str:
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ";"


def _sniff(path: Path) -> _Layout:
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    if not sample:
        raise ExportError(path.name, "empty file: no header line", row=1)
    if sample.startswith(codecs.BOM_UTF8):
        first = sample[3:].split(b"\n", 1)[0].decode(_UTF8, errors="replace")
        return _Layout(_UTF8, 3, _delimiter(first), whole_stream=False)
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if sample.startswith(bom):
            first = sample[2:].decode(encoding, errors="replace").split("\n", 1)[0]
            return _Layout(encoding, 2, _delimiter(first), whole_stream=True)
    utf16 = _utf16_without_bom(sample)
    if utf16 is not None:
        first = sample.decode(utf16, errors="replace").split("\n", 1)[0]
        return _Layout(utf16, 0, _delimiter(first), whole_stream=True)
    offset = _binary_offset(sample)
    if offset is not None:
        raise ExportError(
            path.name,
            f"not a CSV text file: binary byte 0x{sample[offset]:02x} at offset {offset}",
        )
    sampled = _sample_encoding(sample)
    first = sample.split(b"\n", 1)[0].decode(sampled or _CP1252, errors="replace")
    return _Layout(sampled, 0, _delimiter(first), whole_stream=False)


class _LineDecoder:
    """Decodes a byte stream line by line and notes every line that breaks the file's encoding."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding
        self.problems: list[_LineProblem] = []
        self.line = 0

    def decode(self, lines: Iterable[bytes]) -> Iterator[str]:
        for raw in lines:
            self.line += 1
            if raw.isascii():
                yield raw.decode("ascii")
            else:
                yield self._decode_non_ascii(raw)

    def _decode_non_ascii(self, raw: bytes) -> str:
        try:
            text = raw.decode(_UTF8)
            found = _UTF8
        except UnicodeDecodeError:
            try:
                text = raw.decode(_CP1252)
                found = _CP1252
            except UnicodeDecodeError:
                self._note(
                    "encoding",
                    "error",
                    "bytes that are neither UTF-8 nor Windows-1252 (an unexpected encoding such "
                    "as DOS code page 850?); unreadable characters replaced by U+FFFD",
                    "\ufffd",
                )
                return raw.decode(_CP1252, errors="replace")
        if self.encoding is None:
            self.encoding = found
        if found != self.encoding:
            names = {_UTF8: "UTF-8", _CP1252: "Windows-1252"}
            self._note(
                "encoding",
                "warning",
                f"line is {names[found]} in a {names[self.encoding]} file; read as {names[found]}",
                "",
            )
        return text

    def _note(self, kind: str, severity: Severity, message: str, marker: str) -> None:
        self.problems.append(_LineProblem(self.line, kind, severity, message, marker))


def _affected(fields: list[str], header: list[str], marker: str) -> list[str]:
    """Name the columns whose text shows a line problem (U+FFFD, or any non-ASCII character)."""
    names = []
    for name, value in zip(header, fields, strict=False):
        if (marker and marker in value) or (not marker and not value.isascii()):
            names.append(name)
    return names or [header[0]]


class CsvExport(Export):
    """A directory of ``<Table>.csv`` files, or a single CSV file holding one table."""

    position_unit = "line"
    form = "csv"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        self._files = {
            unicodedata.normalize("NFC", file.stem): file
            for file in files
            if file.is_file() and file.suffix.casefold() in (".csv", ".txt")
        }
        if not self._files:
            raise ExportError(path.name, "no .csv files in this directory")
        self._layouts: dict[str, _Layout] = {}

    def tables(self) -> list[str]:
        """Return the table names, taken from the file names (``Kunden.csv`` → ``Kunden``)."""
        return list(self._files)

    def source(self, table: str) -> str:
        """Return the file name that holds ``table``."""
        return self._path(table).name

    def columns(self, table: str) -> list[str]:
        """Return the header of ``table``'s file."""
        with self._open(table) as (header, _records, _decoder):
            return header

    def rows(self, table: str) -> Generator[SourceRow]:
        """Yield ``table``'s records; cells are the text as written (empty cells are ``""``)."""
        name = self.source(table)
        with self._open(table) as (header, records, decoder):
            width = len(header)
            previous_end = 1
            try:
                for fields in records:
                    start, previous_end = previous_end + 1, records.line_num
                    if not fields:
                        continue
                    findings = [
                        Finding(name, start, column, p.kind, p.message, p.severity)
                        for p in decoder.problems
                        for column in _affected(fields, header, p.marker)
                    ]
                    decoder.problems.clear()
                    if len(fields) != width:
                        findings.append(self._width_finding(name, start, header, fields))
                    raw: dict[str, RawValue] = dict(zip(header, fields, strict=False))
                    for column in header[len(fields) :]:
                        raw[column] = None
                    yield SourceRow(table, start, raw, tuple(findings))
            except csv.Error as error:
                raise ExportError(name, f"broken CSV: {error}", row=records.line_num) from error

    @staticmethod
    def _width_finding(name: str, line: int, header: list[str], fields: list[str]) -> Finding:
        if len(fields) > len(header):
            extra = [field for field in fields[len(header) :] if field.strip()]
            message = (
                f"{len(fields)} fields but the header has {len(header)}: a delimiter inside an "
                f"unquoted value? extra values {extra[:3]!r} dropped, earlier values may be shifted"
            )
            return Finding(name, line, header[-1], "field_count", message, "error")
        missing = header[len(fields) :]
        message = f"{len(fields)} fields but the header has {len(header)}: {missing!r} are empty"
        return Finding(name, line, missing[0], "field_count", message, "error")

    def close(self) -> None:
        """Release nothing: every read opens and closes its own file."""

    def _path(self, table: str) -> Path:
        try:
            return self._files[table]
        except KeyError:
            found = self.find_table(table)
            if found is None:
                raise ExportError(f"{table}.csv", "no such file in the export") from None
            return self._files[found]

    def _layout(self, table: str) -> _Layout:
        if table not in self._layouts:
            self._layouts[table] = _sniff(self._path(table))
        return self._layouts[table]

    def _open(self, table: str) -> _OpenTable:
        return _OpenTable(self._path(table), self._layout(table))


class _OpenTable:
    """A file opened for reading: header parsed, a csv reader positioned at the first record."""

    def __init__(self, path: Path, layout: _Layout) -> None:
        self._path = path
        self._layout = layout
        self._file: BinaryIO | None = None

    def __enter__(self) -> tuple[list[str], _CsvReader, _LineDecoder]:
        file = self._path.open("rb")
        self._file = file
        file.seek(self._layout.skip)
        decoder = _LineDecoder(self._layout.encoding)
        lines: Iterable[str]
        if self._layout.whole_stream:
            assert self._layout.encoding is not None
            lines = io.TextIOWrapper(file, self._layout.encoding, errors="replace", newline="")
        else:
            lines = decoder.decode(file)
        records = csv.reader(lines, delimiter=self._layout.delimiter, quotechar='"')
        try:
            header = next(records, [])
        except csv.Error as error:
            raise ExportError(self._path.name, f"broken header: {error}", row=1) from error
        header = [unicodedata.normalize("NFC", name.lstrip("\ufeff").strip()) for name in header]
        if not any(header):
            raise ExportError(self._path.name, "empty file: no header line", row=1)
        decoder.problems.clear()
        return header, records, decoder

    def __exit__(self, *exc_info: object) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
