"""The export specification sent to the work4all vendor: what crmledger needs, in which forms.

Everything in it comes from :data:`producers.work4all.tables.TABLES`, so the document never
drifts from what the readers and the normaliser actually read. It lists every table and column
with its SQL Server type, its key or link, whether crmledger cannot do without it, and whether
the column is still to be confirmed against a real schema; then the custom-field tables and the
three export forms crmledger accepts. :func:`render_markdown` is the document for people,
:func:`spec_document` (and :func:`render_json`) the same content as data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from producers.work4all.tables import TABLES, Column, Kind, Table

_CUSTOM_COLUMN = re.compile(r"Feld\d+")

ACCEPTED_FORMS: tuple[dict[str, str], ...] = (
    {
        "form": "sql",
        "name": "Database copy",
        "how": (
            "A backup (.bak) of the Mandant's SQL Server database, restored by us and read "
            "through a SQLAlchemy URL (mssql+pyodbc://user:password@host/db?driver=ODBC+Driver"
            "+18+for+SQL+Server), or direct read access to such a database. Any database "
            "SQLAlchemy reads works the same way (PostgreSQL, a SQLite file)."
        ),
        "names": "Table and column names exactly as in the work4all schema.",
    },
    {
        "form": "csv",
        "name": "CSV files",
        "how": (
            "One file per table named <Table>.csv (Kunden.csv, Mehrwertsteuersätze.csv; "
            "transliterated names such as Mehrwertsteuersaetze.csv are accepted too). Encoding "
            "Windows-1252 (cp1252), delimiter ';', fields containing ';', quotes or line breaks "
            "quoted with '\"', first line the column names. Numbers with decimal comma and "
            "optional thousands dot (1.234,56); dates dd.mm.yyyy, times dd.mm.yyyy hh:mm:ss; "
            "empty field for NULL; flags -1/0."
        ),
        "names": "Header line holds the database column names, not UI labels.",
    },
    {
        "form": "xlsx",
        "name": "Excel workbook",
        "how": (
            "One .xlsx workbook with one sheet per table, named like the table; row 1 the column "
            "names, one record per row from row 2. Numbers and dates as native cell values "
            "(text-formatted German numbers and dates are accepted too)."
        ),
        "names": "Sheet names are table names; row 1 holds the database column names.",
    },
)
"""The export forms crmledger reads, as the specification describes them."""


def column_type(column: Column) -> str:
    """Return the SQL Server type of ``column`` as the work4all schema declares it."""
    match column.kind:
        case Kind.CODE | Kind.INT:
            return "int"
        case Kind.BOOL:
            return "bit (1 = true)" if column.bit else "int (-1 = true, 0 = false)"
        case Kind.TEXT:
            return "ntext" if column.max_length is None else f"nvarchar({column.max_length})"
        case Kind.MONEY:
            return "float (amount, EUR)"
        case Kind.FLOAT:
            return "float"
        case Kind.DATETIME:
            return "datetime"


def column_key(table: Table, column: Column) -> str:
    """Return how ``column`` links: ``PK``, ``FK → Kunden.Code`` or the polymorphic targets."""
    if column.name == table.key:
        return "PK"
    if column.references is not None:
        target = TABLES[column.references]
        return f"FK → {target.name}.{target.key}"
    for link in table.polymorphic:
        if link.member_column == column.name:
            targets = ", ".join(
                f"{TABLES[name].name}.{TABLES[name].key} if {link.type_column} = {value}"
                for value, name in link.targets
            )
            return f"FK → {targets}"
    return ""


def _custom_columns(table: Table) -> list[str]:
    return [column.name for column in table.columns if _CUSTOM_COLUMN.fullmatch(column.name)]


def spec_document() -> dict[str, Any]:
    """Return the specification as JSON-ready data: forms, tables with columns, custom fields."""
    return {
        "title": "work4all export specification for crmledger",
        "forms": [dict(form) for form in ACCEPTED_FORMS],
        "conventions": [
            "Export every row of each table, including inactive, blocked and deleted-flagged rows.",
            "Keep keys as stored (random int Code values); 0 and NULL both mean 'no reference'.",
            "Keep flags as stored: -1 (or 1 in bit columns) is true, 0 is false.",
            "Further columns are welcome and ignored; the columns listed here must be present.",
        ],
        "tables": [
            {
                "name": table.name,
                "key": table.key,
                "description": table.doc,
                "custom_field_columns": _custom_columns(table),
                "columns": [
                    {
                        "name": column.name,
                        "type": column_type(column),
                        "key": column_key(table, column),
                        "required": column.required,
                        "to_confirm": column.invented,
                    }
                    for column in table.columns
                ],
            }
            for table in TABLES.values()
        ],
        "custom_fields": {
            "definitions": "IndividualFields",
            "rule": (
                "IndividualFields (TableType, FieldNumber) labels the physical column "
                "<TableType>.Feld<FieldNumber>. Export IndividualFields in full, and on every "
                "listed table every Feld<N> column that IndividualFields defines for it, "
                "including fields not listed here."
            ),
            "tables": {
                table.name: _custom_columns(table)
                for table in TABLES.values()
                if _custom_columns(table)
            },
        },
    }


def render_json() -> str:
    """Return the specification as indented JSON (non-ASCII names kept as they are)."""
    return json.dumps(spec_document(), ensure_ascii=False, indent=2) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """Return the specification as a Markdown document for the vendor."""
    document = spec_document()
    lines = [
        f"# {document['title']}",
        "",
        "crmledger migrates a work4all Mandant to Microsoft Dynamics 365 Sales. Please export the "
        f"{len(document['tables'])} tables below with at least the listed columns, in one of the "
        "accepted forms.",
        "",
        "## Accepted forms",
        "",
    ]
    for form in document["forms"]:
        lines += [f"- **{form['name']}** (`{form['form']}`): {form['how']} {form['names']}"]
    lines += ["", "## Conventions", ""]
    lines += [f"- {rule}" for rule in document["conventions"]]
    lines += [
        "",
        "## Tables",
        "",
        "*Required*: crmledger cannot migrate the table without this column. *To confirm*: the "
        "column is assumed, not yet seen in a real schema; please send the actual column if it "
        "is named differently.",
    ]
    for table in document["tables"]:
        lines += ["", f"### {table['name']}", ""]
        if table["description"]:
            lines += [table["description"], ""]
        lines += [
            "| Column | Type | Key | Required | To confirm |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(column['name'])} | {column['type']} | {_cell(column['key'])} | "
            f"{'yes' if column['required'] else ''} | {'yes' if column['to_confirm'] else ''} |"
            for column in table["columns"]
        ]
    custom = document["custom_fields"]
    lines += ["", "## Custom fields", "", custom["rule"], ""]
    lines += [f"- {name}: {', '.join(columns)}" for name, columns in custom["tables"].items()]
    return "\n".join(lines) + "\n"


def write_spec(out: Path | None) -> str:
    """Render the specification (JSON when ``out`` ends in ``.json``), write it to ``out``.

    Returns the rendered text; with ``out`` None nothing is written.
    """
    as_json = out is not None and out.suffix.casefold() == ".json"
    text = render_json() if as_json else render_markdown()
    if out is not None:
        out.write_text(text, encoding="utf-8")
    return text
