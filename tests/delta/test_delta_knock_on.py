"""Knock-ons of a delta run: records that did not change but whose decision did.

A delta run must leave Dataverse as a fresh migration of the newer export would. When a
duplicate group loses its survivor, or an account is deleted while its contacts and activities
stay, records the newer export leaves untouched are decided otherwise: the delta run appends
them with a ``knock_on`` note, writes them, and withdraws the rows of those now rejected (by the
run's deletion mode), as it deletes the rows of deleted records.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.dataverse.client import client_from_settings
from consumers.delta import DeltaMigrationSummary, migrate_delta, withdrawal_totals
from consumers.reconcile import GateThresholds
from consumers.rollback import rollback
from ledger.event_types import (
    DestinationDeleteIntended,
    DestinationRowDeleted,
    DestinationWritten,
    RecordRejected,
    SourceDeletionFlagged,
    SourceRecordDeleted,
    TransformDecided,
)
from ledger.events import Event
from ledger.log import open_log
from producers.delta import DeletionMode, detect
from producers.mapping.default import default_map
from producers.mapping.rules import WARNINGS_KEY
from producers.mapping.stage import CLEARED_BIND, KNOCK_ON
from producers.work4all.cli import ExportForm, generate
from tests.delta.knock_on_data import KnockOnGenerations, knock_on_generations
from tests.delta.test_delta import _migrate, _rows
from tests.migration.conftest import Target, target_for

BASE, DELTA, FRESH = "base", "delta-1", "fresh"
CUSTOMERS = 60
DELTA_GATES = GateThresholds(max_rejected_share=1.0)
"""The delta run is small and rejecting records is its point (every contact it decides is
rejected): its gates check the invariants only, not the share of rejections."""


@pytest.fixture(scope="module")
def knock_on(tmp_path_factory: pytest.TempPathFactory) -> KnockOnGenerations:
    """A 60-customer export (SQLite form) and a newer one with the knock-on edits."""
    folder = tmp_path_factory.mktemp("knock-on-export")
    generate(out=str(folder), customers=CUSTOMERS, form=ExportForm.SQL, quiet=True)
    return knock_on_generations(folder, tmp_path_factory.mktemp("knock-on-export-newer"))


@dataclass
class DeltaOutcome:
    """A base migration, then a delta run of the newer export, as the log and emulator hold it."""

    target: Target
    base_digest: str
    base_rows: dict[tuple[str, str], dict[str, Any]]
    summary: DeltaMigrationSummary
    events: list[Event]
    """the delta run's events."""

    def of_type(self, event_type: str) -> dict[str, Event]:
        """The delta run's events of one type, by key (the latest per key)."""
        return {e.key: e for e in self.events if e.type == event_type}


def _content_digest(target: Target) -> str:
    emulator = target.emulator
    assert emulator.cert_path is not None
    context = ssl.create_default_context(cafile=str(emulator.cert_path))
    url = emulator.root_url.rstrip("/") + "/_emulator/digest?content=true"
    return str(httpx.get(url, verify=context, timeout=30).json()["digest"])


@pytest.fixture
def delta_run(
    request: pytest.FixtureRequest,
    knock_on: KnockOnGenerations,
    tls_dir: Path,
    tmp_path: Path,
) -> Iterator[DeltaOutcome]:
    """Migrate the first export as ``base``, then the newer one as delta run ``delta-1`` in the
    deletion mode the test is parametrized with."""
    mode: DeletionMode = request.param
    with target_for(
        knock_on.first, tls_dir, log_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        db_url=f"sqlite:///{tmp_path / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        base_digest, base_rows = _content_digest(target), _rows(target)
        with open_log(target.settings.log_url) as log:
            detect(knock_on.newer, log, run_id=DELTA, base_run=BASE, deletions=mode)
            with client_from_settings(target.settings) as client:
                summary = migrate_delta(
                    log, client, default_map(), run_id=DELTA, thresholds=DELTA_GATES
                )
            events = [stored.event for stored in log.read() if stored.event.run_id == DELTA]
        yield DeltaOutcome(target, base_digest, base_rows, summary, events)


def _warnings(event: Event) -> list[str]:
    return list(event.payload["reasons"].get(WARNINGS_KEY, []))


def _knocked_on(event: Event) -> bool:
    texts = (
        event.payload["notes"] if event.type == TransformDecided.event_type else _warnings(event)
    )
    return any(text.startswith(f"{KNOCK_ON}: ") for text in texts)


def _row(target: Target, table: str, row_id: str) -> dict[str, Any] | None:
    emulator = target.emulator.emulator
    found = emulator.store.get(emulator.schema.table(table).space, row_id.lower())
    return None if found is None else dict(found[2])


@pytest.mark.parametrize("delta_run", ["delete"], indirect=True)
def test_knock_ons_are_decided_anew_withdrawn_when_rejected_and_match_a_fresh_migration(
    delta_run: DeltaOutcome, knock_on: KnockOnGenerations, tls_dir: Path, tmp_path: Path
) -> None:
    edits, outcome = knock_on.edits, delta_run
    summary = outcome.summary
    assert summary.passed, (summary.stopped, summary.failures)
    decided = outcome.of_type(TransformDecided.event_type)
    rejected = outcome.of_type(RecordRejected.event_type)
    deleted_rows = outcome.of_type(DestinationRowDeleted.event_type)
    intents = outcome.of_type(DestinationDeleteIntended.event_type)
    print(
        f"delta run: {len(decided)} decided, {len(rejected)} rejected,"
        f" {sum(map(_knocked_on, (*decided.values(), *rejected.values())))} knock-ons;"
        f" withdrawals {dict(withdrawal_totals(summary))}"
    )

    # (a) the duplicate whose survivor was deleted is decided now, as its own row
    assert edits.survivor in outcome.of_type(SourceRecordDeleted.event_type)
    twin = decided[edits.duplicate]
    assert _knocked_on(twin)
    assert "rejected before, decided now" in " ".join(twin.payload["notes"])
    assert edits.survivor in deleted_rows
    assert _row(outcome.target, "account", twin.payload["target_id"]) is not None

    # (b) what required the deleted account is rejected and withdrawn; activities lose the link
    contacts = edits.children["KAnsprechp"]
    for key in contacts:
        assert _knocked_on(rejected[key]), rejected[key].payload
    quotes = edits.children.get("Angebot", [])
    for key in quotes:
        assert key in rejected
    activities = [
        key
        for table in ("Telefonate", "Termine", "Whattodos")
        for key in edits.children.get(table, [])
    ]
    assert activities
    for key in activities:
        event = decided[key]
        assert _knocked_on(event)
        assert CLEARED_BIND in event.payload["binds"].values(), event.payload["binds"]
        assert any("binds regardingobjectid" in n for n in event.payload["notes"])
    for key in [*contacts, *quotes]:
        withdrawal = deleted_rows[key]
        assert withdrawal.causation_id == rejected[key].event_id
        assert withdrawal.payload["reason"].startswith("rejected by the delta: "), withdrawal
        assert intents[key].causation_id == rejected[key].event_id
        row = _row(
            outcome.target, withdrawal.payload["target_table"], withdrawal.payload["target_id"]
        )
        assert row is None

    # (c) a changed record that lost a required value is withdrawn, not a knock-on
    emptied = rejected[edits.emptied_contact]
    assert not _knocked_on(emptied)
    assert "required_missing" in deleted_rows[edits.emptied_contact].payload["reason"]
    # withdrawals run children first: every contact before the account it hung from
    order = [e.key for e in outcome.events if e.type == DestinationRowDeleted.event_type]
    assert all(order.index(key) < order.index(edits.account) for key in contacts)
    totals = withdrawal_totals(summary)
    assert totals["deleted"] == len(
        [
            e
            for e in deleted_rows.values()
            if e.causation_id in {r.event_id for r in rejected.values()}
        ]
    )
    assert totals["failed"] == totals["flagged"] == 0

    delta_rows = _rows(outcome.target)
    with target_for(
        knock_on.newer, tls_dir, log_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        db_url=f"sqlite:///{tmp_path / 'fresh-projections.db'}", run_id=FRESH,
    ) as fresh:  # fmt: skip
        _migrate(fresh, FRESH)
        fresh_rows = _rows(fresh)
    only_delta = sorted(set(delta_rows) - set(fresh_rows))
    only_fresh = sorted(set(fresh_rows) - set(delta_rows))
    assert not only_delta, only_delta[:5]
    assert not only_fresh, only_fresh[:5]
    differing = {
        key: {c: (delta_rows[key].get(c), fresh_rows[key].get(c))
              for c in set(delta_rows[key]) | set(fresh_rows[key])
              if delta_rows[key].get(c) != fresh_rows[key].get(c)}
        for key in delta_rows if delta_rows[key] != fresh_rows[key]
    }  # fmt: skip
    assert not differing, list(differing.items())[:5]

    # rolling the delta run back re-creates what it withdrew and gives back the base content
    settings = outcome.target.settings
    with open_log(settings.log_url) as log, client_from_settings(settings) as client:
        rolled_back = rollback(log, client, run_id=DELTA)
    print(
        f"rollback: re-created {dict(rolled_back.recreated)}, restored {dict(rolled_back.restored)}"
    )
    assert not rolled_back.failed, rolled_back.failed[:3]
    restored = _rows(outcome.target)
    changed = {
        row: {c: (outcome.base_rows[row].get(c), restored[row].get(c))
              for c in set(outcome.base_rows[row]) | set(restored[row])
              if outcome.base_rows[row].get(c) != restored[row].get(c)}
        for row in set(restored) & set(outcome.base_rows) if restored[row] != outcome.base_rows[row]
    }  # fmt: skip
    assert set(restored) == set(outcome.base_rows), set(restored) ^ set(outcome.base_rows)
    assert not changed, sorted(changed.items())
    assert _content_digest(outcome.target) == outcome.base_digest


@pytest.mark.parametrize("delta_run", ["deactivate"], indirect=True)
def test_rows_of_records_the_delta_rejects_are_deactivated_in_deactivate_mode(
    delta_run: DeltaOutcome, knock_on: KnockOnGenerations
) -> None:
    edits, outcome = knock_on.edits, delta_run
    assert outcome.summary.passed, (outcome.summary.stopped, outcome.summary.failures)
    rejected = outcome.of_type(RecordRejected.event_type)
    written = {
        e.key: e
        for e in outcome.events
        if e.type == DestinationWritten.event_type and e.causation_id is not None
        and e.key in rejected and e.causation_id == rejected[e.key].event_id
    }  # fmt: skip
    withdrawn = [*edits.children["KAnsprechp"], edits.emptied_contact]
    for key in withdrawn:
        event = written[key]
        assert event.payload["op"] == "update"
        assert event.payload["before_image"]["statecode"] == 0
        row = _row(outcome.target, "contact", event.payload["target_id"])
        assert row is not None
        assert row["statecode"] == 1, row
    assert not outcome.of_type(DestinationRowDeleted.event_type).keys() & set(withdrawn)
    flagged = [e for e in outcome.events if e.type == SourceDeletionFlagged.event_type]
    # rows without a state (quote lines, notes) cannot be deactivated: flagged with the reason
    assert all("no state to deactivate" in e.payload["reason"] for e in flagged), flagged[:2]
    assert withdrawal_totals(outcome.summary)["deactivated"] == len(written)
