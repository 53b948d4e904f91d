"""One counting rule for reconciliation: hand-built runs through the pure rule, the gate and the
projection, and a real delta run whose gate, live counts, projection and CLI agree."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.delta import delta_phase_counts, migrate_delta
from consumers.migrate import InProcessStages, MigrationRequest, migrate
from consumers.reconcile import GateThresholds, latest_reconciliation, phase_counts
from ledger.cli import app
from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationRowDeleted,
    DestinationWriteFailed,
    DestinationWritten,
    FieldMismatch,
    PhaseStarted,
    RecordRejected,
    RecordVerified,
    SourceDeletionFlagged,
    SourceRecordChanged,
    SourceRecordDeleted,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event, EventPayload
from ledger.log import EventLog, open_log
from producers.delta import detect
from producers.mapping.default import default_map
from projections.counting import ALL_NAMES, COUNT_NAMES, run_counts
from projections.db import create_db_engine, upgrade
from projections.runner import ProjectionRunner
from projections.tables import reconciliation_counts
from tests.delta.conftest import Generations, generations, tls_dir  # noqa: F401  (fixtures)
from tests.migration.conftest import target_for

RUN = "r1"


def _event(
    payload: EventPayload, key: str, *, phase: int | None = None, cause: str = "1",
    causation: Event | None = None, run_id: str = RUN,
) -> Event:  # fmt: skip
    return Event.create(
        payload, run_id=run_id, key=key, cause=cause,
        phase=str(phase) if phase is not None else None,
        causation_id=causation.event_id if causation is not None else None,
    )  # fmt: skip


def _id(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def extracted(key: str, *, changed: bool = False) -> Event:
    table, code = key.split(":", 1)
    if changed:
        payload: EventPayload = SourceRecordChanged(
            table=table, source_key=code, raw={}, normalised={}, content_hash=key + "'",
            previous_hash=key,
        )  # fmt: skip
    else:
        payload = SourceRecordExtracted(
            table=table, source_key=code, raw={}, normalised={}, content_hash=key
        )
    return _event(payload, key)


def deleted(key: str) -> Event:
    table, code = key.split(":", 1)
    return _event(SourceRecordDeleted(table=table, source_key=code, previous_hash=key), key)


def decided(key: str, phase: int = 1, *notes: str, cause: str = "1") -> Event:
    payload = TransformDecided(
        target_table="account", target_id=_id(key), payload={"name": key}, notes=list(notes)
    )
    return _event(payload, key, phase=phase, cause=cause)


def rejected(key: str, phase: int = 1, *reasons: str) -> Event:
    return _event(RecordRejected(reasons={"(record)": list(reasons)}), key, phase=phase)


def written(key: str, cause: Event, *, phase: int = 1, op: Any = "create", n: str = "1") -> Event:
    payload = DestinationWritten(target_table="account", target_id=_id(key), op=op)
    return _event(payload, key, phase=phase, cause=f"w{n}", causation=cause)


def failed(key: str, cause: Event, *, phase: int = 1, n: str = "1") -> Event:
    payload = DestinationWriteFailed(
        target_table="account", target_id=_id(key), status=400, error_code="0x0", message="bad"
    )
    return _event(payload, key, phase=phase, cause=f"f{n}", causation=cause)


def verified(key: str, write: Event) -> Event:
    payload = RecordVerified(target_table="account", target_id=_id(key))
    phase = int(write.phase) if write.phase else None
    return _event(payload, key, phase=phase, causation=write, cause=f"v{write.event_id}")


def mismatched(key: str, write: Event) -> Event:
    payload = FieldMismatch(
        target_table="account", target_id=_id(key), column="name", expected="a", actual="b"
    )
    return _event(payload, key, phase=1, causation=write, cause=f"m{write.event_id}")


def undone(key: str, write: Event, *, restored: bool = False) -> Event:
    payload: EventPayload = (
        DestinationRestored(target_table="account", target_id=_id(key), restored={})
        if restored
        else DestinationDeleted(target_table="account", target_id=_id(key))
    )
    return _event(payload, key, phase=1, causation=write, cause=f"u{write.event_id}")


def started(phase: int, *objects: str) -> Event:
    payload = PhaseStarted(phase_number=phase, objects=list(objects))
    return _event(payload, f"phase:{phase}", phase=phase, cause=f"s{phase}")


def migrated(key: str, phase: int = 1) -> list[Event]:
    """A record extracted, decided, written and verified."""
    decision = decided(key, phase)
    write = written(key, decision, phase=phase)
    return [extracted(key), decision, write, verified(key, write)]


def counts(events: list[Event], phase: int = 1) -> dict[str, dict[str, int]]:
    return run_counts(events, RUN).get(phase, {})


def only(row: dict[str, int]) -> dict[str, int]:
    """The row's counts that are not zero."""
    return {name: count for name, count in row.items() if count}


# --- the rule ----------------------------------------------------------------------------------


def test_records_extracted_or_changed_both_count_as_extracted_each_once() -> None:
    events = [*migrated("Kunden:1"), extracted("Kunden:1"),  # re-read: still one record
              extracted("Kunden:2", changed=True), decided("Kunden:2")]  # fmt: skip
    write = written("Kunden:2", events[-1])
    events += [write, verified("Kunden:2", write)]

    assert only(counts(events)["Kunden"]) == {
        "extracted": 2, "decided": 2, "written": 2, "verified": 2
    }  # fmt: skip


def test_a_knock_on_redecision_of_an_unchanged_record_counts_as_extracted() -> None:
    changed = [extracted("Kunden:1", changed=True), decided("Kunden:1")]
    knock_on = decided("KAnsprechp:7", 2, "knock_on: its account Kunden:1 changed")
    knock_rejected = _event(  # as the transform marks one: a warning, not a reason
        RecordRejected(reasons={"parentcustomerid": ["orphan_contact: no account"],
                                "_warnings": ["knock_on: decision changed by the delta"]}),
        "KAnsprechp:8", phase=2,
    )  # fmt: skip
    plain = decided("KAnsprechp:9", 2, "some note")  # no source event, no knock-on: not extracted

    phase_two = counts([*changed, knock_on, knock_rejected, plain], phase=2)["KAnsprechp"]

    assert only(phase_two) == {"extracted": 2, "decided": 2, "rejected": 1}


def test_a_knock_on_note_is_not_a_reason_to_count_a_rejection_as_a_data_problem() -> None:
    events = [
        extracted("Kunden:1"),
        rejected("Kunden:1", 1, "filtered_out: no object", "knock_on: x"),
    ]

    assert only(counts(events)["Kunden"]) == {"extracted": 1, "rejected": 1, "excluded": 1}


def test_deletions_are_neither_extracted_nor_written_and_have_columns_of_their_own() -> None:
    gone, flagged, failing = deleted("Kunden:5"), deleted("Kunden:6"), deleted("Kunden:7")
    deactivation = written("Kunden:5", gone, op="update")  # keyed by the deleted record
    events = [
        started(1, "Kunden"), *migrated("Kunden:1"), gone, flagged, failing, deactivation,
        _event(SourceDeletionFlagged(reason="never written"), "Kunden:6", causation=flagged),
        failed("Kunden:7", failing),
        deleted("Kunden:8"),
        _event(DestinationRowDeleted(target_table="account", target_id=_id("Kunden:8"),
                                     before_image={}), "Kunden:8", phase=1, cause="d"),
    ]  # fmt: skip

    row = counts(events)["Kunden"]

    assert only(row) == {
        "extracted": 1, "decided": 1, "written": 1, "verified": 1, "source_deleted": 4,
        "deactivated": 1, "flagged": 1, "deletion_failed": 1, "deleted": 1,
    }  # fmt: skip


def test_deletions_count_in_the_lowest_phase_listing_their_table_or_in_phase_0() -> None:
    events = [started(2, "Telefonate"), started(6, "Telefonate", "Briefe"), deleted("Telefonate:1"),
              deleted("Mitarbeiter:1")]  # fmt: skip

    by_phase = run_counts(events, RUN)

    assert by_phase[2]["Telefonate"]["source_deleted"] == 1
    assert 6 not in by_phase
    assert by_phase[0]["Mitarbeiter"]["source_deleted"] == 1


def test_a_write_caused_by_anything_but_the_records_decision_is_not_written() -> None:
    decision = decided("Kunden:1")
    stranger = extracted("Kunden:99")
    events = [extracted("Kunden:1"), decision, written("Kunden:1", stranger)]

    assert only(counts(events)["Kunden"]) == {"extracted": 1, "decided": 1}


def test_an_undone_write_and_its_checks_do_not_count() -> None:
    decision = decided("Kunden:1")
    write = written("Kunden:1", decision)
    update_decision = decided("Kunden:2")
    update = written("Kunden:2", update_decision, op="update")
    events = [
        extracted("Kunden:1"), decision, write, verified("Kunden:1", write),
        undone("Kunden:1", write),
        extracted("Kunden:2"), update_decision, update, mismatched("Kunden:2", update),
        undone("Kunden:2", update, restored=True),
    ]  # fmt: skip

    assert only(counts(events)["Kunden"]) == {"extracted": 2, "decided": 2}


def test_a_remigrated_record_counts_its_latest_write_that_was_not_undone_once() -> None:
    decision = decided("Kunden:1")
    first = written("Kunden:1", decision, n="1")
    second_failed = failed("Kunden:1", decision, n="2")
    second = written("Kunden:1", decision, n="3")
    events = [
        extracted("Kunden:1"), decision, first, verified("Kunden:1", first),
        undone("Kunden:1", first), second_failed, second, verified("Kunden:1", second),
    ]  # fmt: skip

    assert only(counts(events)["Kunden"]) == {
        "extracted": 1, "decided": 1, "written": 1, "verified": 1
    }  # fmt: skip
    # undoing the latest write falls back to the previous outcome not undone: the failure
    events.append(undone("Kunden:1", second))
    assert only(counts(events)["Kunden"]) == {"extracted": 1, "decided": 1, "failed": 1}


def test_only_the_latest_decision_counts_and_its_own_writes() -> None:
    first = decided("Kunden:1", 1, cause="a")
    write = written("Kunden:1", first)
    again = decided("Kunden:1", 1, cause="b")  # decided anew: the earlier write is not its write
    events = [extracted("Kunden:1"), first, write, verified("Kunden:1", write), again]

    assert only(counts(events)["Kunden"]) == {"extracted": 1, "decided": 1}


def test_a_rejection_withdrawing_a_written_row_counts_the_withdrawal_as_a_deletion() -> None:
    decision = rejected("Kunden:1", 1, "missing_name: empty")
    withdrawal = written("Kunden:1", decision, op="update")

    events = [started(1, "Kunden"), extracted("Kunden:1", changed=True), decision, withdrawal]

    row = counts(events)["Kunden"]

    assert only(row) == {"extracted": 1, "rejected": 1, "deactivated": 1}


def test_the_gate_and_the_delta_gate_count_by_the_same_rule(log: EventLog) -> None:
    decision = decided("Kunden:2")
    gone = deleted("Kunden:3")
    log.append([started(1, "Kunden"), *migrated("Kunden:1"), extracted("Kunden:2", changed=True),
                decision, written("Kunden:2", decision), gone,
                written("Kunden:3", gone, op="update")])  # fmt: skip

    gate = phase_counts(log, run_id=RUN, phase=1)

    assert gate == delta_phase_counts(log, RUN, 1)
    assert gate == {"Kunden": {**dict.fromkeys(COUNT_NAMES, 0), "extracted": 2, "decided": 2,
                               "written": 2, "verified": 1}}  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    """A fresh embedded event log."""
    with open_log(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def _projected(db_url: str, run_id: str) -> dict[int, dict[str, dict[str, int]]]:
    engine = create_db_engine(db_url)
    found: dict[int, dict[str, dict[str, int]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(
            select(reconciliation_counts).where(reconciliation_counts.c.run_id == run_id)
        ).mappings():
            found.setdefault(int(row["phase"]), {})[str(row["source_table"])] = {
                name: int(row[name]) for name in ALL_NAMES
            }
    engine.dispose()
    return found


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_the_projection_counts_incrementally_what_the_rule_counts_from_the_whole_log(
    log: EventLog, tmp_path: Path, batch_size: int
) -> None:
    decision = decided("Kunden:2")
    first, second = written("Kunden:2", decision, n="1"), written("Kunden:2", decision, n="2")
    gone = deleted("Kunden:3")
    log.append([started(1, "Kunden"), *migrated("Kunden:1"), extracted("Kunden:2", changed=True),
                decision, first, undone("Kunden:2", first), second, verified("Kunden:2", second),
                gone, written("Kunden:3", gone, op="update"), extracted("Kunden:4"),
                decided("KAnsprechp:1", 2, "knock_on: x"), started(2, "KAnsprechp"),
                *migrated("Briefe:1", 6), extracted("Briefe:2"), started(7, "Briefe")])  # fmt: skip
    db_url = f"sqlite:///{tmp_path / f'projections-{batch_size}.db'}"
    engine = create_db_engine(db_url)
    upgrade(engine)
    ProjectionRunner(log, engine, batch_size=batch_size).run()
    engine.dispose()

    expected = run_counts((stored.event for stored in log.read()), RUN)
    assert _projected(db_url, RUN) == expected
    assert expected[1]["Kunden"]["extracted"] == 3  # Kunden:4 is extracted, not yet decided
    assert expected[7]["Briefe"]["extracted"] == 1  # undecided Briefe:2 counts in phase 7 too
    for phase in expected:
        gate = phase_counts(log, run_id=RUN, phase=phase)
        assert gate == {t: {n: row[n] for n in COUNT_NAMES} for t, row in expected[phase].items()}


# --- a real delta run --------------------------------------------------------------------------

BASE, DELTA = "base", "delta-1"
GATES = GateThresholds(max_rejected_share=0.25)


def test_a_delta_runs_gate_live_counts_projection_and_cli_agree(
    generations: Generations,  # noqa: F811
    tls_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'projections.db'}"
    with target_for(
        generations.first, tls_dir, log_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        db_url=db_url, run_id=BASE,
    ) as target:  # fmt: skip
        settings = target.settings
        with (
            open_log(settings.log_url) as log,
            client_from_settings(settings) as client,
            client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as writer,
        ):
            base = migrate(log, client, default_map(),
                           MigrationRequest(export="", run_id=BASE, thresholds=GATES),
                           stages=InProcessStages(writer, Throttle()))  # fmt: skip
            assert base.passed, base.stopped
            detect(generations.newer, log, run_id=DELTA, base_run=BASE, deletions="deactivate")
            summary = migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=GATES)
            print(f"delta: stopped={summary.stopped} failures={summary.failures}")
            run_events = [s.event for s in log.read() if s.event.run_id == DELTA]
            phases = sorted(summary.phases)
            live = {p: phase_counts(log, run_id=DELTA, phase=p) for p in phases}
            gates = {}
            for p in phases:
                latest = latest_reconciliation(log, run_id=DELTA, phase=p)
                assert latest is not None
                gates[p] = latest.payload["counts"]
            base_live = {p: phase_counts(log, run_id=BASE, phase=p) for p in range(1, 9)}
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(
            app, ["reconcile", "--run", DELTA, "--json", "--spot-check", "0"],
            env=target.environment() | {"CRMLEDGER_DB_URL": db_url},
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    projected = _projected(db_url, DELTA)
    gate_view = {p: {t: {n: row[n] for n in COUNT_NAMES} for t, row in projected.get(p, {}).items()}
                 for p in phases}  # fmt: skip
    assert live == gates == gate_view
    base_projected = _projected(db_url, BASE)
    assert {p: c for p, c in base_live.items() if c} == {
        p: {t: {n: row[n] for n in COUNT_NAMES} for t, row in tables.items()}
        for p, tables in base_projected.items()
    }

    changes = {e.key for e in run_events if e.type == SourceRecordChanged.event_type}
    knock_ons = {
        e.key for e in run_events
        if e.type in (TransformDecided.event_type, RecordRejected.event_type)
        and e.key not in changes and "knock_on" in json.dumps(e.payload)
    }  # fmt: skip
    deletions = [e for e in run_events if e.type == SourceRecordDeleted.event_type]
    decision_ids = {e.event_id for e in run_events if e.type == TransformDecided.event_type}
    migrated_writes = {e.key for e in run_events if e.type == DestinationWritten.event_type
                       and e.causation_id in decision_ids}  # fmt: skip
    deactivations = [e for e in run_events if e.type == DestinationWritten.event_type
                     and e.causation_id not in decision_ids]  # fmt: skip
    totals = report["totals"]
    print(f"delta report totals: {totals}; {len(changes)} changed or new, {len(knock_ons)}"
          f" knock-on, {len(deletions)} deleted, {len(deactivations)} deactivations")  # fmt: skip
    assert report["delta"] is True
    assert report["columns"] == list(ALL_NAMES)
    assert totals["extracted"] > 0
    assert totals["extracted"] == len(changes | knock_ons)
    assert totals["decided"] + totals["rejected"] == totals["extracted"]
    assert totals["written"] == len(migrated_writes)
    assert deactivations, "deactivate mode wrote no deactivation: the test would prove nothing"
    assert totals["source_deleted"] == len(deletions)
    assert totals["deactivated"] >= 1
    assert all(
        set(row) == set(ALL_NAMES) for p in report["phases"] for row in p["objects"].values()
    )
