"""Two generations of one work4all export whose differences reach records that did not change.

The newer export is the first with three edits, each of which changes the decision about
records it leaves untouched (a *knock-on*):

- **the survivor of a duplicate group is deleted**: the generator plants near-duplicate
  customers (defect ``duplicate_customer``); the original, the group's survivor, is gone, so its
  twin, rejected as ``duplicate_of`` it before, must now be created;
- **an account is deleted while its contacts and activities stay**: the contacts, quotes and
  notes that require the account are rejected now (their rows must go), the activities that were
  about it lose their ``regarding`` lookup;
- **a contact's last name is emptied**: a changed record that is now rejected (``lastname`` is
  required), so its row must be withdrawn.

The account chosen has no invoices and no opportunities: a won opportunity's
``opportunityclose`` activity is a row no decision names.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from producers.mapping import rules
from producers.mapping.default import default_map

ACTIVITY_TABLES = ("Telefonate", "Termine", "Briefe", "Whattodos")
"""Tables whose rows refer to a customer by ``SDObjType = 1`` and ``SDObjMemberCode``."""


@dataclass
class KnockOnEdits:
    """What the newer export changed, as source keys (``Kunden:1739201``)."""

    survivor: str = ""
    """the deleted survivor of a duplicate group."""
    duplicate: str = ""
    """its twin, rejected as a duplicate in the first export."""
    account: str = ""
    """the deleted customer whose contacts and activities stay."""
    children: dict[str, list[str]] = field(default_factory=dict)
    """per table, the records that refer to the deleted customer and stay."""
    emptied_contact: str = ""
    """the contact whose ``Name`` (``lastname``, required) the newer export empties."""


@dataclass(frozen=True)
class KnockOnGenerations:
    """The first export, the newer one, and what differs between them."""

    first: Path
    newer: Path
    edits: KnockOnEdits


def _rows(db: sqlite3.Connection, sql: str, *args: object) -> list[dict[str, object]]:
    cursor = db.execute(sql, args)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _duplicate_group(db: sqlite3.Connection) -> tuple[int, int]:
    """(survivor, twin) Codes of a duplicate group of customers, by the default map's rule."""
    rule = default_map().settings.duplicate_rule
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in _rows(db, 'SELECT Code, Nummer, Firma1, Name, Plz, "Straße" FROM Kunden'):
        found = rules.fingerprint(row, rule)
        if found is not None:
            groups.setdefault(found, []).append(row)
    for members in groups.values():
        if len(members) == 2:
            survivor, twin = sorted(members, key=lambda row: int(str(row["Nummer"])))
            return int(str(survivor["Code"])), int(str(twin["Code"]))
    raise AssertionError("the generated export holds no duplicate group of two customers")


def _children(db: sqlite3.Connection, code: int) -> dict[str, list[int]]:
    found = {
        "KAnsprechp": [
            int(r[0])
            for r in db.execute(
                "SELECT KAnsprechpCode FROM KAnsprechp WHERE KundenCode = ?", (code,)
            )
        ],
        "Angebot": [
            int(r[0])
            for r in db.execute(
                "SELECT Code FROM Angebot WHERE SDObjType = 1 AND SDObjMemberCode = ?", (code,)
            )
        ],
    }
    for table in ACTIVITY_TABLES:
        found[table] = [
            int(r[0])
            for r in db.execute(
                f'SELECT Code FROM "{table}" WHERE SDObjType = 1 AND SDObjMemberCode = ?', (code,)
            )
        ]
    return {table: codes for table, codes in found.items() if codes}


def _account_with_children(db: sqlite3.Connection, avoid: set[int]) -> int:
    """The customer with the most contacts and activities, without invoices or opportunities."""
    best: tuple[int, int] | None = None
    for (code,) in db.execute("SELECT Code FROM Kunden ORDER BY Nummer"):
        if code in avoid:
            continue
        invoices = db.execute(
            "SELECT COUNT(*) FROM Rechnung WHERE SDObjMemberCode = ?", (code,)
        ).fetchone()[0]
        chances = db.execute(
            "SELECT COUNT(*) FROM Verkaufschancen WHERE SDObjMemberCode = ?", (code,)
        ).fetchone()[0]
        children = _children(db, code)
        if invoices or chances or "KAnsprechp" not in children:
            continue
        if not set(children) & set(ACTIVITY_TABLES):
            continue
        size = sum(len(codes) for codes in children.values())
        if best is None or size > best[0]:
            best = (size, int(code))
    assert best is not None, "no customer with contacts and activities but no invoices"
    return best[1]


def make_knock_on(first: Path, newer: Path) -> KnockOnEdits:
    """Copy ``first`` to ``newer`` and make the three edits of the module doc."""
    shutil.copyfile(first, newer)
    edits = KnockOnEdits()
    with sqlite3.connect(newer) as db:
        survivor, twin = _duplicate_group(db)
        edits.survivor, edits.duplicate = f"Kunden:{survivor}", f"Kunden:{twin}"
        account = _account_with_children(db, {survivor, twin})
        edits.account = f"Kunden:{account}"
        edits.children = {
            table: [f"{table}:{code}" for code in codes]
            for table, codes in _children(db, account).items()
        }
        contact = db.execute(
            "SELECT KAnsprechpCode FROM KAnsprechp WHERE KundenCode NOT IN (?, ?, ?)"
            " AND Name IS NOT NULL AND TRIM(Name) <> '' AND KundenCode IN (SELECT Code FROM Kunden)"
            " ORDER BY KAnsprechpCode LIMIT 1",
            (survivor, twin, account),
        ).fetchone()
        assert contact is not None, "no contact of another customer to empty"
        edits.emptied_contact = f"KAnsprechp:{contact[0]}"
        db.execute("DELETE FROM Kunden WHERE Code IN (?, ?)", (survivor, account))
        db.execute("UPDATE KAnsprechp SET Name = NULL WHERE KAnsprechpCode = ?", (contact[0],))
    return edits


def knock_on_generations(first_folder: Path, newer_folder: Path) -> KnockOnGenerations:
    """The newer generation of the export in ``first_folder`` (``work4all.db`` and its files),
    written to ``newer_folder``."""
    for item in first_folder.iterdir():  # attachments and manifest travel with the newer export
        if item.is_dir():
            shutil.copytree(item, newer_folder / item.name)
    first = first_folder / "work4all.db"
    newer = newer_folder / "work4all.db"
    return KnockOnGenerations(first, newer, make_knock_on(first, newer))
