"""The delta state: each work4all record's content hash at its last extraction, of any run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table

from ledger.event_types import SourceRecordChanged, SourceRecordDeleted, SourceRecordExtracted
from ledger.events import Topic
from ledger.log import StoredEvent
from projections.db import upsert
from projections.facts import event_time, split_key
from projections.tables import delta_state

_CURRENT = frozenset({SourceRecordExtracted.event_type, SourceRecordChanged.event_type})


class DeltaState:
    """Keeps ``delta_state``: one row per source key, set by its latest source event."""

    name = "delta_state"
    topics: tuple[Topic, ...] = (Topic.SOURCE,)
    tables: tuple[Table, ...] = (delta_state,)

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Record the hash (or the deletion) each event states; the last event of a key wins."""
        latest: dict[str, dict[str, Any]] = {}
        for stored in events:
            event = stored.event
            if event.type in _CURRENT:
                content, deleted = str(event.payload["content_hash"]), False
            elif event.type == SourceRecordDeleted.event_type:
                content, deleted = str(event.payload["previous_hash"]), True
            else:
                continue
            table, code = split_key(event.key)
            latest[event.key] = {
                "source_key": event.key,
                "source_table": str(event.payload.get("table") or table),
                "source_code": code,
                "content_hash": content,
                "deleted": deleted,
                "run_id": event.run_id,
                "event_id": str(event.event_id),
                "seen_at": event_time(event),
            }
        upsert(connection, delta_state, [latest[key] for key in sorted(latest)], ("source_key",))
