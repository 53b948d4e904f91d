"""The fast worksheet reader gives what openpyxl's parser gives, on canonical and unusual XML."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from producers.work4all.xlsx_sheet import SheetBrokenError, SheetReader

_EPOCH = datetime(1899, 12, 30)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _rows(xml: str, shared: list[str] | None = None, dates: set[int] | None = None) -> list:
    reader = SheetReader(shared or [], dates or set(), set(), _EPOCH)
    return list(reader.rows(io.BytesIO(xml.encode())))


def _sheet(body: str, prefix: str = "") -> str:
    p = f"{prefix}:" if prefix else ""
    ns = _NS.replace("xmlns=", f"xmlns:{prefix}=") if prefix else _NS
    data = f"<{p}sheetData>{body}</{p}sheetData>"
    return f'<?xml version="1.0"?><{p}worksheet {ns}>{data}</{p}worksheet>'


def test_a_workbook_written_by_openpyxl_reads_as_openpyxl_reads_it(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Code", "Name", "Betrag", "Datum", "Aktiv", "Leer", "Notiz"])
    sheet.append(
        [1, "Müller & Söhne <GmbH>", 12.5, datetime(2024, 3, 1, 14, 30), True, None, "a\nb"]
    )
    sheet.append([2, "  Leerzeichen  ", -3, datetime(1999, 12, 31), False, None, None])
    sheet.append([])
    sheet.append([None, None, 1e20])
    path = tmp_path / "book.xlsx"
    book.save(path)

    expected = [
        row
        for row in openpyxl.load_workbook(path, read_only=True).active.iter_rows(values_only=True)
    ]
    loaded = openpyxl.load_workbook(path, read_only=True)
    archive = loaded._archive  # type: ignore[attr-defined]
    reader = SheetReader(
        loaded.shared_strings,  # type: ignore[attr-defined]
        set(loaded._date_formats),  # type: ignore[attr-defined]
        set(loaded._timedelta_formats),  # type: ignore[attr-defined]
        loaded.epoch,
    )
    with archive.open(loaded.active._worksheet_path) as source:  # type: ignore[union-attr]
        got = list(reader.rows(source))

    assert [number for number, _ in got] == [1, 2, 3, 5]
    width = len(expected[0])
    for number, values in got:
        padded = tuple(values) + (None,) * (width - len(values))
        assert padded == expected[number - 1][:width], number


def test_shared_strings_booleans_errors_formulas_and_rich_text() -> None:
    xml = _sheet(
        '<row r="1"><c r="A1" t="s"><v>1</v></c><c r="C1" t="b"><v>1</v></c>'
        '<c r="D1" t="e"><v>#REF!</v></c><c r="E1" t="str"><f>A1&amp;"x"</f><v>Bx</v></c>'
        '<c r="F1" t="inlineStr"><is><r><t>Fett</t></r><r><t xml:space="preserve"> und</t></r>'
        "<rPh><t>ふりがな</t></rPh></is></c></row>"
    )
    assert _rows(xml, shared=["A", "B"]) == [(1, ["B", None, True, "#REF!", "Bx", "Fett und"])]


def test_cells_without_references_and_rows_without_numbers_follow_on() -> None:
    xml = _sheet('<row><c><v>1</v></c><c><v>2.5</v></c></row><row><c t="n"><v>3E2</v></c></row>')
    assert _rows(xml) == [(1, [1, 2.5]), (2, [300.0])]


def test_a_namespace_prefix_and_single_quotes_are_understood() -> None:
    xml = _sheet(
        "<x:row r='7'><x:c r='B7' t='inlineStr'><x:is><x:t>Köln</x:t></x:is></x:c></x:row>",
        prefix="x",
    )
    assert _rows(xml) == [(7, [None, "Köln"])]


def test_dates_by_style_and_escaped_control_characters() -> None:
    xml = _sheet(
        '<row r="2"><c r="A2" s="3"><v>45352.5</v></c><c r="B2" s="1"><v>45352.5</v></c>'
        '<c r="C2" t="inlineStr"><is><t>Zeile_x000D_\r\nzwei</t></is></c></row>'
    )
    # the raw CR LF is one line end to XML; the escaped CR is a character of the value
    expected = [datetime(2024, 3, 1, 12, 0), 45352.5, "Zeile\r\nzwei"]
    assert _rows(xml, dates={3}) == [(2, expected)]


def test_a_sheet_cut_off_in_its_rows_says_after_which_row() -> None:
    xml = _sheet("".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>' for n in range(1, 50)))
    cut = xml[: len(xml) // 2]
    read: list = []
    with pytest.raises(SheetBrokenError) as caught:
        read.extend(SheetReader([], set(), set(), _EPOCH).rows(io.BytesIO(cut.encode())))
    assert caught.value.last_row == len(read)
    assert 0 < len(read) < 49
