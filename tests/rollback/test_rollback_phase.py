"""Rolling back one phase: the others stay as they were and verified; dependents need --cascade;
rows someone changed since the run are reported and left alone unless forced."""

from __future__ import annotations

from collections import Counter

import pytest

from consumers.rollback import RollbackRefusedError, plan_rollback, rollback
from consumers.verify import verify_phase
from ledger.event_types import (
    DestinationDeleted,
    DestinationWritten,
    FieldMismatch,
    RecordVerified,
    TransformDecided,
)
from ledger.events import Event
from ledger.log import open_log
from tests.rollback.conftest import RUN, Migrated

ACTIVITIES = ("phonecall", "task", "appointment", "email")


def _events(migrated: Migrated) -> list[Event]:
    return [s.event for s in migrated.log.read() if s.event.run_id == RUN]


def test_a_phase_that_later_records_depend_on_is_refused_without_cascade(
    migrated: Migrated,
) -> None:
    end, digest = migrated.log.end_position(), migrated.digest()

    with pytest.raises(RollbackRefusedError, match="--cascade") as refused:
        rollback(migrated.log, migrated.client, run_id=RUN, phase=6)
    with pytest.raises(RollbackRefusedError) as accounts:
        plan_rollback(migrated.log, migrated.client, run_id=RUN, phase=1)

    assert set(refused.value.dependents) == {7}  # the notes attached to phone calls
    assert set(accounts.value.dependents) >= {2, 5, 6, 7}
    assert migrated.log.end_position() == end
    assert migrated.digest() == digest


def test_rolling_back_the_activities_leaves_every_other_phase_intact_and_verified(
    migrated: Migrated, tmp_path: object
) -> None:
    before = migrated.counts()

    summary = rollback(migrated.log, migrated.client, run_id=RUN, phase=6, cascade=True)

    events = _events(migrated)
    deleted = [e for e in events if e.type == DestinationDeleted.event_type]
    cascaded = {e.payload["target_id"] for e in deleted if e.phase == "7"}
    assert summary.failed == []
    assert {e.phase for e in deleted} == {"6", "7"}
    assert {e.payload["target_table"] for e in deleted if e.phase == "7"} == {"annotation"}
    assert summary.plan.dependents == {7: len(cascaded)}
    after = migrated.counts()
    for table in ACTIVITIES:
        assert after.get(table, 0) == 0
    assert after.get("annotation", 0) == before["annotation"] - len(cascaded)
    untouched = set(before) - {*ACTIVITIES, "annotation", "activityparty"}
    assert {t: after.get(t, 0) for t in untouched} == {t: before[t] for t in untouched}
    # every record of the other phases reads back as decided, verified afresh
    _verifies_afresh(migrated, skip_phase="6", skip_ids=cascaded)


def _verifies_afresh(migrated: Migrated, skip_phase: str, skip_ids: set[str]) -> None:
    fresh_url = migrated.settings.log_url.replace("ledger.db", "fresh.db")
    kept = [
        e
        for e in _events(migrated)
        if e.type in (TransformDecided.event_type, DestinationWritten.event_type)
        and e.phase != skip_phase
        and e.payload["target_id"] not in skip_ids
    ]
    with open_log(fresh_url) as fresh:
        fresh.append(kept)
        results = Counter[str]()
        for phase in sorted({int(e.phase or 0) for e in kept}):
            verify_phase(fresh, migrated.client, run_id=RUN, phase=phase)
        for stored in fresh.read():
            results[stored.event.type] += 1
    written = sum(1 for e in kept if e.type == DestinationWritten.event_type)
    assert results[FieldMismatch.event_type] == 0
    assert results[RecordVerified.event_type] == written > 0


def test_a_second_phase_rollback_plans_nothing_and_appends_nothing(migrated: Migrated) -> None:
    rollback(migrated.log, migrated.client, run_id=RUN, phase=6, cascade=True)
    end, digest = migrated.log.end_position(), migrated.digest()

    again = rollback(migrated.log, migrated.client, run_id=RUN, phase=6, cascade=True)
    then_the_run = plan_rollback(migrated.log, migrated.client, run_id=RUN)

    assert again.plan.empty
    assert again.plan.recorded > 0
    assert again.appended == 0
    assert migrated.log.end_position() == end
    assert migrated.digest() == digest
    assert not any(a.table in ACTIVITIES for a in then_the_run.actions)


def test_rows_changed_since_the_run_are_reported_and_kept_unless_forced(
    migrated: Migrated,
) -> None:
    client = migrated.client
    updated = migrated.baseline.updated_accounts[0]
    client.patch(f"accounts({updated})", {"telephone1": "+49 89 999"}, headers={"If-Match": "*"})
    decided = [
        e.payload
        for e in _events(migrated)
        if e.type == TransformDecided.event_type and e.payload["target_table"] == "contact"
        and e.payload["target_id"] != migrated.baseline.updated_contact
    ]  # fmt: skip
    contact = decided[0]
    client.patch(f"contacts({contact['target_id']})", {"jobtitle": "changed by a person"},
                 headers={"If-Match": "*"})  # fmt: skip
    parent = contact["binds"]["parentcustomerid_account"].split("(")[1].rstrip(")")

    summary = rollback(migrated.log, client, run_id=RUN)

    conflicts = {(c.action.table, c.action.id) for c in summary.plan.conflicts}
    held = {(h.action.table, h.action.id) for h in summary.plan.held}
    assert conflicts == {("account", updated), ("contact", contact["target_id"])}
    assert ("account", parent) in held  # deleting it would cascade into the changed contact
    assert client.get(f"accounts({updated})", {"$select": "telephone1"})["telephone1"] == (
        "+49 89 999"
    )
    assert client.get(f"contacts({contact['target_id']})", {"$select": "jobtitle"})
    assert client.get(f"accounts({parent})", {"$select": "name"})
    assert migrated.digest() != migrated.baseline.digest_before

    forced = rollback(migrated.log, client, run_id=RUN, force=True)

    assert forced.failed == []
    assert migrated.digest() == migrated.baseline.digest_before
