"""The rebuild inventory: what a work4all installation configures that does not migrate as data.

:func:`inventory` reads an export's configuration tables (lookups, custom field definitions,
users, tax rates, price groups, and the number ranges the master data shows) and
:func:`to_markdown` writes the document the customer's Dynamics 365 admin works through: each
item says what to build natively (option set, autonumber column, security role or team, price
list, …), with counts and examples. Items the default map already moves as data are marked so.

Tables the export lacks are listed as "not in the export" rather than skipped, so the admin
knows to ask for them (``NummernKreise``, ``Zahlungsart``, ``LookUp`` and the automation tables
of shared/reference/work4all-export.md are not part of the generator's export).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producers.mapping.model import MigrationMap
from producers.work4all.readers import open_export

__all__ = ["InventoryItem", "inventory", "to_markdown"]

_EXAMPLES = 5

# (table, heading, what to build in Dynamics 365, the column naming an entry)
_LOOKUPS = (
    ("Anrede", "Salutations (Anrede)",
     "contact `salutation` text and `gendercode` option set; letter salutations are not a"
     " Dynamics concept (use e-mail templates)", "AnredeName"),
    ("KundenGr", "Customer groups (KundenGr)",
     "an option set on account (e.g. `accountcategorycode` or a custom choice column), or"
     " marketing lists", "GrName"),
    ("ArtikelGr", "Product groups (ArtikelGr)",
     "product families (`productstructure` = 2) or subjects; the hierarchy (GrLevel) is"
     " rebuilt by hand", "GrName"),
    ("Einheit", "Units (Einheit)", "unit groups and units (`uomschedule`/`uom`)", "EinheitName"),
    ("Preisgruppen", "Price groups (Preisgruppen)",
     "price lists (`pricelevel`) and their assignment to accounts (`defaultpricelevelid`)",
     "Name"),
    ("Mehrwertsteuersätze", "Tax rates (Mehrwertsteuersätze)",
     "Dynamics 365 Sales has no tax engine: tax is a per-line amount; configure a tax add-on"
     " or a calculation (plugin/Power Automate) per rate", "MwstName"),
    ("Zahlungsart", "Payment terms (Zahlungsart)",
     "the account `paymenttermscode` option set; discount terms as custom columns", "Text"),
    ("NummernKreise", "Number ranges (NummernKreise)",
     "autonumber seeds per object (see Numbering)", "ErsteNummer"),
    ("LookUp", "Generic status and category lists (LookUp)",
     "one option set per list (ObjArt)", "Name"),
)  # fmt: skip

_NUMBERED = (
    ("Kunden", "Nummer", "account", "w4a_customernumber"),
    ("Lieferanten", "Nummer", "account", "w4a_suppliernumber"),
    ("Artikel", "Nummer", "product", "productnumber"),
    ("Angebot", "Nummer", "quote", "quotenumber"),
    ("Rechnung", "Nummer", "invoice", "invoicenumber"),
    ("Verkaufschancen", "Nummer", "opportunity", "w4a_opportunitynumber (a new custom column)"),
)

_AUTOMATIONS = (
    ("Dunning (Mahnwesen)", "RA.Mahnstuffe, Kunden.Mahnsperre, Mahnlauf",
     "no native dunning: a Power Automate flow on `w4a_openitem` (due date, level) or the ERP"),
    ("Payment clearing", "Zahlungsart.AusziffernAutomatisch",
     "stays in the ERP/accounting; Dynamics only shows open amounts"),
    ("Follow-ups (Wiedervorlagen)", "Whattodos, Termine reminders",
     "task due dates and Outlook reminders; recurring follow-ups as Power Automate flows"),
    ("Mailing and consent blocks", "Kunden.MailSperre/SerienbriefSperre, KAnsprechp.Mailsperre",
     "contact preferences (`donotemail`, `donotbulkemail`) — migrated as data where mapped;"
     " consent handling in Customer Insights - Journeys is configured separately"),
    ("Document numbering and templates", "NummernKreise, Briefvorlagen, report layouts",
     "autonumber columns and Word/SSRS templates for quotes and invoices"),
    ("Duplicate check", "Kunden.DoublettenCheck_NichtMehrAnzeigen",
     "duplicate detection rules (Settings → Data management)"),
)  # fmt: skip


@dataclass
class InventoryItem:
    """One thing the admin must rebuild, with what the export says about it."""

    section: str
    heading: str
    build: str
    count: int | None = None
    examples: list[str] = field(default_factory=list)
    migrated: str | None = None
    """how the map moves it as data, if it does."""
    missing: bool = False
    """the export does not hold the table."""


def _rows(export: Any, table: str) -> list[dict[str, Any]] | None:
    name = export.find_table(table)
    if name is None:
        return None
    return [dict(row.raw) for row in export.rows(name)]


def _migrated(migration_map: MigrationMap | None, table: str) -> str | None:
    if migration_map is None:
        return None
    objects = [obj for obj in migration_map.objects if table in obj.sources]
    if not objects:
        return None
    return ", ".join(f"{obj.name} → {obj.target} (phase {obj.phase})" for obj in objects)


def inventory(
    location: str | Path, migration_map: MigrationMap | None = None
) -> list[InventoryItem]:
    """Every item of the export at ``location`` to rebuild natively in Dynamics 365."""
    export = open_export(location)
    try:
        return [
            *_lookups(export, migration_map),
            *_numbering(export),
            *_custom_fields(export, migration_map),
            *_users(export),
            *(InventoryItem("Workflows and automations", heading, build, examples=[where])
              for heading, where, build in _AUTOMATIONS),
        ]  # fmt: skip
    finally:
        export.close()


def _lookups(export: Any, migration_map: MigrationMap | None) -> list[InventoryItem]:
    items = []
    for table, heading, build, column in _LOOKUPS:
        rows = _rows(export, table)
        item = InventoryItem("Option sets and lookups", heading, build,
                             migrated=_migrated(migration_map, table))  # fmt: skip
        if rows is None:
            item.missing = True
        else:
            item.count = len(rows)
            item.examples = [str(row.get(column)) for row in rows[:_EXAMPLES]]
        items.append(item)
    return items


def _numbering(export: Any) -> list[InventoryItem]:
    items = []
    for table, column, target, target_column in _NUMBERED:
        rows = _rows(export, table)
        item = InventoryItem(
            "Numbering (autonumber columns)", f"{table}.{column}",
            f"an autonumber format on {target}.{target_column} starting above the highest"
            " migrated number",
        )  # fmt: skip
        if rows is None:
            item.missing = True
        else:
            numbers = [int(str(v)) for v in (row.get(column) for row in rows) if _is_int(v)]
            item.count = len(rows)
            if numbers:
                item.examples = [f"{min(numbers)} to {max(numbers)}", f"next: {max(numbers) + 1}"]
        items.append(item)
    return items


def _is_int(value: Any) -> bool:
    try:
        int(str(value))
    except (TypeError, ValueError):
        return False
    return True


def _custom_fields(export: Any, migration_map: MigrationMap | None) -> list[InventoryItem]:
    rows = _rows(export, "IndividualFields")
    if rows is None:
        return [InventoryItem("Custom field definitions", "IndividualFields", "", missing=True)]
    mapped = {
        (source_table, source)
        for obj in (migration_map.objects if migration_map else [])
        for source_table in obj.sources
        for column in obj.columns
        for source in column.sources
    }
    items = []
    for row in rows:
        table, number = str(row.get("TableType") or "?"), row.get("FieldNumber")
        title, options = _title(str(row.get("Title") or ""))
        done = (table, f"Feld{number}") in mapped
        targets = sorted(
            {obj.target for obj in (migration_map.objects if migration_map else [])
             if table in obj.sources}
        )  # fmt: skip
        where = " / ".join(targets) or f"the {table} target"
        items.append(
            InventoryItem(
                "Custom field definitions",
                f"{table}.Feld{number}: {title} ({row.get('Control')})",
                "provisioned by the map: check label and options"
                if done
                else f"to check: a custom column on {where}"
                + (" (choice column)" if options else ""),
                count=len(options) or None,
                examples=options[:_EXAMPLES],
                migrated="mapped" if done else None,
            )
        )
    return items


def _title(text: str) -> tuple[str, list[str]]:
    """work4all encodes a combo's options in its title: ``Label;;;0```a;;;1```b;;;``."""
    if "```" not in text:
        return text, []
    parts = text.split("```")
    label = parts[0].split(";;;")[0]
    options = [part.split(";;;")[0] for part in parts[1:] if part.split(";;;")[0]]
    return label, options


def _users(export: Any) -> list[InventoryItem]:
    rows = _rows(export, "Mitarbeiter")
    if rows is None:
        return [InventoryItem("Users, groups and rights", "Mitarbeiter", "", missing=True)]
    groups = Counter(str(row.get("GrCode") or 0) for row in rows)
    active = [row for row in rows if str(row.get("Ausgeschieden") or 0) in ("0", "False", "")]
    return [
        InventoryItem(
            "Users, groups and rights",
            "Users (Mitarbeiter)",
            "Entra ID users with a Dynamics 365 licence; matched by e-mail, never created",
            count=len(rows),
            examples=[f"{len(active)} active", f"{len(rows) - len(active)} left"],
        ),
        InventoryItem(
            "Users, groups and rights",
            "User groups (Mitarbeiter.GrCode) and rights",
            "security roles and owner teams / business units per group; work4all rights are"
            " not in the export and must be reviewed with the customer",
            count=len(groups),
            examples=[f"group {code}: {n} users" for code, n in groups.most_common(_EXAMPLES)],
        ),
    ]


def to_markdown(items: list[InventoryItem], source: str) -> str:
    """The inventory as a Markdown document."""
    lines = [
        "# What to rebuild in Dynamics 365 by hand",
        "",
        f"From the work4all export `{source}`. These are configuration, not data: the migration"
        " does not move them (or moves only their values), so the admin builds them natively.",
    ]
    section = None
    for item in items:
        if item.section != section:
            section = item.section
            lines += ["", f"## {section}", ""]
        if item.missing:
            lines.append(f"- **{item.heading}**: not in the export — ask for it.")
            continue
        count = f" ({item.count:,})" if item.count is not None else ""
        lines.append(f"- **{item.heading}**{count}: {item.build}.")
        if item.examples:
            lines.append(f"  - e.g. {', '.join(item.examples)}")
        if item.migrated:
            lines.append(f"  - migrated as data: {item.migrated}")
    return "\n".join(lines) + "\n"
