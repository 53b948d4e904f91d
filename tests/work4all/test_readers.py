"""The readers: one small hand-made export, written in every form, reads back to the same records.

``ExportContract`` is the contract every backend meets; it is subclassed once per form (CSV in
Windows-1252 and in UTF-8 with BOM, xlsx, SQLite, PostgreSQL).
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import openpyxl
import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    insert,
)
from typer.testing import CliRunner

from ledger.cli import app
from producers.work4all.csv_reader import CsvExport
from producers.work4all.errors import ExportError
from producers.work4all.normalise import Normaliser, SourceRecord
from producers.work4all.readers import Export, open_export
from producers.work4all.sql_reader import SqlExport
from producers.work4all.xlsx_reader import XlsxExport

_COMBO = "Akt vorhanden;;;0```Ja;;;1```Nein;;;2```Noch anlegen;;;"
_NOTE = 'Zahlt; pünktlich\n"gern" ab 5 €'

# table → (columns with their SQL type, rows in key order)
DATA: dict[str, tuple[list[tuple[str, Any]], list[tuple[Any, ...]]]] = {
    "Kunden": (
        [
            ("Code", Integer),
            ("Nummer", Integer),
            ("Name", Text),
            ("Firma1", Text),
            ("Straße", Text),
            ("Staat", Text),
            ("Plz", Text),
            ("Ort", Text),
            ("E-Mail", Text),
            ("Kreditlimit", Float),
            ("Gesperrt", Integer),
            ("KAnsprechpCode", Integer),
            ("Erstkontakt", DateTime),
            ("Notiz", Text),
            ("Feld1", Text),
        ],
        [
            (
                17,
                10001,
                "Müller Haustechnik GmbH, Amberg",
                "Müller Haustechnik GmbH",
                "Bahnhofstraße 12a",
                "D",
                "01067",
                "Dresden",
                "info@mueller.de",
                5000.0,
                -1,
                550247937,
                datetime(2021, 11, 17, 9, 3, 22),
                _NOTE,
                "1",
            ),
            (
                1139123046,
                10482,
                "Öztürk & Söhne | Wien",
                "Öztürk & Söhne",
                "Ring 1",
                "A",
                "1010",
                "Wien",
                "",
                1234.56,
                0,
                0,
                None,
                None,
                "2",
            ),
            (
                1549107844,
                10483,
                "Groß AG",
                "Groß AG",
                None,
                "CH",
                "8001",
                "Zürich",
                None,
                48.7400016784668,
                0,
                None,
                datetime(2024, 4, 30),
                "",
                None,
            ),
        ],
    ),
    "KAnsprechp": (
        [
            ("KAnsprechpCode", Integer),
            ("KundenCode", Integer),
            ("Vorname", Text),
            ("Name", Text),
            ("E-Mail", Text),
            ("Entlassen", Integer),
        ],
        [(550247937, 17, "Petra", "Schmidt-Öztürk", "p.schmidt@mueller.de", 0)],
    ),
    "IndividualFields": (
        [
            ("Code", Integer),
            ("Control", Text),
            ("FieldNumber", Integer),
            ("TableType", Text),
            ("Title", Text),
        ],
        [(1032893, "Combo", 1, "Kunden", _COMBO)],
    ),
}

EXPECTED_KUNDEN = [
    {
        "Code": 17,
        "Nummer": 10001,
        "Name": "Müller Haustechnik GmbH, Amberg",
        "Firma1": "Müller Haustechnik GmbH",
        "Straße": "Bahnhofstraße 12a",
        "Staat": "DE",
        "Plz": "01067",
        "Ort": "Dresden",
        "E-Mail": "info@mueller.de",
        "Kreditlimit": Decimal("5000.00"),
        "Gesperrt": True,
        "KAnsprechpCode": 550247937,
        "Erstkontakt": datetime(2021, 11, 17, 9, 3, 22),
        "Notiz": _NOTE,
        "Feld1": "1",
    },
    {
        "Code": 1139123046,
        "Nummer": 10482,
        "Name": "Öztürk & Söhne | Wien",
        "Firma1": "Öztürk & Söhne",
        "Straße": "Ring 1",
        "Staat": "AT",
        "Plz": "1010",
        "Ort": "Wien",
        "E-Mail": None,
        "Kreditlimit": Decimal("1234.56"),
        "Gesperrt": False,
        "KAnsprechpCode": None,
        "Erstkontakt": None,
        "Notiz": None,
        "Feld1": "2",
    },
    {
        "Code": 1549107844,
        "Nummer": 10483,
        "Name": "Groß AG",
        "Firma1": "Groß AG",
        "Straße": None,
        "Staat": "CH",
        "Plz": "8001",
        "Ort": "Zürich",
        "E-Mail": None,
        "Kreditlimit": Decimal("48.74"),
        "Gesperrt": False,
        "KAnsprechpCode": None,
        "Erstkontakt": datetime(2024, 4, 30),
        "Notiz": None,
        "Feld1": None,
    },
]


def _german(value: Any, kind: Any) -> str:
    """Write a value the way a German Excel CSV holds it."""
    if value is None:
        return ""
    if kind is Float:
        return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    if isinstance(value, datetime):
        return value.strftime(
            "%d.%m.%Y" if value.time() == datetime.min.time() else "%d.%m.%Y %H:%M:%S"
        )
    return str(value)


def write_csv(directory: Path, encoding: str = "cp1252", delimiter: str = ";") -> Path:
    """Write DATA as one German CSV file per table."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, (columns, rows) in DATA.items():
        with (directory / f"{table}.csv").open("w", encoding=encoding, newline="") as file:
            writer = csv.writer(file, delimiter=delimiter, lineterminator="\r\n")
            writer.writerow(name for name, _ in columns)
            for row in rows:
                writer.writerow(_german(v, k) for v, (_, k) in zip(row, columns, strict=True))
    return directory


def write_xlsx(path: Path) -> Path:
    """Write DATA as one workbook with a sheet per table."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for table, (columns, rows) in DATA.items():
        sheet = book.create_sheet(table)
        sheet.append([name for name, _ in columns])
        for row in rows:
            sheet.append(list(row))
    book.save(path)
    return path


def write_sql(url: str) -> str:
    """Create DATA's tables with typed columns in the database at ``url``."""
    engine = create_engine(url)
    metadata = MetaData()
    tables = {
        name: Table(
            name,
            metadata,
            *(Column(column, kind, primary_key=i == 0) for i, (column, kind) in enumerate(cols)),
        )
        for name, (cols, _) in DATA.items()
    }
    metadata.create_all(engine)
    with engine.begin() as connection:
        for name, (cols, rows) in DATA.items():
            names = [column for column, _ in cols]
            # Reverse order, so that the reader's key order is what puts them right.
            for row in reversed(rows):
                connection.execute(insert(tables[name]).values(dict(zip(names, row, strict=True))))
    engine.dispose()
    return url


class ExportContract:
    """What every reader must do with the same small export."""

    kind: ClassVar[type[Export]]
    kunden_positions: ClassVar[list[int]]

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        """The export under test; every subclass writes DATA in its form and opens it."""
        raise AssertionError("a reader test class must override the export fixture")

    def _records(self, export: Export, table: str) -> list[SourceRecord]:
        normaliser = Normaliser.for_export(export)
        return list(normaliser.records(export, table))

    def test_open_export_chooses_this_reader(self, export: Export) -> None:
        assert isinstance(open_export(export.location), self.kind)

    def test_it_lists_every_table(self, export: Export) -> None:
        assert sorted(export.tables()) == sorted(DATA)

    def test_column_names_keep_umlauts_and_hyphens(self, export: Export) -> None:
        assert export.columns("Kunden") == [name for name, _ in DATA["Kunden"][0]]

    def test_rows_carry_their_position_in_the_source(self, export: Export) -> None:
        assert [row.position for row in export.rows("Kunden")] == self.kunden_positions

    def test_customers_normalise_to_the_canonical_values(self, export: Export) -> None:
        records = self._records(export, "Kunden")
        assert [record.values for record in records] == EXPECTED_KUNDEN
        assert [record.key for record in records] == [17, 1139123046, 1549107844]
        assert all(record.findings == () for record in records)

    def test_custom_fields_are_labelled_from_individual_fields(self, export: Export) -> None:
        records = self._records(export, "Kunden")
        assert [record.custom["Feld1"].value for record in records] == [
            "Nein",
            "Noch anlegen",
            None,
        ]
        assert {record.custom["Feld1"].label for record in records} == {"Akt vorhanden"}

    def test_contacts_link_to_their_customer(self, export: Export) -> None:
        [contact] = self._records(export, "KAnsprechp")
        assert contact.key == 550247937
        assert contact.values["KundenCode"] == 17
        assert contact.values["Entlassen"] is False

    def test_a_table_is_found_by_a_transliterated_name(self, export: Export) -> None:
        assert export.find_table("individualfields") == "IndividualFields"
        assert export.find_table("Lieferanten") is None

    def test_reading_a_missing_table_names_it(self, export: Export) -> None:
        with pytest.raises(ExportError, match="Lieferanten"):
            list(export.rows("Lieferanten"))


class TestCsvInWindows1252WithSemicolons(ExportContract):
    kind = CsvExport
    kunden_positions: ClassVar[list[int]] = [2, 4, 5]  # the first note spans two lines

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        with open_export(write_csv(tmp_path / "csv")) as export:
            yield export


class TestCsvInUtf8WithBomAndCommas(ExportContract):
    kind = CsvExport
    kunden_positions: ClassVar[list[int]] = [2, 4, 5]

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        with open_export(write_csv(tmp_path / "csv", "utf-8-sig", ",")) as export:
            yield export


class TestCsvInUtf16(ExportContract):
    kind = CsvExport
    kunden_positions: ClassVar[list[int]] = [2, 4, 5]

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        with open_export(write_csv(tmp_path / "csv", "utf-16", "\t")) as export:
            yield export


class TestXlsx(ExportContract):
    kind = XlsxExport
    kunden_positions: ClassVar[list[int]] = [2, 3, 4]

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        with open_export(write_xlsx(tmp_path / "export.xlsx")) as export:
            yield export


class TestSqlite(ExportContract):
    kind = SqlExport
    kunden_positions: ClassVar[list[int]] = [1, 2, 3]

    @pytest.fixture
    def export(self, tmp_path: Path) -> Iterator[Export]:
        write_sql(f"sqlite:///{tmp_path / 'work4all.db'}")
        with open_export(tmp_path / "work4all.db") as export:
            yield export

    def test_a_sqlite_file_is_opened_read_only(self, export: Export, tmp_path: Path) -> None:
        before = (tmp_path / "work4all.db").read_bytes()
        list(export.rows("Kunden"))
        assert (tmp_path / "work4all.db").read_bytes() == before

    def test_a_sqlalchemy_sqlite_url_works_too(self, tmp_path: Path, export: Export) -> None:
        with open_export(f"sqlite:///{tmp_path / 'work4all.db'}") as by_url:
            assert [row.raw for row in by_url.rows("Kunden")] == [
                row.raw for row in export.rows("Kunden")
            ]


@pytest.mark.postgres
class TestPostgres(ExportContract):
    kind = SqlExport
    kunden_positions: ClassVar[list[int]] = [1, 2, 3]

    @pytest.fixture
    def export(self, postgres_db_url: str) -> Iterator[Export]:
        with open_export(write_sql(postgres_db_url)) as export:
            yield export

    def test_rows_come_through_a_server_side_cursor(self, export: Export) -> None:
        rows = export.rows("Kunden")
        assert next(rows).raw["Code"] == 17
        rows.close()


def test_a_database_password_never_shows_in_messages() -> None:
    export = SqlExport("postgresql+psycopg://crm:geheim@db.example/WorkM001")
    assert "geheim" not in export.source("Kunden")
    assert export.source("Kunden").endswith("/WorkM001[Kunden]")


def test_a_file_mixing_windows_1252_and_utf8_rows_is_read_with_the_odd_row_flagged(
    tmp_path: Path,
) -> None:
    lines = [
        b"Code;Name;Ort",
        "1;Müller;Köln".encode("cp1252"),
        "2;Schäfer;Bückeburg".encode(),  # pasted from a UTF-8 source
        "3;Weiß;Gießen".encode("cp1252"),
    ]
    (tmp_path / "Kunden.csv").write_bytes(b"\r\n".join(lines) + b"\r\n")
    rows = list(open_export(tmp_path).rows("Kunden"))
    assert [row.raw["Name"] for row in rows] == ["Müller", "Schäfer", "Weiß"]
    assert [row.findings for row in rows[::2]] == [(), ()]
    assert {(f.file, f.row, f.column, f.kind) for f in rows[1].findings} == {
        ("Kunden.csv", 3, "Name", "encoding"),
        ("Kunden.csv", 3, "Ort", "encoding"),
    }


def test_a_windows_1252_file_whose_first_lines_are_ascii_is_not_flagged(tmp_path: Path) -> None:
    body = "Code;Name\r\n" + "".join(f"{i};Firma {i}\r\n" for i in range(1, 5000))
    body += "5000;Müller\r\n"
    (tmp_path / "Kunden.csv").write_bytes(body.encode("cp1252"))
    rows = list(open_export(tmp_path).rows("Kunden"))
    assert rows[-1].raw["Name"] == "Müller"
    assert all(not row.findings for row in rows)


def test_quoted_delimiters_quotes_and_line_breaks_survive(tmp_path: Path) -> None:
    text = 'Code;Title\r\n1;"Akt vorhanden;;;0```Ja;;;1"\r\n2;"a ""b""\r\nc"\r\n3;x\r\n'
    (tmp_path / "IndividualFields.csv").write_bytes(text.encode("cp1252"))
    rows = list(open_export(tmp_path).rows("IndividualFields"))
    assert [(row.position, row.raw["Title"]) for row in rows] == [
        (2, "Akt vorhanden;;;0```Ja;;;1"),
        (3, 'a "b"\r\nc'),
        (5, "x"),
    ]


def test_a_single_csv_file_is_an_export_of_one_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "csv") / "Kunden.csv"
    with open_export(path) as export:
        assert export.tables() == ["Kunden"]


def test_a_large_csv_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    body = "Code;Name;Ort\r\n" + "".join(f"{i};Firma {i};Köln\r\n" for i in range(1, 100_001))
    (tmp_path / "Kunden.csv").write_bytes(body.encode("cp1252"))
    export = open_export(tmp_path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in export.rows("Kunden"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 1_000_000  # the file's text alone is 2.4 MB


def test_a_large_sqlite_table_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'work4all.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            'CREATE TABLE "Kunden" ("Code" INTEGER PRIMARY KEY, "Name" TEXT)'
        )
        connection.exec_driver_sql(
            'INSERT INTO "Kunden" VALUES (?, ?)', [(i, f"Firma {i} " * 5) for i in range(1, 60_001)]
        )
    engine.dispose()
    export = open_export(tmp_path / "work4all.db")
    tracemalloc.start()
    try:
        count = sum(1 for _ in export.rows("Kunden"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 60_000
    assert peak < 5_000_000  # the table's text alone is 18 MB


def _generate(out: Path, form: str, defects: str) -> Path:
    result = CliRunner().invoke(
        app,
        [
            *("generate", "--out", str(out), "--customers", "60", "--format", form),
            *("--seed", "7", "--defects", defects, "--quiet"),
        ],
    )
    assert result.exit_code == 0, result.output
    return {"sql": out / "work4all.db", "csv": out, "xlsx": out / "work4all.xlsx"}[form]


def _format_specific_cells(manifest: Path) -> set[tuple[str, int, str]]:
    """Return the cells the generator's manifest marks as showing differently per form."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return {
        (entry["table"], entry["Code"], entry["column"])
        for defect in data.get("form_notes", {})
        for entry in data["defects"][defect]
    }


def _canonical(location: Path, excluded: set[tuple[str, int, str]]) -> dict[str, list[str]]:
    """Return every table's canonical records as sorted, type-revealing text."""
    tables: dict[str, list[str]] = {}
    with open_export(location) as export:
        normaliser = Normaliser.for_export(export)
        for table in export.tables():
            records = []
            for record in normaliser.records(export, table):
                values = {
                    column: value
                    for column, value in record.values.items()
                    if (record.table, record.key, column) not in excluded
                }
                custom = {column: field.value for column, field in record.custom.items()}
                records.append(repr((record.key, sorted(values.items()), sorted(custom.items()))))
            tables[table] = sorted(records)
    return tables


@pytest.mark.parametrize("defects", ["none", "default"])
def test_one_seed_generated_as_sql_csv_and_xlsx_reads_back_to_identical_records(
    tmp_path: Path, defects: str
) -> None:
    locations = {form: _generate(tmp_path / form, form, defects) for form in ("sql", "csv", "xlsx")}
    excluded = set().union(
        *(_format_specific_cells(tmp_path / form / "manifest.json") for form in locations)
    )
    assert excluded if defects == "default" else not excluded
    canonical = {form: _canonical(location, excluded) for form, location in locations.items()}
    assert canonical["sql"].keys() == canonical["csv"].keys() == canonical["xlsx"].keys()
    assert sum(len(records) for records in canonical["sql"].values()) > 500
    for table, records in canonical["sql"].items():
        assert canonical["csv"][table] == records, table
        assert canonical["xlsx"][table] == records, table
