"""The proposer: renamed standard columns found again, custom fields and unknown columns placed.

The acceptance test generates a work4all export, renames custom fields and standard columns the
way a person or a vendor script would, runs the proposer and measures the result against ground
truth: the default map's own mapping for standard columns, the generator's IndividualFields for
custom fields.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from producers.mapping.model import ColumnMap, MigrationMap, ObjectMap, parse_map
from producers.mapping.profile import ColumnProfile
from producers.mapping.propose import Proposal, propose
from producers.mapping.review import review_paths, write_review
from producers.mapping.similarity import concepts, name_similarity, string_similarity
from producers.work4all.normalise import CustomField, Normaliser
from producers.work4all.readers import fold_name, open_export

CUSTOMERS = 200

STANDARD_RENAMES: dict[tuple[str, str], str] = {
    ("Kunden", "Telefon"): "Tel",
    ("Kunden", "Straße"): "Straße_Anschrift",
    ("Kunden", "Plz"): "Postleitzahl",
    ("Kunden", "Ort"): "Stadt",
    ("Kunden", "InterNet"): "Homepage",
    ("Kunden", "Firma1"): "Firmenname",
    ("KAnsprechp", "E-Mail"): "Mailadresse",
    ("KAnsprechp", "Vorname"): "first_name",
    ("KAnsprechp", "Geburtsdatum"): "Geburtstag",
    ("KAnsprechp", "Mobilfunk"): "Handy",
    ("Lieferanten", "E-Mail"): "Email_Adresse",
    ("Artikel", "Nettopreis"): "VK_Netto",
}
"""Standard columns renamed in the export: (table, work4all name) → new name."""

CUSTOM_RENAMES: dict[tuple[str, int], tuple[int, str]] = {
    ("Kunden", 1): (11, "Zahlungsmoral;;;0```gut;;;1```mittel;;;2```schlecht;;;"),
    ("Kunden", 2): (12, "Rundbrief erwünscht"),
    ("Kunden", 3): (13, "Servicevertrag läuft bis"),
    ("Artikel", 1): (7, "Im Webshop sichtbar"),
}
"""Custom fields moved to another Feld<N> and relabelled: (table, number) → (number, title)."""

SMALL_MAP = parse_map(
    {
        "name": "test map",
        "objects": [
            {
                "name": "customers",
                "phase": 1,
                "target": "account",
                "sources": ["Kunden"],
                "columns": [
                    {"target": "name", "sources": ["Firma1", "Firma2"], "transform": "concat"},
                    {"target": "telephone1", "sources": ["Telefon"]},
                    {"target": "emailaddress1", "sources": ["E-Mail"]},
                    {"target": "websiteurl", "sources": ["InterNet"]},
                    {"target": "address1_line1", "sources": ["Straße"]},
                    {"target": "address1_postalcode", "sources": ["Plz"]},
                    {"target": "address1_city", "sources": ["Ort"]},
                ],
            },
            {
                "name": "contacts",
                "phase": 2,
                "target": "contact",
                "sources": ["KAnsprechp"],
                "key": "KAnsprechpCode",
                "columns": [
                    {"target": "firstname", "sources": ["Vorname"]},
                    {"target": "lastname", "sources": ["Name"]},
                    {"target": "emailaddress1", "sources": ["E-Mail"]},
                    {"target": "mobilephone", "sources": ["Mobilfunk"]},
                    {"target": "birthdate", "sources": ["Geburtsdatum"]},
                ],
            },
            {
                "name": "suppliers",
                "phase": 1,
                "target": "account",
                "sources": ["Lieferanten"],
                "columns": [{"target": "emailaddress1", "sources": ["E-Mail"]}],
            },
            {
                "name": "products",
                "phase": 3,
                "target": "product",
                "sources": ["Artikel"],
                "columns": [
                    {"target": "name", "sources": ["Name"]},
                    {"target": "price", "sources": ["Nettopreis"]},
                ],
            },
        ],
    }
)
"""A small map for tests that must not depend on the shipped default map."""


# ---- building exports ---------------------------------------------------------------------------


def generate(out: Path, form: str, customers: int = CUSTOMERS) -> Path:
    """Generate a synthetic export; the path to open it by."""
    result = CliRunner().invoke(
        app,
        ["generate", "--out", str(out), "--customers", str(customers), "--format", form, "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return out / "work4all.db" if form == "sql" else out


def original_custom_fields(location: Path) -> list[CustomField]:
    """The generator's IndividualFields, read back from the export it wrote."""
    with open_export(location) as export:
        return list(Normaliser.for_export(export).custom_fields)


def _renamed_custom_columns() -> dict[tuple[str, str], str]:
    return {
        (table, f"Feld{number}"): f"Feld{new}"
        for (table, number), (new, _) in CUSTOM_RENAMES.items()
    }


def _all_renames() -> dict[tuple[str, str], str]:
    return {**STANDARD_RENAMES, **_renamed_custom_columns()}


def rename_sqlite(database: Path) -> None:
    """Rename columns with ALTER TABLE and relabel custom fields in IndividualFields."""
    with sqlite3.connect(database) as connection:
        for (table, old), new in _all_renames().items():
            connection.execute(f'ALTER TABLE "{table}" RENAME COLUMN "{old}" TO "{new}"')
        for (table, number), (moved, title) in CUSTOM_RENAMES.items():
            connection.execute(
                "UPDATE IndividualFields SET FieldNumber = ?, Title = ? "
                "WHERE TableType = ? AND FieldNumber = ?",
                (moved, title, table, number),
            )


def rename_csv(directory: Path) -> None:
    """Rename columns in the CSV headers and relabel custom fields in IndividualFields.csv."""
    renames = _all_renames()
    for table in {table for table, _ in renames}:
        path = directory / f"{table}.csv"
        text = path.read_bytes().decode("cp1252")
        first, rest = text.split("\r\n", 1) if "\r\n" in text else text.split("\n", 1)
        names = [renames.get((table, name), name) for name in first.split(";")]
        newline = "\r\n" if "\r\n" in text else "\n"
        path.write_bytes((";".join(names) + newline + rest).encode("cp1252"))
    path = directory / "IndividualFields.csv"
    with path.open(encoding="cp1252", newline="") as file:
        rows = list(csv.reader(file, delimiter=";"))
    header = rows[0]
    at = {name: header.index(name) for name in ("FieldNumber", "TableType", "Title")}
    for row in rows[1:]:
        key = (row[at["TableType"]], int(row[at["FieldNumber"]]))
        if key in CUSTOM_RENAMES:
            new, title = CUSTOM_RENAMES[key]
            row[at["FieldNumber"]], row[at["Title"]] = str(new), title
    with path.open("w", encoding="cp1252", newline="") as file:
        csv.writer(file, delimiter=";", lineterminator="\r\n").writerows(rows)


@pytest.fixture(scope="module", params=["sql", "csv"])
def renamed_export(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[CustomField]]]:
    """A generated export with renamed columns and custom fields, and the original definitions."""
    form = str(request.param)
    root = tmp_path_factory.mktemp(f"renamed-{form}")
    location = generate(root / "export", form)
    fields = original_custom_fields(location)
    if form == "sql":
        rename_sqlite(location)
    else:
        rename_csv(location)
    yield location, fields
    shutil.rmtree(root, ignore_errors=True)


def default_or_skip() -> MigrationMap:
    """The shipped default map."""
    from producers.mapping.default import default_map

    return default_map()


# ---- measuring ----------------------------------------------------------------------------------


def _table_of(obj: ObjectMap, source: str) -> tuple[str, str]:
    prefix, dot, column = source.rpartition(".")
    if dot and prefix in obj.sources:
        return prefix, column
    return obj.primary_source, source


def standard_share(base: MigrationMap, proposed: MigrationMap) -> tuple[float, float, int]:
    """(share of all, share of renamed, renamed count) of the base map's source columns that the
    proposed map reads from the right export column for the same target."""
    renames = {(t, fold_name(c)): new for (t, c), new in STANDARD_RENAMES.items()}
    total = correct = renamed_total = renamed_correct = 0
    for obj in base.objects:
        after = proposed.object(obj.name)
        for column in obj.columns:
            mapped = after.column(column.target) if after else None
            for index, source in enumerate(column.sources):
                table, name = _table_of(obj, source)
                expected = renames.get((table, fold_name(name)))
                want = name if expected is None else expected
                got = mapped.sources[index] if mapped and index < len(mapped.sources) else None
                ok = got is not None and _table_of(obj, got)[1] == want
                total += 1
                correct += ok
                if expected is not None:
                    renamed_total += 1
                    renamed_correct += ok
    return correct / total, renamed_correct / max(renamed_total, 1), renamed_total


_CONTROL_TYPES = {
    "combo": {"picklist"},
    "check": {"boolean"},
    "date": {"dateonly", "datetime"},
    "number": {"decimal", "money", "integer"},
}


def custom_field_results(
    fields: list[CustomField], proposed: MigrationMap, proposals: list[Proposal]
) -> dict[str, str]:
    """For every generator custom field: '' when sensibly placed, else what is wrong."""
    wrong: dict[str, str] = {}
    for field in fields:
        new_number, _ = CUSTOM_RENAMES.get((field.table, field.number), (field.number, ""))
        column = f"Feld{new_number}"
        key = f"{field.table}.{column}"
        found = [p for p in proposals if p.table == field.table and p.column == column]
        if len(found) != 1:
            wrong[key] = f"{len(found)} proposals"
            continue
        proposal = found[0]
        homes = [obj for obj in proposed.objects if obj.primary_source == field.table]
        in_map = [c for obj in homes for c in obj.columns if c.sources == [column] and c.target]
        allowed = _CONTROL_TYPES.get(field.control.casefold(), set())
        if not homes or proposal.target_table != homes[0].target:
            wrong[key] = f"on {proposal.target_table}"
        elif not in_map or in_map[0].target != proposal.target:
            wrong[key] = "not in the map"
        elif proposal.custom and not proposal.target.startswith("w4a_"):
            wrong[key] = f"custom column {proposal.target} without w4a_ prefix"
        elif proposal.type not in allowed:
            wrong[key] = f"type {proposal.type}, want one of {sorted(allowed)}"
        elif field.control.casefold() == "combo" and list(proposal.options or {}) != list(
            field.options.values()
        ):
            wrong[key] = f"options {proposal.options}"
        else:
            wrong[key] = ""
    return wrong


# ---- the acceptance test -----------------------------------------------------------------------


def test_proposer_finds_renamed_standard_columns_and_places_every_custom_field(
    renamed_export: tuple[Path, list[CustomField]],
) -> None:
    location, fields = renamed_export
    base = default_or_skip()
    proposed, proposals = propose(location, base=base)

    overall, renamed, count = standard_share(base, proposed)
    custom = custom_field_results(fields, proposed, proposals)
    print(
        f"\nstandard columns mapped correctly: {overall:.1%} of all; {renamed:.1%} of the "
        f"{count} renamed ones; custom fields placed sensibly: "
        f"{sum(not v for v in custom.values())}/{len(custom)}"
    )
    for proposal in proposals:
        print(f"  {proposal.kind:13} {proposal.table}.{proposal.column} → {proposal.target_text}"
              f" ({proposal.confidence:.2f})")  # fmt: skip
    assert count >= 5, "the default map must read at least five of the renamed columns"
    assert overall >= 0.95
    assert renamed >= 0.95
    assert len(fields) >= 4
    assert {key: why for key, why in custom.items() if why} == {}


def test_salutation_codes_come_from_the_installations_anrede_table(
    renamed_export: tuple[Path, list[CustomField]],
) -> None:
    location, _ = renamed_export
    proposed, proposals = propose(location, base=default_or_skip())

    salutations = [
        column for obj in proposed.objects for column in obj.columns
        if column.transform == "salutation"
    ]  # fmt: skip
    assert salutations
    assert all(column.params["codes"]["2"] == "Frau" for column in salutations)
    assert len([p for p in proposals if p.kind == "parameter"]) == len(salutations)


def test_proposer_on_a_small_map_finds_every_renamed_column(
    renamed_export: tuple[Path, list[CustomField]],
) -> None:
    location, fields = renamed_export
    proposed, proposals = propose(location, base=SMALL_MAP)

    overall, renamed, count = standard_share(SMALL_MAP, proposed)
    custom = custom_field_results(fields, proposed, proposals)
    print(f"\nsmall map: {overall:.1%} of all, {renamed:.1%} of {count} renamed")
    assert overall == 1.0
    assert renamed == 1.0
    assert {key: why for key, why in custom.items() if why} == {}
    assert not [p for p in proposals if p.kind == "missing"]


def test_renamed_column_replaces_the_source_name_and_keeps_the_target(
    renamed_export: tuple[Path, list[CustomField]],
) -> None:
    location, _ = renamed_export
    proposed, proposals = propose(location, base=SMALL_MAP)

    customers = proposed.object("customers")
    assert customers is not None
    assert customers.column("telephone1") == ColumnMap(target="telephone1", sources=["Tel"])
    name = customers.column("name")
    assert name is not None
    assert name.sources == ["Firmenname", "Firma2"]
    tel = next(p for p in proposals if p.column == "Tel")
    assert (tel.kind, tel.replaces, tel.target) == ("renamed", "Telefon", "telephone1")
    assert tel.confidence >= 0.95
    assert tel.samples
    assert all(any(ch.isdigit() for ch in s) for s in tel.samples)


# ---- unexpected columns, custom fields, missing columns ----------------------------------------


@pytest.fixture(scope="module")
def extended_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export with extra columns a standard Mandant does not have."""
    database = generate(tmp_path_factory.mktemp("extended"), "sql", customers=60)
    with sqlite3.connect(database) as db:
        db.execute('ALTER TABLE Kunden ADD COLUMN "Branche" TEXT')
        db.execute(
            "UPDATE Kunden SET Branche = CASE Code % 3 WHEN 0 THEN 'Handwerk' "
            "WHEN 1 THEN 'Handel' ELSE 'Industrie' END"
        )
        db.execute('ALTER TABLE Kunden ADD COLUMN "Feld5" REAL')
        db.execute("UPDATE Kunden SET Feld5 = Code % 300")
        db.execute(
            "INSERT INTO IndividualFields (Code, Control, DisplayOrder, FieldNumber, "
            "IndividualPageCode, Pflichtfeld, TableType, Title, Tooltip) "
            "VALUES (77, 'Number', 5, 5, 0, 0, 'Kunden', 'Mitarbeiterzahl', '')"
        )
        db.execute('ALTER TABLE KAnsprechp ADD COLUMN "LinkedIn" TEXT')
        db.execute(
            "UPDATE KAnsprechp SET LinkedIn = 'https://www.linkedin.com/in/p' || KAnsprechpCode"
        )
        db.execute('ALTER TABLE KAnsprechp ADD COLUMN "Zweitmail" TEXT')
        db.execute("UPDATE KAnsprechp SET Zweitmail = 'privat' || KAnsprechpCode || '@web.de'")
        db.execute('ALTER TABLE KAnsprechp RENAME COLUMN "Name" TO "XYZ_1"')
        db.execute("UPDATE KAnsprechp SET XYZ_1 = NULL")
    return database


def _by_column(proposals: list[Proposal], column: str) -> Proposal:
    return next(p for p in proposals if p.column == column)


def test_small_value_set_becomes_a_new_option_set_column(extended_export: Path) -> None:
    proposed, proposals = propose(extended_export, base=SMALL_MAP)

    branche = _by_column(proposals, "Branche")
    assert (branche.kind, branche.target, branche.type) == ("unexpected", "w4a_branche", "picklist")
    assert branche.options == {"Handel": 100000000, "Handwerk": 100000001, "Industrie": 100000002}
    assert branche.lossy
    customers = proposed.object("customers")
    assert customers is not None
    column = customers.column("w4a_branche")
    assert column is not None
    assert column.custom
    assert column.options == branche.options


def test_custom_field_whose_label_means_a_standard_column_goes_there(extended_export: Path) -> None:
    _, proposals = propose(extended_export, base=SMALL_MAP)

    staff = _by_column(proposals, "Feld5")
    assert (staff.label, staff.target, staff.custom) == (
        "Mitarbeiterzahl",
        "numberofemployees",
        False,
    )


def test_unexpected_columns_become_standard_or_custom_columns_by_name_and_values(
    extended_export: Path,
) -> None:
    _, proposals = propose(extended_export, base=SMALL_MAP)

    second_mail = _by_column(proposals, "Zweitmail")
    assert (second_mail.target, second_mail.custom) == ("emailaddress2", False)
    linkedin = _by_column(proposals, "LinkedIn")
    assert linkedin.custom
    assert linkedin.target == "w4a_linkedin"
    assert linkedin.type == "string"
    assert "url" in linkedin.rationale


def test_a_mapped_column_the_export_lacks_is_reported_missing(extended_export: Path) -> None:
    _, proposals = propose(extended_export, base=SMALL_MAP)

    missing = [p for p in proposals if p.kind == "missing"]
    assert [(p.table, p.column, p.target, p.confidence) for p in missing] == [
        ("KAnsprechp", "Name", "lastname", 0.0)
    ]
    assert _by_column(proposals, "XYZ_1").kind == "unexpected"


def test_review_lists_source_samples_target_confidence_rationale_and_losses(
    extended_export: Path, tmp_path: Path
) -> None:
    proposed, proposals = propose(extended_export, base=SMALL_MAP)
    markdown, page = write_review(tmp_path / "map.yaml", proposed, proposals, str(extended_export))

    assert (markdown, page) == review_paths(tmp_path / "map.yaml")
    text = markdown.read_text(encoding="utf-8")
    assert (
        "| Source column | Sample values | Proposed target | Confidence | Rationale | Lossy |"
        in text
    )
    assert "Kunden.Branche" in text
    assert "account.w4a_branche (new picklist)" in text
    assert "Handel" in text
    assert "option set is closed" in text
    assert proposed.content_hash in text
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>")
    assert "w4a_branche" in html
    assert "<table>" in html


# ---- the building blocks -----------------------------------------------------------------------


def test_names_are_compared_across_german_and_english_with_umlauts_folded() -> None:
    assert name_similarity("Straße_Anschrift", "Straße")[0] >= 0.85
    assert name_similarity("Strasse", "address1_line1")[0] >= 0.9
    assert name_similarity("Tel", "Telefon")[0] >= 0.9
    assert name_similarity("PLZ", "postalcode")[0] >= 0.9
    assert name_similarity("Mailadresse", "emailaddress1")[0] >= 0.8
    assert name_similarity("Umsatz", "revenue")[0] >= 0.9
    assert string_similarity("Geburtsdatm", "Geburtsdatum") >= 0.9
    assert name_similarity("Ort", "Telefon")[0] < 0.5
    assert "employees" in concepts("Anzahl Mitarbeiter")


def test_value_profiles_recognise_phones_emails_urls_dates_and_booleans() -> None:
    cases = {
        "phone": ["0761 3713361", "+49 172 1649460", "030/123456"],
        "email": ["a.b@firma.de", "info@web.de", "x@y.com"],
        "url": ["www.firma.de", "https://example.com/a", "firma.de"],
        "date": ["02.10.2025", "2024-01-31 00:00:00", "0001-01-01"],
        "boolean": ["-1", "0", "0"],
    }
    for kind, values in cases.items():
        profile = ColumnProfile("T", "C")
        for value in values * 5:
            profile.add(value)
        assert profile.semantic == kind, (kind, dict(profile.counts))


def test_a_combo_custom_field_maps_its_stored_index_and_its_text_to_one_option(
    renamed_export: tuple[Path, list[CustomField]],
) -> None:
    location, _ = renamed_export
    proposed, _ = propose(location, base=SMALL_MAP)

    customers = proposed.object("customers")
    assert customers is not None
    combo = customers.column("w4a_zahlungsmoral")
    assert combo is not None
    assert combo.sources == ["Feld11"]
    assert (combo.type, combo.transform) == ("picklist", "optionset")
    assert combo.options == {"gut": 100000000, "mittel": 100000001, "schlecht": 100000002}
    assert combo.params["mapping"]["0"] == combo.params["mapping"]["gut"] == 100000000
