"""Record state, id map, reconciliation counts and phase gates: what became of every record.

Each record's row (``record_state``) is changed only by that record's own events, which the log
keeps in order (one key, one partition per topic), so it is the same however the partitions
interleave. The counts are derived from those rows after each batch, for the phases the batch
touched, by the rules of :mod:`consumers.reconcile` — so they always equal
``consumers.reconcile.phase_counts`` for the log applied so far, on every rebuild.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, func, or_, select, tuple_

from consumers.reconcile import COUNT_NAMES
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
from projections.db import upsert
from projections.facts import chunks, event_time, phase_number, split_key
from projections.tables import id_map, phase_gates, reconciliation_counts, record_state

Row = dict[str, Any]
RecordId = tuple[str, str]  # run_id, source_key

_FILTERED_OUT = "filtered_out"
_WARNINGS_KEY = "_warnings"  # notes among a rejection's reasons, as consumers.reconcile skips
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


def excluded(reasons: Mapping[str, Sequence[str]]) -> bool:
    """Whether a rejection is only a scope decision (no map object's filter takes the record)."""
    codes = {
        text.split(":", 1)[0].strip()
        for column, texts in reasons.items()
        if column != _WARNINGS_KEY
        for text in texts
    }
    return codes == {_FILTERED_OUT}


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
    """Keeps ``record_state``, ``id_map``, ``reconciliation_counts`` and ``phase_gates``."""

    name = "record_state"
    topics: tuple[Topic, ...] = tuple(Topic)
    tables: tuple[Table, ...] = (record_state, id_map, reconciliation_counts, phase_gates)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply each record's events to its row, then recount the phases they touched."""
        ordered = [stored.event for stored in events]
        records = [e for e in ordered if e.type in _RECORD]
        undone = [e for e in ordered if e.type in _UNDONE]
        rows = _load(connection, {(e.run_id, e.key) for e in records}, undone)
        changed: set[RecordId] = set()
        decisions: dict[RecordId, Event] = {}
        touched: defaultdict[str, set[int]] = defaultdict(set)
        sourced: set[str] = set()
        for event in ordered:
            if event.type in _RECORD:
                record = (event.run_id, event.key)
                row = rows.get(record) or _new_row(*record)
                rows[record] = row
                _apply(row, event)
                changed.add(record)
                if event.type in _SOURCE:
                    sourced.add(event.run_id)
                elif (phase := phase_number(event)) is not None:
                    touched[event.run_id].add(phase)
                if event.type in (TransformDecided.event_type, RecordRejected.event_type):
                    decisions[record] = event
            elif event.type in _UNDONE:
                for record in _rows_of_target(rows, event):
                    rows[record] |= {
                        "rollback_status": _UNDONE[event.type],
                        "rolled_back_at": event_time(event),
                    }
                    _touch(rows[record], event)
                    changed.add(record)
            elif event.type in _GATES and (phase := phase_number(event)) is not None:
                _apply_gate(connection, event, phase)
                touched[event.run_id].add(phase)
        upsert(
            connection,
            record_state,
            [rows[record] for record in sorted(changed)],
            ("run_id", "source_key"),
        )
        _map_ids(connection, decisions)
        for run_id in sorted(sourced):
            touched[run_id] |= _phases_of(connection, run_id)
        for run_id, phases in sorted(touched.items()):
            for phase in sorted(phases):
                _recount(connection, run_id, phase)


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


def _phases_of(connection: Connection, run_id: str) -> set[int]:
    """Every phase of ``run_id`` that has decisions or a gate: source events may change them."""
    decided = select(record_state.c.decision_phase).where(
        record_state.c.run_id == run_id, record_state.c.decision_phase.is_not(None)
    )
    gated = select(phase_gates.c.phase).where(phase_gates.c.run_id == run_id)
    return {int(phase) for (phase,) in connection.execute(decided.union(gated))}


def _recount(connection: Connection, run_id: str, phase: int) -> None:
    """Replace the counts of ``phase`` in ``run_id`` with those of ``consumers.reconcile``."""
    rs = record_state.c
    of_run = rs.run_id == run_id
    tables = {
        str(table)
        for (table,) in connection.execute(
            select(rs.source_table).where(of_run, rs.decision_phase == phase).distinct()
        )
    }
    listed = set(
        _json_list(
            connection.execute(
                select(phase_gates.c.objects_json).where(
                    phase_gates.c.run_id == run_id, phase_gates.c.phase == phase
                )
            ).scalar()
        )
    )
    wanted = tables or listed
    extracted: dict[str, int] = {}
    if wanted:
        # A record decided in another phase counts there (a table split over phases).
        query = (
            select(rs.source_table, func.count())
            .where(
                of_run,
                rs.extracted_at.is_not(None),
                rs.source_table.in_(sorted(wanted)),
                or_(rs.decision_phase.is_(None), rs.decision_phase == phase),
            )
            .group_by(rs.source_table)
        )
        extracted = {str(table): int(n) for table, n in connection.execute(query)}
    if not tables:
        # Listed names that are map objects rather than source tables are not counted.
        query = select(rs.source_table).where(
            of_run, rs.extracted_at.is_not(None), rs.source_table.in_(sorted(listed))
        )
        tables = {str(table) for (table,) in connection.execute(query.distinct())}
    counts: dict[str, dict[str, int]] = {
        table: dict.fromkeys(COUNT_NAMES, 0) | {"extracted": extracted.get(table, 0)}
        for table in tables
    }
    decided = (
        select(rs.source_table, rs.decision, rs.excluded, func.count())
        .where(of_run, rs.decision_phase == phase)
        .group_by(rs.source_table, rs.decision, rs.excluded)
    )
    for table, decision, is_excluded, n in connection.execute(decided):
        row = counts.setdefault(str(table), dict.fromkeys(COUNT_NAMES, 0))
        if decision == "decided":
            row["decided"] += int(n)
        else:
            row["rejected"] += int(n)
            row["excluded"] += int(n) if is_excluded else 0
    written = (
        select(rs.source_table, rs.write_status, rs.check_status, func.count())
        .where(of_run, rs.write_phase == phase, rs.write_status.is_not(None))
        .group_by(rs.source_table, rs.write_status, rs.check_status)
    )
    for table, status, check, n in connection.execute(written):
        row = counts.setdefault(str(table), dict.fromkeys(COUNT_NAMES, 0))
        row[str(status)] += int(n)
        if status == "written" and check is not None:
            row[str(check)] += int(n)
    connection.execute(
        delete(reconciliation_counts).where(
            reconciliation_counts.c.run_id == run_id, reconciliation_counts.c.phase == phase
        )
    )
    if counts:
        connection.execute(
            reconciliation_counts.insert(),
            [
                {"run_id": run_id, "phase": phase, "source_table": table, **counts[table]}
                for table in sorted(counts)
            ],
        )
