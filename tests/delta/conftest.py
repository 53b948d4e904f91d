"""Two generations of one work4all export: the one migrated first, and a newer one.

The newer export is the first with about 1% of its records changed (``Ort`` of partners and
contacts), a few emptied (a customer's ``Telefon``, the customer a phone call is about), a few
deleted (records no other row refers to) and a few added (copies under new ``Code``s, with names
of their own so that no duplicate rule merges them).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from producers.work4all.cli import ExportForm, generate
from producers.work4all.tables import TABLES

CUSTOMERS = 60
CHANGED_COLUMNS = {
    "Kunden": "Ort",
    "KAnsprechp": "Ort",
    "Lieferanten": "Ort",
    "LAnsprechp": "Funktion",
}
"""The column the newer export changes, per table (partners and contacts: updatable rows)."""
DELETED = {"KAnsprechp": 1, "Telefonate": 2, "Whattodos": 1}
"""Records deleted from the newer export, per table: ones no other row refers to."""
EMPTIED = {
    "Kunden": ("Telefon", "Telefon IS NOT NULL AND TRIM(Telefon) <> ''", 3),
    "Telefonate": (
        "SDObjMemberCode",
        "SDObjType = 1 AND SDObjMemberCode IN (SELECT Code FROM Kunden)",
        2,
    ),
}
"""Records whose column the newer export empties, per table: (column, which rows, how many).
The phone calls are about a customer: their ``regardingobjectid`` lookup is cleared."""


@dataclass
class Edits:
    """What the newer export changed, per table: source keys."""

    changed: dict[str, list[int]] = field(default_factory=dict)
    """every changed record, the emptied ones included."""
    emptied: dict[str, list[int]] = field(default_factory=dict)
    deleted: dict[str, list[int]] = field(default_factory=dict)
    added: dict[str, list[int]] = field(default_factory=dict)
    records: int = 0
    """records in the first export."""

    def count(self, what: str) -> int:
        """Records changed, deleted or added."""
        return sum(len(keys) for keys in getattr(self, what).values())


@dataclass(frozen=True)
class Generations:
    """The first export, the newer one, and what differs between them."""

    first: Path
    newer: Path
    edits: Edits


def _key(table: str) -> str:
    return TABLES[table].key


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _referenced(db: sqlite3.Connection, table: str, code: int) -> bool:
    """Whether any other row holds ``code`` in any column (Codes are random 31-bit ints)."""
    for (other,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({_quoted(other)})")]
        for column in columns:
            if other == table and column == _key(table):
                continue
            found = db.execute(
                f"SELECT 1 FROM {_quoted(other)} WHERE {_quoted(column)} = ? LIMIT 1", (code,)
            ).fetchone()
            if found:
                return True
    return False


def _new_code(db: sqlite3.Connection, rng: random.Random) -> int:
    while True:
        code = rng.randint(1_000_000, 2_147_483_647)
        if not _referenced(db, "", code):
            return code


def make_newer(first: Path, newer: Path, seed: int = 7) -> Edits:
    """Copy ``first`` to ``newer`` and edit it: ~1% changed, a few deleted, a few added."""
    shutil.copyfile(first, newer)
    rng = random.Random(seed)
    edits = Edits()
    with sqlite3.connect(newer) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        edits.records = sum(
            db.execute(f"SELECT COUNT(*) FROM {_quoted(t)}").fetchone()[0] for t in tables
        )
        # added: one customer with a contact of its own, and a contact of an existing customer
        kunde = db.execute("SELECT * FROM Kunden WHERE Firma1 IS NOT NULL LIMIT 1").fetchone()
        columns = [row[1] for row in db.execute("PRAGMA table_info(Kunden)")]
        new_customer = _new_code(db, rng)
        values = dict(zip(columns, kunde, strict=True))
        values.update(
            Code=new_customer, Nummer=990001, Firma1="Neukunde Delta GmbH", Firma2=None,
            Plz="99999", KAnsprechpCode=0, AdresseWirdGepflegtBeiLieferantCode=0,
        )  # fmt: skip
        _insert(db, "Kunden", values)
        edits.added["Kunden"] = [new_customer]
        contact_columns = [row[1] for row in db.execute("PRAGMA table_info(KAnsprechp)")]
        contact = db.execute("SELECT * FROM KAnsprechp LIMIT 1").fetchone()
        edits.added["KAnsprechp"] = []
        for parent, name in (
            (new_customer, "Neumann"),
            (values_of(contact, contact_columns)["KundenCode"], "Delta"),
        ):
            code = _new_code(db, rng)
            row = dict(zip(contact_columns, contact, strict=True))
            row.update(KAnsprechpCode=code, KundenCode=parent, Name=name, Vorname="Dora")
            _insert(db, "KAnsprechp", row)
            edits.added["KAnsprechp"].append(code)
        # deleted: records nothing refers to
        for table, how_many in DELETED.items():
            key = _key(table)
            codes = [
                row[0]
                for row in db.execute(
                    f"SELECT {_quoted(key)} FROM {_quoted(table)} ORDER BY {_quoted(key)}"
                )
            ]
            rng.shuffle(codes)
            chosen = [
                c
                for c in codes
                if c not in edits.added.get(table, []) and not _referenced(db, table, c)
            ][:how_many]
            for code in chosen:
                db.execute(f"DELETE FROM {_quoted(table)} WHERE {_quoted(key)} = ?", (code,))
            edits.deleted[table] = chosen
        # changed: ~1% of the first export's records, spread over partners and contacts
        wanted = max(1, round(edits.records / 100))
        pool = [
            (table, row[0])
            for table in CHANGED_COLUMNS
            for row in db.execute(f"SELECT {_quoted(_key(table))} FROM {_quoted(table)}")
            if row[0] not in edits.added.get(table, [])
            and row[0] not in edits.deleted.get(table, [])
        ]
        for table, code in sorted(rng.sample(pool, wanted)):
            db.execute(
                f"UPDATE {_quoted(table)} SET {CHANGED_COLUMNS[table]} = ?"
                f" WHERE {_quoted(_key(table))} = ?",
                (f"Neustadt {code % 1000}", code),
            )
            edits.changed.setdefault(table, []).append(code)
        # emptied: a column or a lookup that has no value any more
        for table, (column, condition, how_many) in EMPTIED.items():
            key = _key(table)
            untouched = set(edits.changed.get(table, [])) | set(edits.added.get(table, []))
            codes = [
                row[0]
                for row in db.execute(
                    f"SELECT {_quoted(key)} FROM {_quoted(table)} WHERE {condition}"
                    f" ORDER BY {_quoted(key)}"
                )
                if row[0] not in untouched
            ][:how_many]
            for code in codes:
                db.execute(
                    f"UPDATE {_quoted(table)} SET {_quoted(column)} = NULL"
                    f" WHERE {_quoted(key)} = ?",
                    (code,),
                )
                edits.changed.setdefault(table, []).append(code)
            edits.emptied[table] = codes
    return edits


def values_of(row: tuple[object, ...], columns: list[str]) -> dict[str, object]:
    """A fetched row as a dict."""
    return dict(zip(columns, row, strict=True))


def _insert(db: sqlite3.Connection, table: str, values: dict[str, object]) -> None:
    names = ", ".join(_quoted(name) for name in values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO {_quoted(table)} ({names}) VALUES ({marks})", list(values.values()))


@pytest.fixture(scope="session")
def generations(tmp_path_factory: pytest.TempPathFactory) -> Generations:
    """A 60-customer export (SQLite form) and its edited newer generation."""
    folder = tmp_path_factory.mktemp("delta-export")
    generate(out=str(folder), customers=CUSTOMERS, form=ExportForm.SQL, quiet=True)
    first = folder / "work4all.db"
    newer_folder = tmp_path_factory.mktemp("delta-export-newer")
    for item in folder.iterdir():  # attachments and manifest travel with the newer export
        if item.is_dir():
            shutil.copytree(item, newer_folder / item.name)
    newer = newer_folder / "work4all.db"
    edits = make_newer(first, newer)
    return Generations(first, newer, edits)


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators' self-signed certificate is generated once."""
    return tmp_path_factory.mktemp("tls")
