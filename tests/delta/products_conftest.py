"""Newer generations of an export that change products (work4all ``Artikel``).

The default map makes ``Name`` the product's ``name``, ``Nettopreis`` its ``price`` and
``Stillgelegt`` its state (0 Active, published; -1 Retired). Products are published after their
create, and Dataverse edits only Draft or Under Revision products: every change here is an update
of a published or retired product.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProductEdits:
    """What the newer export changed, by ``Artikel.Code``."""

    renamed: list[int] = field(default_factory=list)
    repriced: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    """active in the first export, retired (``Stillgelegt``) in the newer one."""
    deleted: list[int] = field(default_factory=list)

    @property
    def changed(self) -> list[int]:
        """Every changed (not deleted) record, once."""
        return sorted({*self.renamed, *self.repriced, *self.retired})


def copy_export(first: Path, folder: Path) -> Path:
    """Copy the export ``first`` (its database and the folders beside it) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in first.parent.iterdir():  # attachments and manifest travel with the export
        if item.is_dir():
            shutil.copytree(item, folder / item.name)
    newer = folder / first.name
    shutil.copyfile(first, newer)
    return newer


def edit_products(newer: Path, edits: ProductEdits) -> None:
    """Apply ``edits`` to the export database ``newer``: rename, reprice, retire, delete."""
    with sqlite3.connect(newer) as db:
        for code in edits.renamed:
            db.execute("UPDATE Artikel SET Name = 'Neu: ' || Name WHERE Code = ?", (code,))
        for code in edits.repriced:
            db.execute(
                "UPDATE Artikel SET Nettopreis = ROUND(Nettopreis * 1.1 + 1, 2) WHERE Code = ?",
                (code,),
            )
        for code in edits.retired:
            db.execute("UPDATE Artikel SET Stillgelegt = -1 WHERE Code = ?", (code,))
        for code in edits.deleted:
            db.execute("DELETE FROM Artikel WHERE Code = ?", (code,))


def retired_codes(export: Path) -> set[int]:
    """The ``Artikel`` codes the export marks as retired (``Stillgelegt``)."""
    with sqlite3.connect(export) as db:
        found = db.execute("SELECT Code FROM Artikel WHERE Stillgelegt <> 0").fetchall()
    return {int(code) for (code,) in found}


def free_product(export: Path) -> int:
    """Make one active item of ``export`` one that no other record refers to; its ``Code``.

    Its price list items are deleted and its document lines become write-in lines, so that a
    newer export can delete the item without touching any other record's decision.
    """
    with sqlite3.connect(export) as db:
        found = db.execute(
            "SELECT a.Code FROM Artikel a WHERE a.Stillgelegt = 0 AND a.Name IS NOT NULL"
            " AND (SELECT COUNT(*) FROM Artikel b WHERE b.Nummer = a.Nummer) = 1"
            " ORDER BY (SELECT COUNT(*) FROM Preise p WHERE p.ArtikelCode = a.Code)"
            " + (SELECT COUNT(*) FROM Positionen q WHERE q.ArtikelCode = a.Code), a.Code"
            " LIMIT 1"
        ).fetchone()
        assert found is not None, "the export has no active item"
        code = int(found[0])
        db.execute("DELETE FROM Preise WHERE ArtikelCode = ?", (code,))
        db.execute("UPDATE Positionen SET ArtikelCode = 0 WHERE ArtikelCode = ?", (code,))
    return code
