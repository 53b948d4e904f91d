"""The export specification names every table and column crmledger reads, in both renderings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from producers.export_spec import (
    column_key,
    column_type,
    render_markdown,
    spec_document,
    write_spec,
)
from producers.work4all.tables import TABLES


def test_every_table_and_column_of_the_specification_is_listed_in_order() -> None:
    tables = spec_document()["tables"]
    assert [table["name"] for table in tables] == list(TABLES)
    for table in tables:
        assert [c["name"] for c in table["columns"]] == list(TABLES[table["name"]].column_names)


def test_required_columns_and_columns_to_confirm_are_flagged() -> None:
    kunden = next(t for t in spec_document()["tables"] if t["name"] == "Kunden")
    by_name = {column["name"]: column for column in kunden["columns"]}
    assert by_name["Firma1"]["required"] is True
    assert by_name["Firma2"]["required"] is False
    preise = next(t for t in spec_document()["tables"] if t["name"] == "Preise")
    assert all(column["to_confirm"] for column in preise["columns"])


def test_columns_carry_their_sql_server_type() -> None:
    kunden, artikel = TABLES["Kunden"], TABLES["Artikel"]
    assert column_type(kunden.column("Name")) == "nvarchar(160)"
    assert column_type(kunden.column("Notiz")) == "ntext"
    assert column_type(kunden.column("Gesperrt")) == "int (-1 = true, 0 = false)"
    assert column_type(artikel.column("Feld1")) == "bit (1 = true)"
    assert column_type(artikel.column("Nettopreis")) == "float (amount, EUR)"
    assert column_type(kunden.column("Erstkontakt")) == "datetime"


def test_keys_links_and_polymorphic_links_are_named() -> None:
    assert column_key(TABLES["Kunden"], TABLES["Kunden"].column("Code")) == "PK"
    contact = TABLES["KAnsprechp"]
    assert column_key(contact, contact.column("KundenCode")) == "FK → Kunden.Code"
    tasks = TABLES["Whattodos"]
    assert column_key(tasks, tasks.column("SDObjMemberCode")) == (
        "FK → Kunden.Code if SDObjType = 1, Lieferanten.Code if SDObjType = 0"
    )
    assert column_key(tasks, tasks.column("Titel")) == ""


def test_custom_field_tables_and_their_definitions_are_specified() -> None:
    custom = spec_document()["custom_fields"]
    assert custom["definitions"] == "IndividualFields"
    assert custom["tables"]["Kunden"] == ["Feld1", "Feld2", "Feld3", "Feld4"]
    assert custom["tables"]["Artikel"] == ["Feld1"]
    markdown = render_markdown()
    assert "### IndividualFields" in markdown
    assert "- Kunden: Feld1, Feld2, Feld3, Feld4" in markdown


def test_the_markdown_names_the_three_accepted_forms_and_the_csv_conventions() -> None:
    markdown = render_markdown()
    assert "mssql+pyodbc://" in markdown
    assert "Windows-1252 (cp1252), delimiter ';'" in markdown
    assert "decimal comma" in markdown
    assert "dd.mm.yyyy" in markdown
    assert "one sheet per table" in markdown
    assert "| Code | int | PK | yes |  |" in markdown


def test_a_json_suffix_writes_json_and_any_other_writes_markdown(tmp_path: Path) -> None:
    write_spec(tmp_path / "spec.json")
    write_spec(tmp_path / "spec.md")
    assert json.loads((tmp_path / "spec.json").read_text(encoding="utf-8")) == spec_document()
    assert (tmp_path / "spec.md").read_text(encoding="utf-8") == render_markdown()


def test_the_cli_prints_markdown_or_writes_the_file(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "ledger", "export-spec"], capture_output=True, text=True, check=True
    )
    assert printed.stdout == render_markdown()
    out = tmp_path / "spec.json"
    subprocess.run([sys.executable, "-m", "ledger", "export-spec", "--out", str(out)], check=True)
    assert json.loads(out.read_text(encoding="utf-8"))["tables"][0]["name"] == "Mitarbeiter"
