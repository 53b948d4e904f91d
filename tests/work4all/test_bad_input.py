"""Bad input: every broken export in ``corpus/`` gives a message naming file, row and column,
and the rest of the export is still read where that is safe.

The corpus is made by ``corpus/make_corpus.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.work4all.errors import ExportError, Finding
from producers.work4all.normalise import Normaliser, check_structure
from producers.work4all.readers import SourceRow, open_export

CORPUS = Path(__file__).parent / "corpus"


def _findings(location: Path, table: str) -> list[Finding]:
    with open_export(location) as export:
        normaliser = Normaliser.for_export(export)
        return [f for record in normaliser.records(export, table) for f in record.findings]


def test_a_truncated_workbook_is_rejected_naming_the_file() -> None:
    with pytest.raises(ExportError) as caught:
        open_export(CORPUS / "truncated.xlsx")
    assert caught.value.file == "truncated.xlsx"
    assert str(caught.value).startswith("truncated.xlsx: not a readable .xlsx workbook")


def test_a_damaged_sheet_fails_at_its_row_and_the_other_sheets_are_still_read() -> None:
    with open_export(CORPUS / "damaged_sheet.xlsx") as export:
        assert len(list(export.rows("Kunden"))) == 40
        read: list[SourceRow] = []
        with pytest.raises(ExportError) as caught:
            read.extend(export.rows("Mitarbeiter"))
    assert caught.value.file == "damaged_sheet.xlsx[Mitarbeiter]"
    assert caught.value.row == len(read) + 2
    assert "breaks off after row" in str(caught.value)


def test_a_csv_in_an_unexpected_encoding_flags_the_unreadable_cells_and_reads_the_rest() -> None:
    findings = _findings(CORPUS / "dos_encoding", "Kunden")
    assert {(f.file, f.row, f.column, f.kind, f.severity) for f in findings} == {
        ("Kunden.csv", 3, "Name", "encoding", "error"),
        ("Kunden.csv", 3, "Ort", "encoding", "error"),
    }
    assert "neither UTF-8 nor Windows-1252" in str(findings[0])
    with open_export(CORPUS / "dos_encoding") as export:
        assert [row.raw["Code"] for row in export.rows("Kunden")] == ["1", "2", "3"]


def test_a_missing_table_and_a_missing_required_column_are_errors_naming_them() -> None:
    with open_export(CORPUS / "missing_table_and_column") as export:
        errors = [f for f in check_structure(export, Normaliser()) if f.severity == "error"]
        assert len(list(export.rows("KAnsprechp"))) == 1
    assert ("Kunden", None, None, "missing_table") in {
        (f.file, f.row, f.column, f.kind) for f in errors
    }
    assert ("KAnsprechp.csv", 1, "KundenCode", "missing_column") in {
        (f.file, f.row, f.column, f.kind) for f in errors
    }
    assert (
        "KAnsprechp.csv, row 1, column 'KundenCode': required column KundenCode is missing "
        "from the header"
    ) in {str(f) for f in errors}


def test_a_non_numeric_amount_names_file_row_and_column_and_the_row_is_kept() -> None:
    with open_export(CORPUS / "non_numeric_amount") as export:
        records = list(Normaliser.for_export(export).records(export, "RA"))
    assert [r.key for r in records] == [52775659, 52775660, 52775661]
    [finding] = [f for r in records for f in r.findings]
    assert str(finding) == "RA.csv, row 3, column 'RBetrag': not a number: 'zweihundert'"
    assert records[1].values["RBetrag"] is None
    assert str(records[1].values["RMwst"]) == "38.00"
    assert str(records[2].values["RBetrag"]) == "1200.00"


def test_a_garbage_file_is_rejected_and_the_other_tables_are_still_read() -> None:
    with open_export(CORPUS / "garbage_file") as export:
        with pytest.raises(ExportError, match=r"^Kunden\.csv: not a CSV text file: binary"):
            list(export.rows("Kunden"))
        assert [row.raw["Code"] for row in export.rows("Mitarbeiter")] == ["22209630"]
        unreadable = [f for f in check_structure(export, Normaliser()) if f.file == "Kunden.csv"]
    assert [(f.kind, f.severity) for f in unreadable] == [("unreadable_table", "error")]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("garbage.bin", "garbage.bin: not a work4all export"),
        ("garbage.xlsx", "garbage.xlsx: not a readable .xlsx workbook"),
        ("garbage.db", "garbage.db: cannot read the database: file is not a database"),
        ("no-such-export", "no-such-export: no such file or directory"),
    ],
)
def test_a_garbage_export_is_rejected_with_a_message_naming_it(name: str, message: str) -> None:
    with pytest.raises(ExportError) as caught, open_export(CORPUS / name) as export:
        export.tables()
    assert str(caught.value).startswith(message.replace("no-such-export", str(CORPUS / name)))


def test_an_unquoted_delimiter_is_an_error_on_its_row_and_the_next_row_is_fine() -> None:
    findings = _findings(CORPUS / "unquoted_delimiter", "IndividualFields")
    [finding] = findings
    assert (finding.file, finding.row, finding.column) == ("IndividualFields.csv", 2, "Title")
    assert "delimiter inside an unquoted value" in finding.message
    with open_export(CORPUS / "unquoted_delimiter") as export:
        titles = [r.values["Title"] for r in Normaliser().records(export, "IndividualFields")]
    assert titles[1] == "Branche"


def test_an_empty_file_is_rejected_at_row_one_and_the_others_are_read() -> None:
    with open_export(CORPUS / "empty_file") as export:
        with pytest.raises(ExportError, match=r"^Kunden\.csv, row 1: empty file"):
            list(export.rows("Kunden"))
        assert len(list(export.rows("Mitarbeiter"))) == 1


def test_an_export_error_names_file_row_and_column() -> None:
    error = ExportError("Kunden.csv", "unreadable", row=12, column="Straße")
    assert str(error) == "Kunden.csv, row 12, column 'Straße': unreadable"
    assert (error.file, error.row, error.column, error.message) == (
        "Kunden.csv",
        12,
        "Straße",
        "unreadable",
    )
