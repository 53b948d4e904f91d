"""Record state, id map, reconciliation counts and phase gates: what became of every record.

Each record's row (``record_state``) is changed only by that record's own events, which the log
keeps in order (one key, one partition per topic), so it is the same however the partitions
interleave. The counts follow the one rule of :mod:`projections.counting`: each row keeps its
record's :class:`~projections.counting.RecordTally`; a batch adds to ``reconciliation_tallies``
what its records' contributions changed by and assembles the touched runs'
``reconciliation_counts`` from those sums, so they always equal
``consumers.reconcile.phase_counts`` for the log applied so far, and a batch costs what it
changed, not what the run holds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, select, tuple_

from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationWriteFailed,
    DestinationWritten,
    FieldMismatch,
    PhaseReconciled,
    PhaseStarted,
    RecordRejected,
    RecordVerified,
    SourceRecordChanged,
    SourceRecordDeleted,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event, Topic, canonical_json
from ledger.log import StoredEvent
from projections.counting import TALLIED, RecordTally, assemble, excluded
from projections.db import upsert
from projections.facts import chunks, event_time, phase_number, split_key
from projections.tables import (
    id_map,
    phase_gates,
    reconciliation_counts,
    reconciliation_tallies,
    record_state,
)

Row = dict[str, Any]
RecordId = tuple[str, str]  # run_id, source_key
Share = dict[tuple[int | None, str, str], int]  # (phase, source table, count name) → records

_UNPLACED = -1  # reconciliation_tallies.phase of records without a phase of their own
_SOURCE = frozenset(
    {
        SourceRecordExtracted.event_type,
        SourceRecordChanged.event_type,
        SourceRecordDeleted.event_type,
    }
)
_RECORD = _SOURCE | {
    TransformDecided.event_type,
    RecordRejected.event_type,
    DestinationWritten.event_type,
    DestinationWriteFailed.event_type,
    RecordVerified.event_type,
    FieldMismatch.event_type,
}
_UNDONE = {DestinationDeleted.event_type: "deleted", DestinationRestored.event_type: "restored"}
_GATES = frozenset({PhaseStarted.event_type, PhaseReconciled.event_type})


def _new_row(run_id: str, key: str) -> Row:
    table, code = split_key(key)
    row: Row = {column.name: None for column in record_state.columns}
    row |= {
        "run_id": run_id,
        "source_key": key,
        "source_table": table,
        "source_code": code,
        "source_deleted": False,
        "excluded": False,
    }
    return row


class RecordStates:
    """Keeps ``record_state``, ``id_map``, the reconciliation counts and ``phase_gates``."""

    name = "record_state"
    topics: tuple[Topic, ...] = tuple(Topic)
    tables: tuple[Table, ...] = (
        record_state,
        id_map,
        reconciliation_counts,
        reconciliation_tallies,
        phase_gates,
    )

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply each record's events to its row, then count what their tallies changed."""
        ordered = [stored.event for stored in events]
        undone = [e for e in ordered if e.type in _UNDONE]
        own = {(e.run_id, e.key) for e in ordered if e.type in TALLIED}
        rows = _load(connection, own, undone)
        changed: set[RecordId] = set()
        decisions: dict[RecordId, Event] = {}
        tallies: dict[RecordId, RecordTally] = {}
        before: dict[RecordId, Share] = {}
        listed: set[str] = set()
        for event in ordered:
            if event.type in TALLIED:
                record = (event.run_id, event.key)
                row = rows.get(record) or _new_row(*record)
                rows[record] = row
                if record not in tallies:
                    tallies[record] = _tally(row)
                    before[record] = _share(tallies[record])
                tallies[record].apply(event)
                changed.add(record)
                if event.type in _RECORD:
                    _apply(row, event)
                else:
                    _touch(row, event)
                if event.type in (TransformDecided.event_type, RecordRejected.event_type):
                    decisions[record] = event
            if event.type in _UNDONE:
                for record in _rows_of_target(rows, event):
                    rows[record] |= {
                        "rollback_status": _UNDONE[event.type],
                        "rolled_back_at": event_time(event),
                    }
                    _touch(rows[record], event)
                    changed.add(record)
            elif event.type in _GATES and (phase := phase_number(event)) is not None:
                _apply_gate(connection, event, phase)
                if event.type == PhaseStarted.event_type:
                    listed.add(event.run_id)
        for record, tally in tallies.items():
            rows[record]["tally_json"] = tally.to_json()
        upsert(
            connection,
            record_state,
            [rows[record] for record in sorted(changed)],
            ("run_id", "source_key"),
        )
        _map_ids(connection, decisions)
        self.count(connection, {r: (before[r], _share(t)) for r, t in tallies.items()}, listed)

    def count(
        self,
        connection: Connection,
        shares: Mapping[RecordId, tuple[Share, Share]],
        listed: set[str],
    ) -> None:
        """Add what each record's share changed by (old, new) to ``reconciliation_tallies``;
        assemble the counts of every run that changed or whose phases listed new tables."""
        delta: Counter[tuple[str, int, str, str]] = Counter()
        for (run_id, _key), (old, new) in shares.items():
            for part in old.keys() | new.keys():
                change = new.get(part, 0) - old.get(part, 0)
                if change:
                    phase, table, name = part
                    delta[(run_id, _UNPLACED if phase is None else phase, table, name)] += change
        upsert(
            connection,
            reconciliation_tallies,
            [
                {"run_id": r, "phase": p, "source_table": t, "name": n, "count": c}
                for (r, p, t, n), c in sorted(delta.items())
                if c
            ],
            ("run_id", "phase", "source_table", "name"),
            add=("count",),
        )
        runs = sorted({run_id for (run_id, *_rest), c in delta.items() if c} | listed)
        for chunk in chunks(runs):
            connection.execute(
                delete(reconciliation_tallies).where(
                    reconciliation_tallies.c.run_id.in_(chunk), reconciliation_tallies.c.count == 0
                )
            )
        for run_id in runs:
            _recount(connection, run_id)


def _tally(row: Row) -> RecordTally:
    text = row.get("tally_json")
    return RecordTally.from_json(text) if text else RecordTally.of(str(row["source_key"]))


def _share(tally: RecordTally) -> Share:
    return {
        (phase, tally.table, name): count for (phase, name), count in tally.contribution().items()
    }


# --- one record's row --------------------------------------------------------------------------


def _touch(row: Row, event: Event) -> None:
    moment = event_time(event)
    if row["last_event_at"] is None or moment > row["last_event_at"]:
        row["last_event_at"] = moment


def _apply(row: Row, event: Event) -> None:
    payload, moment = event.payload, event_time(event)
    _touch(row, event)
    kind = event.type
    if kind == SourceRecordExtracted.event_type or kind == SourceRecordChanged.event_type:
        row["source_table"] = str(payload.get("table") or row["source_table"])
        row["content_hash"] = str(payload["content_hash"])
        row["source_position"] = payload.get("position")
        row["source_deleted"] = False
        row["extracted_at" if kind == SourceRecordExtracted.event_type else "changed_at"] = moment
    elif kind == SourceRecordDeleted.event_type:
        row["source_deleted"] = True
        row["changed_at"] = moment
    elif kind == TransformDecided.event_type:
        row |= {
            "decision_phase": phase_number(event),
            "decision": "decided",
            "excluded": False,
            "reasons_json": None,
            "notes_json": canonical_json(payload.get("notes") or []),
            "target_table": str(payload["target_table"]),
            "target_id": str(payload["target_id"]).lower(),
            "decided_at": moment,
        }
    elif kind == RecordRejected.event_type:
        reasons = payload.get("reasons") or {}
        row |= {
            "decision_phase": phase_number(event),
            "decision": "rejected",
            "excluded": excluded(reasons),
            "reasons_json": canonical_json(reasons),
            "notes_json": None,
            "target_table": None,
            "target_id": None,
            "decided_at": moment,
        }
    elif kind == DestinationWritten.event_type or kind == DestinationWriteFailed.event_type:
        _apply_write(row, event, moment)
    elif str(event.causation_id) == row["write_event_id"]:  # a check of the latest write
        if kind == FieldMismatch.event_type:
            columns = set(_json_list(row["mismatched_columns_json"])) | {str(payload["column"])}
            row["check_status"] = "mismatched"
            row["mismatched_columns_json"] = canonical_json(sorted(columns))
            row["checked_at"] = moment
        elif row["check_status"] is None:
            row["check_status"] = "verified"
            row["checked_at"] = moment


def _apply_write(row: Row, event: Event, moment: str) -> None:
    payload = event.payload
    row |= {
        "write_phase": phase_number(event),
        "written_at": moment,
        "check_status": None,
        "mismatched_columns_json": None,
        "checked_at": None,
        "rollback_status": None,
        "rolled_back_at": None,
    }
    if event.type == DestinationWritten.event_type:
        row |= {
            "write_status": "written",
            "write_op": str(payload["op"]),
            "write_event_id": str(event.event_id),
            "error_status": None,
            "error_code": None,
            "error_message": None,
        }
    else:
        row |= {
            "write_status": "failed",
            "write_op": None,
            "write_event_id": None,
            "error_status": payload.get("status"),
            "error_code": str(payload.get("error_code") or ""),
            "error_message": str(payload.get("message") or ""),
        }


def _json_list(text: str | None) -> list[str]:
    return [str(item) for item in json.loads(text)] if text else []


def _rows_of_target(rows: dict[RecordId, Row], event: Event) -> list[RecordId]:
    table = str(event.payload["target_table"])
    target_id = str(event.payload["target_id"]).lower()
    return sorted(
        record
        for record, row in rows.items()
        if record[0] == event.run_id
        and row["target_table"] == table
        and row["target_id"] == target_id
    )


def _load(
    connection: Connection, records: set[RecordId], undone: Sequence[Event]
) -> dict[RecordId, Row]:
    """The stored rows of ``records`` and of the rows the rollback events ``undone`` name."""
    rows: dict[RecordId, Row] = {}
    keys = (record_state.c.run_id, record_state.c.source_key)
    for chunk in chunks(sorted(records)):
        for found in connection.execute(
            select(record_state).where(tuple_(*keys).in_(chunk))
        ).mappings():
            rows[(found["run_id"], found["source_key"])] = dict(found)
    targets = sorted(
        {
            (e.run_id, str(e.payload["target_table"]), str(e.payload["target_id"]).lower())
            for e in undone
        }
    )
    target = (record_state.c.run_id, record_state.c.target_table, record_state.c.target_id)
    for named in chunks(targets):
        condition = tuple_(*target).in_(named)
        for found in connection.execute(select(record_state).where(condition)).mappings():
            rows.setdefault((found["run_id"], found["source_key"]), dict(found))
    return rows


def _map_ids(connection: Connection, decisions: Mapping[RecordId, Event]) -> None:
    """Point each decided record at its Dataverse row; a record rejected since has none."""
    decided = [
        event for _, event in sorted(decisions.items()) if event.type == TransformDecided.event_type
    ]
    upsert(
        connection,
        id_map,
        [
            {
                "run_id": event.run_id,
                "source_key": event.key,
                "source_table": split_key(event.key)[0],
                "source_code": split_key(event.key)[1],
                "phase": phase_number(event),
                "target_table": str(event.payload["target_table"]),
                "target_id": str(event.payload["target_id"]).lower(),
            }
            for event in decided
        ],
        ("run_id", "source_key"),
    )
    rejected = sorted(r for r, e in decisions.items() if e.type == RecordRejected.event_type)
    for chunk in chunks(rejected):
        connection.execute(
            delete(id_map).where(tuple_(id_map.c.run_id, id_map.c.source_key).in_(chunk))
        )


# --- phases: gates and counts ------------------------------------------------------------------


def _apply_gate(connection: Connection, event: Event, phase: int) -> None:
    stored = (
        connection.execute(
            select(phase_gates).where(
                phase_gates.c.run_id == event.run_id, phase_gates.c.phase == phase
            )
        )
        .mappings()
        .first()
    )
    row: Row = (
        dict(stored)
        if stored is not None
        else {column.name: None for column in phase_gates.columns}
    )
    row |= {"run_id": event.run_id, "phase": phase}
    objects = set(_json_list(row["objects_json"]))
    payload = event.payload
    if event.type == PhaseStarted.event_type:
        objects |= {str(name) for name in payload.get("objects") or []}
        row |= {"started_at": event_time(event), "override_reason": payload.get("override_reason")}
    else:
        row |= {
            "verdict": str(payload["verdict"]),
            "reasons_json": canonical_json(payload.get("reasons") or []),
            "counts_json": canonical_json(payload.get("counts") or {}),
            "reconciled_at": event_time(event),
            "reconciled_event_id": str(event.event_id),
        }
    row["objects_json"] = canonical_json(sorted(objects))
    upsert(connection, phase_gates, [row], ("run_id", "phase"))


def _recount(connection: Connection, run_id: str) -> None:
    """Replace the counts of ``run_id`` with those its tallies and phase listings assemble."""
    rt = reconciliation_tallies.c
    tallies = {
        (None if phase == _UNPLACED else int(phase), str(table), str(name)): int(count)
        for phase, table, name, count in connection.execute(
            select(rt.phase, rt.source_table, rt.name, rt.count).where(rt.run_id == run_id)
        )
    }
    listed = {
        int(phase): _json_list(objects)
        for phase, objects in connection.execute(
            select(phase_gates.c.phase, phase_gates.c.objects_json).where(
                phase_gates.c.run_id == run_id
            )
        )
    }
    counts = assemble(tallies, listed)
    connection.execute(
        delete(reconciliation_counts).where(reconciliation_counts.c.run_id == run_id)
    )
    rows = [
        {"run_id": run_id, "phase": phase, "source_table": table, **row}
        for phase, tables in sorted(counts.items())
        for table, row in sorted(tables.items())
    ]
    if rows:
        connection.execute(reconciliation_counts.insert(), rows)
