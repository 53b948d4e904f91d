"""What an ``.xlsx`` package says about itself: its sheets, shared strings, date styles, epoch.

openpyxl's ``load_workbook(read_only=True)`` looks for every sheet's ``<dimension>`` on opening;
a sheet written without one (openpyxl's own write-only mode writes none) is then parsed whole,
once more than needed and with memory that grows with its rows. This module reads only the
small parts — ``[Content_Types]``-independent, following the package relationships as
ECMA-376 part 2 describes — and leaves the sheets to
:class:`~producers.work4all.xlsx_sheet.SheetReader`.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, fromstring, iterparse

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_STRICT = "{http://purl.oclc.org/ooxml/spreadsheetml/main}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_R_ID = (
    "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id",
    "{http://purl.oclc.org/ooxml/officeDocument/relationships}id",
)
_WINDOWS_EPOCH = datetime(1899, 12, 30)
_MAC_EPOCH = datetime(1904, 1, 1)


class WorkbookError(ValueError):
    """The package is not a workbook this reader understands (a part is missing or broken)."""


@dataclass
class Workbook:
    """An open ``.xlsx`` package: sheets by name (in workbook order) and how to read cells."""

    archive: zipfile.ZipFile
    sheets: dict[str, str]
    """sheet name → part name in the archive (``xl/worksheets/sheet1.xml``)."""
    shared_strings: list[str]
    date_styles: frozenset[int]
    timedelta_styles: frozenset[int]
    epoch: datetime

    def open_sheet(self, name: str) -> IO[bytes]:
        """The sheet's XML as a stream; close it after use."""
        return self.archive.open(self.sheets[name])

    def close(self) -> None:
        """Close the package file."""
        self.archive.close()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element.iter() if _local(child.tag) == name]


def _relationships(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Relationship id → (type, target part name) of ``part``."""
    folder, name = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", f"{name}.rels")
    if rels not in archive.namelist():
        return {}
    found: dict[str, tuple[str, str]] = {}
    for relation in fromstring(archive.read(rels)).iter(f"{_RELS}Relationship"):
        target = relation.get("Target", "")
        if relation.get("TargetMode") == "External":
            continue
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        found[relation.get("Id", "")] = (
            relation.get("Type", ""),
            posixpath.normpath(resolved),
        )
    return found


def _shared_strings(archive: zipfile.ZipFile, part: str | None) -> list[str]:
    if part is None or part not in archive.namelist():
        return []
    strings: list[str] = []
    with archive.open(part) as source:
        for _, element in iterparse(source):
            if _local(element.tag) != "si":
                continue
            texts: list[str] = []
            for child in element:
                kind = _local(child.tag)
                if kind == "t":
                    texts.append(child.text or "")
                elif kind == "r":  # a rich-text run; phonetic runs (rPh) are left out
                    texts.extend(t.text or "" for t in child if _local(t.tag) == "t")
            strings.append("".join(texts))
            element.clear()
    return strings


def _styles(archive: zipfile.ZipFile, part: str | None) -> tuple[frozenset[int], frozenset[int]]:
    """The cell style indices (``s="…"``) whose number format shows a date or a duration."""
    if part is None or part not in archive.namelist():
        return frozenset(), frozenset()
    root = fromstring(archive.read(part))
    custom = {
        int(fmt.get("numFmtId", "-1")): fmt.get("formatCode", "")
        for fmt in _children(root, "numFmt")
    }
    dates: set[int] = set()
    durations: set[int] = set()
    cell_formats = next((e for e in root if _local(e.tag) == "cellXfs"), None)
    for index, xf in enumerate(cell_formats if cell_formats is not None else []):
        number = int(xf.get("numFmtId", "0"))
        code = custom.get(number, BUILTIN_FORMATS.get(number))
        if code and is_date_format(code):
            dates.add(index)
            if is_timedelta_format(code):
                durations.add(index)
    return frozenset(dates), frozenset(durations)


def open_workbook(path: Path) -> Workbook:
    """Open the package at ``path``; :class:`WorkbookError` or a zip error when it is broken."""
    archive = zipfile.ZipFile(path)
    try:
        root_rels = _relationships(archive, "_rels/.rels") or _relationships(archive, ".rels")
        book_part = next(
            (target for kind, target in root_rels.values() if kind.endswith("/officeDocument")),
            "xl/workbook.xml",
        )
        if book_part not in archive.namelist():
            raise WorkbookError("the package has no workbook part")
        book = fromstring(archive.read(book_part))
        relations = _relationships(archive, book_part)
        sheets: dict[str, str] = {}
        for sheet in _children(book, "sheet"):
            rid = next((sheet.get(name) for name in _R_ID if sheet.get(name)), None)
            relation = relations.get(rid or "")
            if relation is not None and relation[0].endswith("/worksheet"):
                sheets[sheet.get("name", "")] = relation[1]
        by_kind = {kind.rpartition("/")[2]: target for kind, target in relations.values()}
        properties = next(iter(_children(book, "workbookPr")), None)
        date1904 = properties is not None and properties.get("date1904", "") in ("1", "true")
        dates, durations = _styles(archive, by_kind.get("styles"))
        return Workbook(
            archive,
            sheets,
            _shared_strings(archive, by_kind.get("sharedStrings")),
            dates,
            durations,
            _MAC_EPOCH if date1904 else _WINDOWS_EPOCH,
        )
    except BaseException:
        archive.close()
        raise
