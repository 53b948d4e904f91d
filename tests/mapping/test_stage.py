"""The transform stage: one decision per extracted record, every injected defect accounted for."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.event_types import RecordRejected, SourceRecordExtracted, TransformDecided
from ledger.events import Event, Topic, content_hash
from ledger.log import EventLog, open_log
from producers.extract import extract
from producers.mapping.gate import MapNotConfirmedError, confirm
from producers.mapping.model import MigrationMap, parse_map, save_map
from producers.mapping.rules import WARNINGS_KEY
from producers.mapping.stage import decision_key_counts, target_id, transform_run
from producers.mapping.transforms import reason_code
from producers.work4all.cli import ExportForm, generate
from producers.work4all.defects import Defect

RUN = "t"
CUSTOMERS = 200
SEED = 11

EXPECTED_REASONS: dict[Defect, set[str]] = {
    Defect.DUPLICATE_CUSTOMER: {"duplicate_of"},
    Defect.ORPHAN_CONTACT: {"lookup_unresolved"},
    Defect.OWNER_MISSING: {"owner_missing"},
    Defect.OWNER_FREE_TEXT: {"owner_free_text"},
    Defect.DEPARTED_OWNER: {"owner_departed"},
    Defect.MIXED_ENCODING: {"encoding"},
    Defect.TEXT_DATE: {"text_date"},
    Defect.PLACEHOLDER_DATE: {"placeholder_date"},
    Defect.FLOAT_NOISE: {"float_noise"},
    Defect.PAYMENT_MISMATCH: {"payment_mismatch"},
    Defect.OVERLONG_STRING: {"too_long", "truncated"},
    Defect.INVALID_EMAIL: {"invalid_email"},
}
"""The reason code each defect class must leave on its record's decision."""

KNOWN_MAP_GAPS: dict[tuple[str, Defect], str] = {}
"""Defect classes a map cannot satisfy yet, and what it needs (xfail: strict, so a fix shows)."""


def _owner(*sources: str) -> dict[str, Any]:
    return {"target": "ownerid", "sources": list(sources), "transform": "owner"}


def _lookup(target: str, source: str, obj: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "target": target, "sources": [source], "transform": "lookup",
        "params": {"object": obj}, "required": required,
    }  # fmt: skip


def _partner(*, supplier: bool = False) -> dict[str, Any]:
    return {
        "target": "regardingobjectid_account", "sources": ["SDObjType", "SDObjMemberCode"],
        "transform": "lookup", "params": {"objects": {"1": "customers", "0": "suppliers"}},
    }  # fmt: skip


def _activity(name: str, table: str, target: str, subject: str) -> dict[str, Any]:
    return {
        "name": name, "phase": 6, "target": target, "sources": [table],
        "columns": [
            {"target": "subject", "sources": [subject], "transform": "text", "required": True},
            {"target": "actualstart", "sources": ["Datum"], "transform": "datetime"},
            _partner(),
            _owner("BenutzerCode"),
        ],
    }  # fmt: skip


TEST_MAP: dict[str, Any] = {
    "map_version": "test",
    "settings": {"fallback_owner": "admin@contoso.example"},
    "objects": [
        {"name": "customers", "phase": 1, "target": "account", "sources": ["Kunden"], "columns": [
            {"target": "name", "sources": ["Firma1"], "transform": "text", "required": True},
            {"target": "emailaddress1", "sources": ["E-Mail"], "transform": "email"},
            {"target": "customertypecode", "transform": "constant", "params": {"value": 3}},
            _owner("VertreterCode", "PersonErstkontakt"),
        ]},
        {"name": "suppliers", "phase": 1, "target": "account", "sources": ["Lieferanten"],
         "columns": [
            {"target": "name", "sources": ["Firma1"], "transform": "text", "required": True},
            {"target": "customertypecode", "transform": "constant", "params": {"value": 10}},
            {"target": "w4a_issupplier", "transform": "constant", "params": {"value": True},
             "custom": True, "type": "boolean"},
         ]},
        {"name": "contacts", "phase": 2, "target": "contact", "sources": ["KAnsprechp"],
         "key": "KAnsprechpCode", "columns": [
            {"target": "lastname", "sources": ["Name"], "transform": "text", "required": True},
            {"target": "emailaddress1", "sources": ["E-Mail"], "transform": "email"},
            {"target": "birthdate", "sources": ["Geburtsdatum"], "transform": "dateonly"},
            _lookup("parentcustomerid_account", "KundenCode", "customers", required=True),
        ]},
        {"name": "opportunities", "phase": 4, "target": "opportunity",
         "sources": ["Verkaufschancen"], "columns": [
            {"target": "name", "sources": ["Name"], "transform": "text", "required": True},
            _lookup("customerid_account", "SDObjMemberCode", "customers", required=True),
            _owner("BCode"),
        ]},
        {"name": "quotes", "phase": 5, "target": "quote", "sources": ["Angebot"], "columns": [
            {"target": "name", "sources": ["Nummer"], "transform": "text", "required": True},
            _lookup("customerid_account", "SDObjMemberCode", "customers", required=True),
            _owner("BenutzerCode"),
        ]},
        {"name": "invoices", "phase": 5, "target": "opportunity", "sources": ["Rechnung"],
         "columns": [
            {"target": "name", "sources": ["Nummer"], "transform": "text", "required": True},
            _lookup("customerid_account", "SDObjMemberCode", "customers", required=True),
            _owner("BenutzerCode"),
         ]},
        {"name": "quote_lines", "phase": 5, "target": "quotedetail", "sources": ["Positionen"],
         "filter": {"column": "BZObjType", "op": "eq", "value": 6}, "columns": [
            _lookup("quoteid", "BZObjMemberCode", "quotes", required=True),
            {"target": "quantity", "sources": ["Anzahl"], "transform": "decimal"},
            {"target": "priceperunit", "sources": ["EinzPreis"], "transform": "money"},
        ]},
        {"name": "invoice_lines", "phase": 5, "target": "opportunityproduct",
         "sources": ["Positionen"], "filter": {"column": "BZObjType", "op": "eq", "value": 7},
         "columns": [
            _lookup("opportunityid", "BZObjMemberCode", "invoices", required=True),
            {"target": "quantity", "sources": ["Anzahl"], "transform": "decimal"},
         ]},
        _activity("phonecalls", "Telefonate", "phonecall", "Titel"),
        _activity("tasks", "Whattodos", "task", "Titel"),
        _activity("appointments", "Termine", "appointment", "Titel"),
        _activity("emails", "Briefe", "email", "Betreff"),
        _activity("visit_reports", "Kontaktbericht", "appointment", "Thema"),
        {"name": "open_items", "phase": 8, "target": "w4a_openitem", "sources": ["RA"],
         "custom_table": True, "columns": [
            {"target": "w4a_name", "sources": ["RNummer"], "transform": "text", "custom": True,
             "type": "string", "max_length": 100, "required": True},
            {"target": "w4a_grossamount", "transform": "constant", "custom": True,
             "type": "money"},
            {"target": "w4a_paidamount", "transform": "constant", "custom": True,
             "type": "money"},
            {"target": "w4a_openamount", "transform": "constant", "custom": True,
             "type": "money"},
            _lookup("w4a_customer", "SDObjMemberCode", "customers", required=True),
         ]},
    ],
}  # fmt: skip
"""A small map covering every defect class; the default map is tested the same way."""


def _maps() -> dict[str, MigrationMap]:
    maps = {"test": parse_map(TEST_MAP)}
    try:
        from producers.mapping.default import default_map
    except ImportError:
        return maps
    maps["default"] = default_map()
    return maps


MAPS = _maps()


def _export(root: Path, form: ExportForm, defects: str) -> Path:
    out = root / f"{form.value}-{defects}"
    generate(out=str(out), customers=CUSTOMERS, form=form, seed=SEED, defects=defects, quiet=True)
    return out


def _extracted_log(root: Path, form: ExportForm, defects: str) -> tuple[str, Path]:
    out = _export(root, form, defects)
    url = f"sqlite:///{root / f'ledger-{form.value}-{defects}.db'}"
    with open_log(url) as log:
        extract(out / "work4all.db" if form is ExportForm.SQL else out, log, run_id=RUN)
    return url, out


def _decisions(log: EventLog, run_id: str = RUN) -> dict[str, Event]:
    return {
        stored.event.key: stored.event
        for stored in log.read([Topic.DECISIONS])
        if stored.event.run_id == run_id
    }


class Transformed(NamedTuple):
    """An export transformed under one map."""

    url: str
    migration_map: MigrationMap
    manifest: dict[str, Any]
    export: Path
    map_name: str


def _codes(event: Event) -> set[str]:
    if event.type == TransformDecided.event_type:
        return {reason_code(text) for text in event.payload["notes"]}
    return {reason_code(text) for reasons in event.payload["reasons"].values() for text in reasons}


@pytest.fixture(scope="module", params=[(m, f) for m in MAPS for f in ("sql", "csv")],
                ids=lambda p: f"{p[0]}-{p[1]}")  # fmt: skip
def transformed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Transformed:
    """A default-defects export extracted and transformed."""
    map_name, form = request.param
    root = tmp_path_factory.mktemp(f"stage-{map_name}-{form}")
    url, out = _extracted_log(root, ExportForm(form), "default")
    migration_map = MAPS[map_name]
    with open_log(url) as log:
        confirm(log, migration_map, by="test")
        transform_run(log, migration_map, run_id=RUN, files=out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return Transformed(url, migration_map, manifest, out, map_name)


def test_every_extracted_record_of_a_mapped_table_has_exactly_one_decision(
    transformed: Transformed,
) -> None:
    url, migration_map, _, _, _ = transformed
    mapped = {source for obj in migration_map.objects for source in obj.sources[:1]}
    with open_log(url) as log:
        extracted = {
            stored.event.key
            for stored in log.read([Topic.SOURCE])
            if stored.event.run_id == RUN and stored.event.payload["table"] in mapped
        }
        counts = decision_key_counts(log, RUN)
    assert set(counts) == extracted
    assert set(counts.values()) == {1}


def test_per_object_extracted_equals_decided_plus_rejected(
    transformed: Transformed,
) -> None:
    url, migration_map, _, export, _ = transformed
    with open_log(url) as log:
        summary = transform_run(log, migration_map, run_id=RUN, files=export)
    assert summary.appended == 0
    for name, counts in summary.objects.items():
        assert counts.extracted == counts.decided + counts.rejected, name
    assert summary.records == summary.already_in_log


@pytest.mark.parametrize("defect", list(Defect), ids=str)
def test_every_injected_defect_ends_as_a_rejection_or_note_with_its_reason(
    transformed: Transformed, defect: Defect, request: pytest.FixtureRequest
) -> None:
    url, _, manifest, _, map_name = transformed
    if (map_name, defect) in KNOWN_MAP_GAPS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_MAP_GAPS[map_name, defect]))
    with open_log(url) as log:
        decisions = _decisions(log)
    missing = []
    for entry in manifest["defects"][defect.value]:
        key = f"{entry['table']}:{entry['Code']}"
        event = decisions.get(key)
        codes = _codes(event) if event is not None else set()
        if not codes & EXPECTED_REASONS[defect]:
            missing.append((key, entry["column"], sorted(codes)))
    assert not missing, f"{len(missing)} of {len(manifest['defects'][defect.value])}: {missing[:5]}"


def test_a_duplicate_is_rejected_and_its_contacts_bind_to_the_survivor(
    transformed: Transformed,
) -> None:
    url, _, manifest, _, _ = transformed
    with open_log(url) as log:
        decisions = _decisions(log)
    duplicates = manifest["defects"][Defect.DUPLICATE_CUSTOMER.value]
    assert duplicates
    for entry in duplicates:
        event = decisions[f"Kunden:{entry['Code']}"]
        assert event.type == RecordRejected.event_type
        survivor = event.payload["reasons"]["(record)"][0].split()[1]
        kept = decisions[survivor]
        assert kept.type == TransformDecided.event_type
        assert any(f"Kunden:{entry['Code']}" in text for text in kept.payload["notes"])


def test_a_clean_export_has_no_rejections(tmp_path: Path) -> None:
    url, out = _extracted_log(tmp_path, ExportForm.SQL, "none")
    for migration_map in MAPS.values():
        with open_log(url) as log:
            confirm(log, migration_map, by="test")
            summary = transform_run(log, migration_map, run_id=RUN, files=out)
            rejected = [
                event for event in _decisions(log).values()
                if event.type == RecordRejected.event_type
            ]  # fmt: skip
        assert summary.records > 0
        assert not rejected, rejected[:3]


def test_transforming_needs_a_confirmation_of_exactly_this_map(tmp_path: Path) -> None:
    url, _ = _extracted_log(tmp_path, ExportForm.SQL, "none")
    migration_map = MAPS["test"]
    with open_log(url) as log:
        with pytest.raises(MapNotConfirmedError, match="has not been confirmed"):
            transform_run(log, migration_map, run_id=RUN)
        assert not _decisions(log)
        confirm(log, migration_map, by="test")
        edited = migration_map.model_copy(update={"map_version": "test-edited"})
        with pytest.raises(MapNotConfirmedError, match="edited after it was confirmed"):
            transform_run(log, edited, run_id=RUN)
        assert not _decisions(log)
        confirm(log, edited, by="test")
        assert transform_run(log, edited, run_id=RUN).appended > 0


def test_rerunning_appends_nothing(tmp_path: Path) -> None:
    url, _ = _extracted_log(tmp_path, ExportForm.SQL, "default")
    migration_map = MAPS["test"]
    with open_log(url) as log:
        confirm(log, migration_map, by="test")
        first = transform_run(log, migration_map, run_id=RUN)
        end = log.end_position([Topic.DECISIONS])
        again = transform_run(log, migration_map, run_id=RUN)
        assert log.end_position([Topic.DECISIONS]) == end
    assert first.appended == first.records > 0
    assert again.appended == 0
    assert again.already_in_log == first.records


# --- domain rules on hand-made records ---------------------------------------------------------


def _source(table: str, key: int, **values: Any) -> Event:
    payload = SourceRecordExtracted(
        table=table, source_key=str(key), raw=dict(values), normalised=dict(values),
        content_hash=content_hash(values),
    )  # fmt: skip
    return Event.create(payload, run_id=RUN, key=f"{table}:{key}", cause=payload.content_hash)


def _hand_made(tmp_path: Path, events: list[Event]) -> dict[str, Event]:
    with open_log(f"sqlite:///{tmp_path / 'hand.db'}") as log:
        log.append(events)
        migration_map = MAPS["test"]
        confirm(log, migration_map, by="test")
        transform_run(log, migration_map, run_id=RUN)
        return _decisions(log)


def test_a_company_that_is_customer_and_supplier_becomes_one_account(tmp_path: Path) -> None:
    firm = {"Firma1": "Müller Haustechnik GmbH", "Plz": "92224", "Straße": "Bahnhofstraße 12"}
    decisions = _hand_made(
        tmp_path,
        [
            _source("Kunden", 1, Code=1, Nummer=10001, VertreterCode=None, **firm),
            _source("Lieferanten", 2, Code=2, Nummer=70001, **firm | {"Straße": "Bahnhofstr. 12"}),
        ],
    )
    customer, supplier = decisions["Kunden:1"], decisions["Lieferanten:2"]
    assert supplier.type == TransformDecided.event_type
    assert supplier.payload["target_id"] == customer.payload["target_id"] == target_id("Kunden", 1)
    assert supplier.payload["payload"] == {"w4a_issupplier": True}
    assert "supplier_merged" in _codes(supplier)
    assert "supplier_merged" in _codes(customer)


def test_a_contact_of_a_rejected_customer_is_rejected_not_orphaned(tmp_path: Path) -> None:
    decisions = _hand_made(
        tmp_path,
        [
            _source("Kunden", 1, Code=1, Firma1=None, Nummer=1),
            _source("KAnsprechp", 5, KAnsprechpCode=5, KundenCode=1, Name="Schmidt"),
        ],
    )
    assert decisions["Kunden:1"].payload["reasons"]["name"][0].startswith("required_missing")
    contact = decisions["KAnsprechp:5"]
    assert contact.type == RecordRejected.event_type
    assert "lookup_unresolved" in _codes(contact)


def test_an_open_item_is_gross_minus_its_payments_with_a_note_on_disagreement(
    tmp_path: Path,
) -> None:
    decisions = _hand_made(
        tmp_path,
        [
            _source("Kunden", 1, Code=1, Firma1="Firma", Nummer=1, VertreterCode=None),
            _source(
                "RA",
                9,
                Code=9,
                RNummer=240001,
                SDObjMemberCode=1,
                RBetrag="100.00",
                RMwst="19.00",
                BezSumme="119.00",
            ),
            _source("RABezSumme", 20, Code=20, RACode=9, Summe="50.00"),
            _source("RABezSumme", 21, Code=21, RACode=9, Summe="19.00"),
        ],
    )
    item = decisions["RA:9"].payload
    assert item["payload"] == {
        "w4a_name": "240001", "w4a_grossamount": 119.0, "w4a_paidamount": 69.0,
        "w4a_openamount": 50.0,
    }  # fmt: skip
    assert [reason_code(text) for text in item["notes"]] == ["payment_mismatch"]
    assert "RABezSumme:20" not in decisions


def test_a_departed_owner_falls_back_with_a_warning(tmp_path: Path) -> None:
    decisions = _hand_made(
        tmp_path,
        [
            _source(
                "Mitarbeiter",
                7,
                Code=7,
                Vorname="Eva",
                Name="Alt",
                eMail="eva@x.de",
                Ausgeschieden=True,
            ),
            _source("Kunden", 1, Code=1, Firma1="Firma", Nummer=1, VertreterCode=7),
        ],
    )
    account = decisions["Kunden:1"].payload
    fallback = "/systemusers(internalemailaddress='admin@contoso.example')"
    assert account["binds"]["ownerid"] == fallback
    assert [reason_code(text) for text in account["notes"]] == ["owner_departed"]


def test_a_rejection_keeps_the_warnings_it_had(tmp_path: Path) -> None:
    decisions = _hand_made(
        tmp_path,
        [
            _source(
                "KAnsprechp",
                5,
                KAnsprechpCode=5,
                KundenCode=99,
                Name="Schmidt",
                **{"E-Mail": "a@@b"},
            )
        ],
    )
    reasons = decisions["KAnsprechp:5"].payload["reasons"]
    assert [reason_code(text) for text in reasons[WARNINGS_KEY]] == ["invalid_email"]


# --- the command -------------------------------------------------------------------------------


def test_the_command_refuses_an_unconfirmed_map_then_transforms_once_confirmed(
    tmp_path: Path,
) -> None:
    url, _ = _extracted_log(tmp_path, ExportForm.SQL, "none")
    map_file = tmp_path / "map.yaml"
    save_map(MAPS["test"], map_file)
    runner = CliRunner()
    env = {"CRMLEDGER_LOG_URL": url}
    args = ["transform", "--map", str(map_file), "--run", RUN]

    refused = runner.invoke(app, args, env=env)
    assert refused.exit_code == 1
    assert "has not been confirmed" in refused.output
    assert "Traceback" not in refused.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("objects: [", encoding="utf-8")
    broken = runner.invoke(app, ["transform", "--map", str(bad)], env=env)
    assert broken.exit_code == 1
    assert "not valid YAML" in broken.output

    with open_log(url) as log:
        confirm(log, MAPS["test"], by="test")
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    assert "transform of run 't'" in done.output
    with open_log(url) as log:
        decided = Counter(event.type for event in _decisions(log).values())
    assert decided[TransformDecided.event_type] > 0
    again = runner.invoke(app, args, env=env)
    assert "0 events appended" in again.output
