"""The auditor's view: what moved, read from the log alone, and proof that projections follow it.

:func:`record_history` is the ordered history of one source record: its source versions
(extracted, changed, deleted), the map its decision was made under and who confirmed that map,
the decision with its notes (or the rejection with its reasons), every write with Dataverse's
answer, the verification, and any rollback. :func:`run_history` is what a run moved, phase by
phase: events per type, first and last time, and the gate's verdict.

How a decision's map is found (documented here because reviewers ask): a decision's event id is
``uuid5(TransformDecided|RecordRejected, run, key, "<content hash>|<map hash>")``
(:mod:`producers.mapping.stage`), so the map hash is the one of the log's ``MappingProposed``
and ``MappingConfirmed`` hashes that reproduces the id from the source event's content hash.

:func:`verify_projections` rebuilds every projection from the log into a fresh database (a
temporary SQLite file, or a new PostgreSQL database on the live one's server, dropped
afterwards) and compares it with the live projection database table by table, row by row.
Nothing is ignored: the positions table must match too (a live database behind the log shows
there first).
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from ledger.event_types import (
    MappingConfirmed,
    MappingProposed,
    PhaseReconciled,
    PhaseStarted,
    TransformDecided,
)
from ledger.events import Event, canonical_json, deterministic_id
from ledger.log import EventLog

__all__ = [
    "HistoryEntry",
    "PhaseActivity",
    "ProjectionDifference",
    "ProjectionVerification",
    "record_history",
    "run_history",
    "verify_projections",
]

_DECISIONS = ("TransformDecided", "RecordRejected")


# --- replay: one record ------------------------------------------------------------------------


@dataclass
class HistoryEntry:
    """One fact of a record's history, in log order."""

    at: datetime
    run_id: str
    phase: str | None
    type: str
    summary: str
    event_id: str
    payload: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The entry as JSON-ready values."""
        return {
            "at": self.at.isoformat(),
            "run_id": self.run_id,
            "phase": self.phase,
            "type": self.type,
            "summary": self.summary,
            "event_id": self.event_id,
            "payload": self.payload,
        }


def _events(log: EventLog, run_id: str | None, until: datetime | None) -> Iterator[Event]:
    for stored in log.read():
        event = stored.event
        if run_id is not None and event.run_id != run_id:
            continue
        if until is not None and event.occurred_at > until:
            continue
        yield event


def record_history(
    log: EventLog, key: str, *, run_id: str | None = None, until: datetime | None = None
) -> list[HistoryEntry]:
    """The history of source record ``key`` (``Kunden:1739201``), oldest first.

    Writes, verifications and rollbacks are found by the record's key and by the Dataverse rows
    its decisions address; the map of each decision and its confirmations are added after it.
    """
    events = list(_events(log, run_id, until))
    maps: dict[str, list[Event]] = {}
    for event in events:
        if event.type in (MappingConfirmed.event_type, MappingProposed.event_type):
            maps.setdefault(str(event.payload["map_hash"]), []).append(event)
    own = [event for event in events if event.key == key]
    sources = {event.event_id: event for event in own if event.type.startswith("SourceRecord")}
    targets = {
        str(event.payload["target_id"]).lower()
        for event in own
        if event.type == TransformDecided.event_type
    }
    related = [
        event
        for event in events
        if event.key != key
        and str(event.payload.get("target_id") or "").lower() in targets
        and not event.type.startswith(("TransformDecided", "RecordRejected"))
    ]
    history: list[HistoryEntry] = []
    for event in sorted([*own, *related], key=lambda e: e.occurred_at):
        history.append(_entry(event, _describe(event)))
        if event.type in _DECISIONS:
            history.extend(_map_entries(event, sources, maps))
    return history


def _map_entries(
    decision: Event, sources: dict[uuid.UUID, Event], maps: dict[str, list[Event]]
) -> list[HistoryEntry]:
    source = sources.get(decision.causation_id) if decision.causation_id else None
    if source is None:
        return []
    digest = str(source.payload.get("content_hash"))
    for map_hash, facts in maps.items():
        expected = deterministic_id(decision.type, decision.run_id, decision.key,
                                    f"{digest}|{map_hash}")  # fmt: skip
        if expected != decision.event_id:
            continue
        entries = []
        for fact in facts:
            if fact.type == MappingConfirmed.event_type:
                text_ = (
                    f"decided under map {map_hash[:12]}, confirmed by"
                    f" {fact.payload['confirmed_by']} at {fact.occurred_at:%Y-%m-%d %H:%M:%S}Z"
                )
            else:
                text_ = f"map {map_hash[:12]} is version {fact.payload['map_version']}"
            entries.append(_entry(fact, text_))
        return entries
    return []


def _entry(event: Event, summary: str) -> HistoryEntry:
    return HistoryEntry(
        event.occurred_at, event.run_id, event.phase, event.type, summary, str(event.event_id),
        dict(event.payload),
    )  # fmt: skip


def _describe(event: Event) -> str:
    """One line saying what the event records."""
    p = event.payload
    kind = event.type
    if kind == "SourceRecordExtracted":
        return f"extracted from {p['table']} (hash {str(p['content_hash'])[:12]})"
    if kind == "SourceRecordChanged":
        was = "new" if p.get("previous_hash") is None else f"was {str(p['previous_hash'])[:12]}"
        return f"changed in a newer export ({was}, now {str(p['content_hash'])[:12]})"
    if kind == "SourceRecordDeleted":
        return "deleted from the newer export"
    if kind == "TransformDecided":
        notes = "; ".join(p.get("notes") or []) or "no notes"
        return f"decided: {p['target_table']} {p['target_id']} ({notes})"
    if kind == "RecordRejected":
        reasons = "; ".join(
            f"{column}: {', '.join(texts)}" for column, texts in (p.get("reasons") or {}).items()
        )
        return f"rejected: {reasons}"
    if kind == "DestinationWriteIntended":
        return f"about to {p['op']} {p['target_table']} {p['target_id']}"
    if kind == "DestinationWritten":
        image = " with before-image" if p.get("before_image") else ""
        return f"Dataverse accepted the {p['op']}{image}"
    if kind == "DestinationWriteFailed":
        return f"Dataverse refused: {p['status']} {p['error_code']} {p['message']}"
    if kind == "RecordVerified":
        return "read back: matches the decision"
    if kind == "FieldMismatch":
        return f"read back: {p['column']} is {p['actual']!r}, expected {p['expected']!r}"
    if kind in ("DestinationDeleted", "DestinationRowDeleted"):
        return f"row deleted ({kind})"
    if kind == "DestinationRestored":
        return "before-image restored by a rollback"
    if kind == "SourceDeletionFlagged":
        return f"source deletion flagged: {p['reason']}"
    if kind == "DestinationDeleteIntended":
        return "about to delete the row (before-image recorded)"
    return kind


# --- replay: one run ---------------------------------------------------------------------------


@dataclass
class PhaseActivity:
    """What a run recorded in one phase (``extract``, ``delta``, ``1`` … or ``-`` for none)."""

    phase: str
    events: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None
    verdict: str | None = None
    override_reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The activity as JSON-ready values."""
        return {
            "phase": self.phase,
            "events": dict(sorted(self.events.items())),
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "seconds": (self.last - self.first).total_seconds()
            if self.first and self.last
            else None,
            "verdict": self.verdict,
            "override_reason": self.override_reason,
        }


def run_history(
    log: EventLog, run_id: str, *, until: datetime | None = None
) -> list[PhaseActivity]:
    """What ``run_id`` moved, phase by phase, in the order the phases began."""
    phases: dict[str, PhaseActivity] = {}
    for event in _events(log, run_id, until):
        name = event.phase or "-"
        activity = phases.setdefault(name, PhaseActivity(name))
        activity.events[event.type] += 1
        if activity.first is None or event.occurred_at < activity.first:
            activity.first = event.occurred_at
        if activity.last is None or event.occurred_at > activity.last:
            activity.last = event.occurred_at
        if event.type == PhaseReconciled.event_type:
            activity.verdict = str(event.payload["verdict"])
        elif event.type == PhaseStarted.event_type and event.payload.get("override_reason"):
            activity.override_reason = str(event.payload["override_reason"])
    return sorted(phases.values(), key=lambda a: a.first or datetime.max.replace(tzinfo=None))


# --- verify: projections rebuilt from the log --------------------------------------------------


@dataclass
class ProjectionDifference:
    """How one projection table differs between the live database and the rebuilt one."""

    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: list[dict[str, Any]] = field(default_factory=list)
    """up to five examples."""
    only_rebuilt: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ProjectionVerification:
    """The outcome of :func:`verify_projections`."""

    live_url: str
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    """table → (live rows, rebuilt rows)."""
    differences: list[ProjectionDifference] = field(default_factory=list)
    events_applied: int = 0

    @property
    def identical(self) -> bool:
        """Every table holds the same rows in both databases."""
        return not self.differences


def verify_projections(
    log: EventLog, live_url: str, *, scratch_url: str | None = None
) -> ProjectionVerification:
    """Rebuild every projection from ``log`` into a fresh database and compare it with the live.

    ``scratch_url`` names the fresh database to use (it is emptied); by default a temporary
    SQLite file, or for a PostgreSQL ``live_url`` a new database on the same server, dropped
    afterwards.
    """
    from projections.db import create_db_engine, upgrade
    from projections.runner import ProjectionRunner
    from projections.tables import metadata

    shown = make_url(live_url).render_as_string(hide_password=True)
    result = ProjectionVerification(shown)
    with _scratch(live_url, scratch_url) as url:
        rebuilt = create_db_engine(url)
        live = create_db_engine(live_url)
        try:
            upgrade(rebuilt)
            result.events_applied = ProjectionRunner(log, rebuilt).rebuild()
            live_tables = set(inspect(live).get_table_names())
            for table in metadata.sorted_tables:
                theirs = _rows(live, table.name) if table.name in live_tables else []
                ours = _rows(rebuilt, table.name)
                result.tables[table.name] = (len(theirs), len(ours))
                if theirs != ours:
                    result.differences.append(_difference(table.name, theirs, ours))
        finally:
            rebuilt.dispose()
            live.dispose()
    return result


def _rows(engine: Engine, table_name: str) -> list[str]:
    from projections.tables import metadata

    table = metadata.tables[table_name]
    with engine.connect() as connection:
        found = connection.execute(select(table)).mappings().all()
    return sorted(canonical_json({k: _plain(v) for k, v in row.items()}) for row in found)


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _difference(name: str, live: Sequence[str], rebuilt: Sequence[str]) -> ProjectionDifference:
    import json

    theirs, ours = Counter(live), Counter(rebuilt)
    only_live = list((theirs - ours).elements())[:5]
    only_rebuilt = list((ours - theirs).elements())[:5]
    return ProjectionDifference(
        name, len(live), len(rebuilt),
        [json.loads(row) for row in only_live], [json.loads(row) for row in only_rebuilt],
    )  # fmt: skip


@contextmanager
def _scratch(live_url: str, scratch_url: str | None) -> Iterator[str]:
    if scratch_url is not None:
        yield scratch_url
        return
    url = make_url(live_url)
    if url.get_backend_name() == "postgresql":
        name = f"crmledger_audit_{uuid.uuid4().hex[:16]}"
        server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with server.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            try:
                yield url.set(database=name).render_as_string(hide_password=False)
            finally:
                with server.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            server.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="crmledger-audit-") as directory:
        yield f"sqlite:///{Path(directory) / 'rebuilt.db'}"
