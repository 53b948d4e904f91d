"""The rollback plan: every Dataverse row a run created (to delete) or updated (to restore).

Rows merge every write of a run to one Dataverse row in a way that does not depend on the order
the writes arrive in (several source records may write one row from different partitions): the
row is to be deleted if any of them created it, otherwise restored to the before-image of the
earliest update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, select, tuple_

from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationWriteIntended,
    DestinationWritten,
)
from ledger.events import Event, Topic, canonical_json
from ledger.log import StoredEvent
from projections.db import upsert
from projections.facts import chunks, event_time, phase_number
from projections.tables import TABLE_ORDER, rollback_plan

_WRITES = frozenset({DestinationWriteIntended.event_type, DestinationWritten.event_type})
_UNDONE = {DestinationDeleted.event_type: "deleted", DestinationRestored.event_type: "restored"}

Row = dict[str, Any]
Target = tuple[str, str, str]  # run_id, target_table, target_id


def table_rank(table: str) -> int:
    """The table's place in the write order (:data:`TABLE_ORDER`); unknown tables come last."""
    return TABLE_ORDER.index(table) if table in TABLE_ORDER else len(TABLE_ORDER)


def _target(event: Event) -> Target:
    return event.run_id, str(event.payload["target_table"]), str(event.payload["target_id"]).lower()


class RollbackPlan:
    """Keeps ``rollback_plan`` from the write events (and the rollback's own events)."""

    name = "rollback_plan"
    topics: tuple[Topic, ...] = (Topic.WRITES,)
    tables: tuple[Table, ...] = (rollback_plan,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Merge each write into its row's plan; mark rows a rollback deleted or restored."""
        relevant = [s.event for s in events if s.event.type in _WRITES or s.event.type in _UNDONE]
        rows = _load(connection, {_target(event) for event in relevant})
        changed: set[Target] = set()
        for event in relevant:
            target = _target(event)
            if event.type in _WRITES:
                rows[target] = _merge(rows.get(target), event)
                changed.add(target)
            elif target in rows:
                rows[target] |= {"status": _UNDONE[event.type], "status_at": event_time(event)}
                changed.add(target)
        upsert(
            connection,
            rollback_plan,
            [rows[target] for target in sorted(changed)],
            ("run_id", "target_table", "target_id"),
        )


def _load(connection: Connection, targets: set[Target]) -> dict[Target, Row]:
    rows: dict[Target, Row] = {}
    columns = (rollback_plan.c.run_id, rollback_plan.c.target_table, rollback_plan.c.target_id)
    for chunk in chunks(sorted(targets)):
        query = select(rollback_plan).where(tuple_(*columns).in_(chunk))
        for found in connection.execute(query).mappings():
            row = dict(found)
            rows[(row["run_id"], row["target_table"], row["target_id"])] = row
    return rows


def _merge(row: Row | None, event: Event) -> Row:
    run_id, table, target_id = _target(event)
    moment, event_id = event_time(event), str(event.event_id)
    created = event.payload.get("op") == "create"
    written = event.type == DestinationWritten.event_type
    phase = phase_number(event) or 0
    if row is None:
        row = {
            "run_id": run_id,
            "target_table": table,
            "target_id": target_id,
            "phase": phase,
            "table_rank": table_rank(table),
            "source_key": event.key,
            "action": "delete" if created else "restore",
            "before_image_json": None,
            "before_image_at": None,
            "before_image_event_id": None,
            "first_write_at": moment,
            "written": written,
            "status": "pending",
            "status_at": None,
        }
    else:
        row = dict(row)
        row["phase"] = min(row["phase"], phase) if row["phase"] else phase
        row["source_key"] = min(row["source_key"], event.key)
        row["first_write_at"] = min(row["first_write_at"], moment)
        row["written"] = bool(row["written"]) or written
        if created:
            row["action"] = "delete"
        if written:  # the run wrote the row again after a rollback: there is something to undo
            row |= {"status": "pending", "status_at": None}
    if created:
        row |= {"before_image_json": None, "before_image_at": None, "before_image_event_id": None}
    elif row["action"] == "restore":
        earliest = (row["before_image_at"], row["before_image_event_id"])
        if earliest[0] is None or (moment, event_id) < earliest:
            image = event.payload.get("before_image")
            row |= {
                "before_image_json": canonical_json(image) if image is not None else None,
                "before_image_at": moment,
                "before_image_event_id": event_id,
            }
    return row
