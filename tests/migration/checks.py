"""What every end-to-end migration must show, whichever backend ran it (issue 6, "must show")."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from consumers.dataverse.client import DataverseClient, client_from_settings
from consumers.migrate import MigrationSummary
from ledger.event_types import (
    DestinationWriteFailed,
    PhaseReconciled,
    RecordRejected,
    RecordVerified,
    TransformDecided,
)
from ledger.events import Event
from ledger.log import open_log
from producers.mapping.rules import entity_set
from tests.migration.conftest import Target

ACTIVITIES = ("phonecall", "task", "appointment", "email")
TIMESTAMPS = ("overriddencreatedon", "scheduledstart", "scheduledend", "actualstart", "actualend")
# Dataverse keeps a migrated creation time in createdon (reference 9.1).
READ_AS = {"overriddencreatedon": "createdon"}


def check_migration(target: Target, summary: MigrationSummary, run_id: str) -> None:
    """Every assertion of the end-to-end tests, against the log and the emulator."""
    events = _events(target, run_id)
    _every_phase_passed(summary, events)
    _nothing_lost(events)
    _every_rejection_and_failure_explained(events)
    with client_from_settings(target.settings) as client:
        _emulator_holds_the_verified_records(target, events)
        _contacts_point_at_their_accounts(client)
        _activities_have_regarding_and_live_owner(client)
        _activities_keep_their_timestamps(client, events)


def _events(target: Target, run_id: str) -> list[Event]:
    with open_log(target.settings.log_url) as log:
        return [stored.event for stored in log.read() if stored.event.run_id == run_id]


def _latest_reconciliations(events: list[Event]) -> dict[int, PhaseReconciled]:
    latest: dict[int, tuple[datetime, PhaseReconciled]] = {}
    for event in events:
        if event.type == PhaseReconciled.event_type and event.phase is not None:
            phase = int(event.phase)
            if phase not in latest or latest[phase][0] <= event.occurred_at:
                latest[phase] = (event.occurred_at, PhaseReconciled.model_validate(event.payload))
    return {phase: payload for phase, (_, payload) in latest.items()}


def _every_phase_passed(summary: MigrationSummary, events: list[Event]) -> None:
    assert summary.passed, summary.stopped
    reconciled = _latest_reconciliations(events)
    assert sorted(reconciled) == [outcome.phase for outcome in summary.phases]
    failed = {phase: r.reasons for phase, r in reconciled.items() if r.verdict != "passed"}
    assert not failed


def _nothing_lost(events: list[Event]) -> None:
    for phase, reconciled in _latest_reconciliations(events).items():
        for table, counts in reconciled.counts.items():
            assert counts["mismatched"] == 0, (phase, table, counts)
            accounted = counts["verified"] + counts["rejected"] + counts["failed"]
            assert counts["extracted"] == accounted, (phase, table, counts)


def _every_rejection_and_failure_explained(events: list[Event]) -> None:
    for event in events:
        if event.type == RecordRejected.event_type:
            reasons = RecordRejected.model_validate(event.payload).reasons
            explained = [text for field, texts in reasons.items() if field != "_warnings"
                         for text in texts if text.strip()]  # fmt: skip
            assert explained, f"{event.key} rejected without a reason"
        elif event.type == DestinationWriteFailed.event_type:
            failure = DestinationWriteFailed.model_validate(event.payload)
            assert failure.message.strip(), event.key
            assert failure.error_code.strip(), event.key


def _emulator_holds_the_verified_records(target: Target, events: list[Event]) -> None:
    verified: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.type == RecordVerified.event_type:
            payload = RecordVerified.model_validate(event.payload)
            verified[payload.target_table].add(payload.target_id.lower())
    decided_tables = {
        event.payload["target_table"]
        for event in events
        if event.type == TransformDecided.event_type
    }
    counts = target.counts()
    assert verified
    for table in sorted(decided_tables):
        assert counts.get(table, 0) == len(verified[table]), table


def _rows(client: DataverseClient, path: str) -> list[dict[str, Any]]:
    result = client.get(path)
    rows: list[dict[str, Any]] = list(result.get("value", []))
    while "@odata.nextLink" in result:
        result = client.get(str(result["@odata.nextLink"]))
        rows.extend(result.get("value", []))
    return rows


def _contacts_point_at_their_accounts(client: DataverseClient) -> None:
    accounts = {row["accountid"] for row in _rows(client, "accounts?$select=accountid")}
    contacts = _rows(client, "contacts?$select=contactid,_parentcustomerid_value")
    assert contacts
    orphans = [
        row["contactid"] for row in contacts if row["_parentcustomerid_value"] not in accounts
    ]
    assert not orphans


def _activities_have_regarding_and_live_owner(client: DataverseClient) -> None:
    users = _rows(client, "systemusers?$select=systemuserid,isdisabled")
    live = {row["systemuserid"] for row in users if not row["isdisabled"]}
    for table in ACTIVITIES:
        key = "activityid"  # activities share their primary key column
        rows = _rows(
            client, f"{entity_set(table)}?$select={key},_regardingobjectid_value,_ownerid_value"
        )
        without_regarding = [row[key] for row in rows if not row["_regardingobjectid_value"]]
        assert not without_regarding, table
        dead_owner = [row[key] for row in rows if row["_ownerid_value"] not in live]
        assert not dead_owner, table


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _activities_keep_their_timestamps(client: DataverseClient, events: list[Event]) -> None:
    decided: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in events:
        if event.type == TransformDecided.event_type:
            payload = TransformDecided.model_validate(event.payload)
            if payload.target_table in ACTIVITIES:
                decided[payload.target_table][payload.target_id.lower()] = payload.payload
    checked = 0
    for table, records in decided.items():
        key = "activityid"  # activities share their primary key column
        columns = ",".join([key, *sorted({READ_AS.get(c, c) for c in TIMESTAMPS})])
        stored = {
            row[key].lower(): row for row in _rows(client, f"{entity_set(table)}?$select={columns}")
        }
        for target_id, payload in records.items():
            for column in TIMESTAMPS:
                if payload.get(column) is None:
                    continue
                actual = stored[target_id][READ_AS.get(column, column)]
                assert actual is not None, (table, target_id, column)
                assert _moment(actual) == _moment(payload[column]), (table, target_id, column)
                checked += 1
    assert checked
