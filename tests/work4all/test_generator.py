"""Specification of ``crmledger generate``: the synthetic work4all Mandant."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from ledger.cli import app
from producers.work4all.defects import Defect
from producers.work4all.gen_data import iban_is_valid
from producers.work4all.generator import RATIOS
from producers.work4all.tables import TABLES

runner = CliRunner()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_HIGH_RATES = {defect.value: 0.15 for defect in Defect}


def _generate(out: Path, customers: int, form: str, defects: str = "none", seed: int = 7) -> Path:
    result = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(out),
            "--customers",
            str(customers),
            "--format",
            form,
            "--seed",
            str(seed),
            "--defects",
            defects,
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def _rows(db: Path, table: str) -> list[dict[str, Any]]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(f'SELECT * FROM "{table}"')]
    finally:
        connection.close()


def _manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def clean_sql(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("clean"), 400, "sql")


@pytest.fixture(scope="module")
def rates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rates") / "rates.json"
    path.write_text(json.dumps(_HIGH_RATES), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def defective_sql(tmp_path_factory: pytest.TempPathFactory, rates_file: Path) -> Path:
    return _generate(tmp_path_factory.mktemp("defective"), 400, "sql", str(rates_file))


@pytest.fixture(scope="module")
def defective_csv(tmp_path_factory: pytest.TempPathFactory, rates_file: Path) -> Path:
    return _generate(tmp_path_factory.mktemp("defective_csv"), 200, "csv", str(rates_file))


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="cp1252", newline="") as handle:
        yield from csv.DictReader(handle, delimiter=";")


@pytest.mark.parametrize("form", ["sql", "csv", "xlsx"])
def test_same_seed_gives_identical_files(tmp_path: Path, form: str) -> None:
    first = _digest(_generate(tmp_path / "a", 60, form, "default"))
    second = _digest(_generate(tmp_path / "b", 60, form, "default"))
    assert first == second
    other = _digest(_generate(tmp_path / "c", 60, form, "default", seed=8))
    assert other != first


def test_volumes_follow_the_reference_ratios(tmp_path: Path) -> None:
    db = _generate(tmp_path, 2000, "sql") / "work4all.db"
    connection = sqlite3.connect(db)
    count = {
        name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in TABLES
    }
    connection.close()
    assert count["Kunden"] == 2000
    for table, ratio in RATIOS.items():
        if ratio >= 0.04:
            assert count[table] / 2000 == pytest.approx(ratio, rel=0.35), table
    documents = count["Angebot"] + count["Rechnung"]
    assert count["Positionen"] / documents == pytest.approx(14, rel=0.1)
    assert count["RA"] == count["Rechnung"]
    assert count["RABezSumme"] / count["RA"] == pytest.approx(1.15, rel=0.15)
    assert count["Mitarbeiter"] >= 8
    assert count["IndividualFields"] >= 4
    assert count["TelefonateAnhang"] > 0
    assert len(list((tmp_path / "CRMAttachements" / "M001").iterdir())) == count["TelefonateAnhang"]


def test_every_link_resolves_when_defects_are_off(clean_sql: Path) -> None:
    db = clean_sql / "work4all.db"
    keys = {name: {row[t.key] for row in _rows(db, name)} for name, t in TABLES.items()}
    for name, table in TABLES.items():
        rows = _rows(db, name)
        for column in table.columns:
            if column.references:
                dangling = [
                    r[column.name]
                    for r in rows
                    if r[column.name] not in (0, None)
                    and r[column.name] not in keys[column.references]
                ]
                assert not dangling, f"{name}.{column.name}: {dangling[:3]}"
        for link in table.polymorphic:
            for r in rows:
                member = r[link.member_column]
                target = link.target(r[link.type_column])
                if member not in (0, None):
                    assert target is not None, f"{name}.{link.member_column} untyped"
                    assert member in keys[target], f"{name}.{link.member_column} → {target}"


def test_no_defect_is_listed_or_visible_when_defects_are_off(clean_sql: Path) -> None:
    db = clean_sql / "work4all.db"
    assert not any(_manifest(clean_sql)["defects"].values())
    users = _rows(db, "Mitarbeiter")
    assert all(u["Ausgeschieden"] == 0 for u in users)
    for row in _rows(db, "Kunden"):
        assert row["VertreterCode"]
        assert row["PersonErstkontakt"]
        assert "Ã" not in row["Straße"]
        assert len(row["Firma1"]) <= 100
        assert not row["E-Mail"] or _EMAIL.match(row["E-Mail"])
    payments: dict[int, float] = {}
    for payment in _rows(db, "RABezSumme"):
        payments[payment["RACode"]] = payments.get(payment["RACode"], 0.0) + payment["Summe"]
    for item in _rows(db, "RA"):
        assert round(item["BezSumme"], 2) == round(payments.get(item["Code"], 0.0), 2)
    for position in _rows(db, "Positionen"):
        assert position["EKPreis"] == round(position["EKPreis"], 2)


def test_every_defect_class_is_listed_and_visible(defective_sql: Path, defective_csv: Path) -> None:
    db = defective_sql / "work4all.db"
    manifest = _manifest(defective_sql)["defects"]
    tables = {name: {row[t.key]: row for row in _rows(db, name)} for name, t in TABLES.items()}
    users = tables["Mitarbeiter"]
    for defect in Defect:
        entries = manifest[defect.value]
        cells = [(e["table"], e["Code"], e["column"]) for e in entries]
        assert len(cells) == len(set(cells)), f"{defect} lists a cell twice"
        if defect is Defect.TEXT_DATE:
            assert not entries  # a typed SQL column cannot hold a text date
            continue
        assert entries, defect
        for entry in entries:
            row = tables[entry["table"]][entry["Code"]]
            value = row[entry["column"]]
            column = TABLES[entry["table"]].column(entry["column"])
            match defect:
                case Defect.DUPLICATE_CUSTOMER:
                    twins = [
                        r for r in tables["Kunden"].values()
                        if r["Telefon"] == row["Telefon"] and r["Code"] != row["Code"]
                    ]  # fmt: skip
                    assert twins
                    assert twins[0]["Name"] != value
                case Defect.ORPHAN_CONTACT:
                    assert value not in tables["Kunden"]
                case Defect.OWNER_MISSING:
                    assert value in (0, None)
                    assert not row["PersonErstkontakt"]
                case Defect.OWNER_FREE_TEXT:
                    assert value in (0, None)
                    assert row["PersonErstkontakt"]
                case Defect.DEPARTED_OWNER:
                    assert users[value]["Ausgeschieden"] == -1
                case Defect.MIXED_ENCODING:
                    assert "Ã" in value
                case Defect.PLACEHOLDER_DATE:
                    assert str(value).startswith("0001-01-01")
                case Defect.FLOAT_NOISE:
                    assert value != round(value, 2)
                case Defect.PAYMENT_MISMATCH:
                    paid = sum(
                        p["Summe"]
                        for p in tables["RABezSumme"].values()
                        if p["RACode"] == row["Code"]
                    )
                    assert round(paid, 2) != round(value, 2)
                case Defect.OVERLONG_STRING:
                    assert len(value) > (column.max_length or 0)
                case Defect.INVALID_EMAIL:
                    assert not _EMAIL.match(value)
    csv_manifest = _manifest(defective_csv)
    assert csv_manifest["form_notes"]["text_date"]
    text_dates = csv_manifest["defects"]["text_date"]
    assert text_dates
    by_code = {(entry["table"], str(entry["Code"])): entry["column"] for entry in text_dates}
    seen = 0
    for table in ("Kunden", "Telefonate"):
        key = TABLES[table].key
        for row in _csv_rows(defective_csv / f"{table}.csv"):
            column = by_code.get((table, row[key]))
            if column:
                assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[column])
                seen += 1
    assert seen == len(text_dates)


def test_ibans_have_valid_check_digits(clean_sql: Path) -> None:
    db = clean_sql / "work4all.db"
    ibans = [r["IBAN"] for t in ("Kunden", "Lieferanten") for r in _rows(db, t) if r["IBAN"]]
    assert len(ibans) > 100
    assert all(re.fullmatch(r"DE\d{20}", i) for i in ibans)
    assert all(iban_is_valid(i) for i in ibans)
    vat_ids = [r["USTIDNR"] for r in _rows(db, "Kunden") if r["USTIDNR"]]
    assert vat_ids
    assert all(re.fullmatch(r"DE\d{9}", v) for v in vat_ids)


def test_csv_is_windows_1252_with_semicolons_and_german_formats(defective_csv: Path) -> None:
    raw = (defective_csv / "Kunden.csv").read_bytes()
    header = raw.split(b"\r\n", 1)[0]
    assert b";Stra\xdfe;" in header  # ß as one Windows-1252 byte
    assert set(path.stem for path in defective_csv.glob("*.csv")) == set(TABLES)
    rows = list(_csv_rows(defective_csv / "Kunden.csv"))
    limits = [r["Kreditlimit"] for r in rows if r["Kreditlimit"] not in ("", "0,00")]
    assert limits
    assert all(re.fullmatch(r"\d{1,3}(\.\d{3})*,\d\d", value) for value in limits)
    positions = list(_csv_rows(defective_csv / "Positionen.csv"))
    assert any("," in r["EinzPreis"] for r in positions)
    dates = [r["Datum"] for r in _csv_rows(defective_csv / "Rechnung.csv")]
    assert dates
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4}", value) for value in dates)
    assert any(r["Privatkunde"] == "-1" for r in rows)


def test_xlsx_has_one_sheet_per_table(tmp_path: Path) -> None:
    out = _generate(tmp_path, 40, "xlsx", "default")
    workbook = load_workbook(out / "work4all.xlsx", read_only=True)
    assert workbook.sheetnames == list(TABLES)
    sheet = workbook["Kunden"]
    header = next(sheet.iter_rows(max_row=1, values_only=True))
    assert list(header) == list(TABLES["Kunden"].column_names)
    assert sum(1 for _ in sheet.iter_rows(min_row=2)) >= 40
    workbook.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--customers", "0"], "--customers"),
        (["--customers", "5", "--defects", "nonexistent.toml"], "nonexistent.toml"),
        (["--customers", "5", "--format", "csv", "--out", "sqlite:///x.db"], "URL"),
    ],
)
def test_bad_arguments_fail_cleanly(tmp_path: Path, arguments: list[str], message: str) -> None:
    if "--out" not in arguments:
        arguments = [*arguments, "--out", str(tmp_path)]
    result = runner.invoke(app, ["generate", *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_out_that_is_a_file_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = runner.invoke(app, ["generate", "--out", str(target), "--customers", "5"])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_rates_file_with_unknown_class_fails_cleanly(tmp_path: Path) -> None:
    rates = tmp_path / "rates.toml"
    rates.write_text("no_such_defect = 0.1\n")
    result = runner.invoke(
        app, ["generate", "--out", str(tmp_path), "--customers", "5", "--defects", str(rates)]
    )
    assert result.exit_code == 2
    assert "unknown defect class" in result.output


def _as_sqlite(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite, which keeps datetimes as text."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


@pytest.mark.postgres
def test_a_postgresql_url_holds_the_same_records_as_sqlite(
    tmp_path: Path, postgres_db_url: str
) -> None:
    import sqlalchemy as sa

    files = tmp_path / "files"
    result = runner.invoke(
        app,
        ["generate", "--out", postgres_db_url, "--files", str(files), "--customers", "40",
         "--format", "sql", "--seed", "5", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sqlite_out = _generate(tmp_path / "sqlite", 40, "sql", "default", seed=5)
    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.connect() as connection:
            for name, table in TABLES.items():
                key = sa.column(table.key)
                rows = connection.execute(
                    sa.select(sa.text("*")).select_from(sa.table(name)).order_by(key)
                ).mappings()
                expected = sorted(
                    _rows(sqlite_out / "work4all.db", name), key=lambda r: r[table.key]
                )
                actual = [{k: _as_sqlite(v) for k, v in r.items()} for r in rows]
                assert actual == expected, name
    finally:
        engine.dispose()
    assert _manifest(files)["defects"] == _manifest(sqlite_out)["defects"]


def test_one_seed_gives_the_same_records_and_defects_in_every_form(tmp_path: Path) -> None:
    sql = _generate(tmp_path / "sql", 120, "sql", "default")
    csv_out = _generate(tmp_path / "csv", 120, "csv", "default")
    sql_defects, csv_defects = _manifest(sql)["defects"], _manifest(csv_out)["defects"]
    assert not sql_defects.pop(Defect.TEXT_DATE.value)
    assert csv_defects.pop(Defect.TEXT_DATE.value)
    assert sql_defects == csv_defects
    for name, table in TABLES.items():
        # an INTEGER PRIMARY KEY is SQLite's rowid, so SELECT * comes back in key order
        sql_keys = sorted(row[table.key] for row in _rows(sql / "work4all.db", name))
        csv_keys = sorted(int(row[table.key]) for row in _csv_rows(csv_out / f"{name}.csv"))
        assert sql_keys == csv_keys, name
    kunden = {row["Code"]: row for row in _rows(sql / "work4all.db", "Kunden")}
    for row in _csv_rows(csv_out / "Kunden.csv"):
        assert (row["Firma1"], row["Plz"]) == (
            kunden[int(row["Code"])]["Firma1"],
            kunden[int(row["Code"])]["Plz"],
        )
