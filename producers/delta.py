"""Delta detection: a newer export compared with what the ledger already holds, record by record.

:func:`detect` reads a newer export and appends, in a new run (a *delta run*), only what differs
from the **delta state**: the latest content hash of every source key across the base run and
the delta runs built on it, read from the log alone (``SourceRecordExtracted``,
``SourceRecordChanged``, ``SourceRecordDeleted``):

- a key the state does not hold (or holds as deleted) → ``SourceRecordChanged`` with
  ``previous_hash=None`` (new);
- a key whose content hash differs → ``SourceRecordChanged`` with the previous hash (changed);
- a key the state holds that the newer export lacks → ``SourceRecordDeleted`` (deleted).

Unchanged records append nothing. The run starts with a ``RunStarted`` whose ``settings`` say
``{"delta": true, "base_run": B, "deletions": MODE}`` and ends with ``ExportRegistered``, as an
extraction does: the transform stage recognises a delta run by the first
(:func:`delta_scope`), and a run with its export registered is detected completely (running
``detect`` again for it appends nothing).

Rules (documented here because reviewers ask):

- **Base run**: ``base_run`` names it; by default the latest run (by ``ExportRegistered`` time)
  that is not itself a delta run. A delta of a delta keeps the same base, so the state is the
  chain base → delta 1 → delta 2 … in log order (one key's events share a partition).
- **A table missing from the newer export** deletes nothing: a partial export must not wipe a
  table from Dataverse. Its records are counted in :attr:`DeltaSummary.tables_missing`.
- **Records without a Code** are keyed by position (``Kunden:@12``): their identity is not stable
  between exports, so such a delta is only as good as the export's row order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from ledger.event_types import (
    ExportRegistered,
    PhaseReconciled,
    RollbackPlanned,
    RunStarted,
    SourceRecordChanged,
    SourceRecordDeleted,
    SourceRecordExtracted,
)
from ledger.events import Event, Topic
from ledger.log import EventLog
from producers.extract import _location, extracted_event, record_key, registered_export
from producers.work4all.normalise import Normaliser
from producers.work4all.readers import open_export
from producers.work4all.tables import TABLES

__all__ = [
    "DELTA_PHASE",
    "DeletionMode",
    "DeltaError",
    "DeltaScope",
    "DeltaSummary",
    "delta_chain",
    "delta_runs",
    "delta_scope",
    "delta_state",
    "detect",
    "rolled_back_runs",
]

DELTA_PHASE = "delta"
"""The ``phase`` of a delta run's source events (extraction's are ``extract``)."""

DeletionMode = Literal["delete", "deactivate", "flag"]

Progress = Callable[[str, int], None]

_SOURCE_TYPES = frozenset(
    {
        SourceRecordExtracted.event_type,
        SourceRecordChanged.event_type,
        SourceRecordDeleted.event_type,
    }
)


class DeltaError(ValueError):
    """A delta cannot be detected: no base run, or the run id is taken."""


@dataclass(frozen=True)
class StateEntry:
    """The latest source event of one key in the delta state."""

    event_id: str
    table: str
    content_hash: str | None
    """None: the record was deleted."""


@dataclass
class DeltaSummary:
    """What a delta run appended, per source table."""

    run_id: str
    base_run: str
    deletions: DeletionMode
    new: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    tables_missing: dict[str, int] = field(default_factory=dict)
    """tables of the state the newer export lacks → their records (not deleted)."""
    already_detected: bool = False
    """the run was detected before; the counts are read from the log."""

    @property
    def appended(self) -> int:
        """Source events of the delta run."""
        return sum(self.new.values()) + sum(self.changed.values()) + sum(self.deleted.values())

    def totals(self) -> dict[str, int]:
        """new / changed / deleted / unchanged over every table."""
        return {
            "new": sum(self.new.values()),
            "changed": sum(self.changed.values()),
            "deleted": sum(self.deleted.values()),
            "unchanged": sum(self.unchanged.values()),
        }


@dataclass(frozen=True)
class DeltaScope:
    """What the transform stage needs to decide a delta run (see :func:`delta_scope`)."""

    run_id: str
    base_run: str
    latest: dict[str, str]
    """key → event id of the record's current version (new, changed or unchanged); deleted
    records are absent."""
    in_run: frozenset[str]
    """keys whose current version is a ``SourceRecordChanged`` of this run: the ones decided
    (with the knock-ons the transform stage finds among the others)."""
    chain: frozenset[str] = frozenset()
    """the runs before this one: the base run and the delta runs on it started earlier, whose
    decisions a knock-on is compared with."""


# --- reading the state from the log ----------------------------------------------------------


def delta_runs(log: EventLog) -> dict[str, tuple[str, str, datetime]]:
    """Every delta run → (base run, deletion mode, when it started), from ``RunStarted``."""
    found: dict[str, tuple[str, str, datetime]] = {}
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.type != RunStarted.event_type:
            continue
        settings = event.payload.get("settings") or {}
        if settings.get("delta") is True and event.run_id not in found:
            found[event.run_id] = (
                str(settings.get("base_run")),
                str(settings.get("deletions") or "flag"),
                event.occurred_at,
            )
    return found


def _latest_full_run(log: EventLog, deltas: Iterable[str]) -> str | None:
    skip = set(deltas)
    latest: tuple[datetime, str] | None = None
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.type != ExportRegistered.event_type or event.run_id in skip:
            continue
        if latest is None or latest[0] <= event.occurred_at:
            latest = (event.occurred_at, event.run_id)
    return latest[1] if latest else None


def _chain(log: EventLog, base_run: str, until: str | None) -> set[str]:
    """The base run and its delta runs started before ``until`` (a delta run), or all of them;
    a delta run rolled back as a whole (:func:`rolled_back_runs`) is no longer part of it."""
    deltas = delta_runs(log)
    limit = deltas[until][2] if until is not None and until in deltas else None
    undone = rolled_back_runs(log)
    runs = {base_run}
    for run, (base, _mode, started) in deltas.items():
        if (
            base == base_run
            and run != until
            and run not in undone
            and (limit is None or started <= limit)
        ):
            runs.add(run)
    return runs


delta_chain = _chain
"""The runs whose source events make up the delta state a delta run ``until`` is compared with."""


def rolled_back_runs(log: EventLog) -> set[str]:
    """Runs rolled back as a whole and not migrated since: the latest ``RollbackPlanned`` of the
    whole run (scope ``run R``, not ``run R phase P``) came after the run's latest
    ``PhaseReconciled``.

    What such a delta run changed is undone in Dataverse, so the delta state leaves it out: a
    newer export is compared with the runs before it, and ``crmledger delta`` of the same
    export again (as a new run) moves the same changes.
    """
    rolled: dict[str, datetime] = {}
    reconciled: dict[str, datetime] = {}
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.type == RollbackPlanned.event_type:
            scope = str(event.payload.get("scope", ""))
            if scope.startswith(f"run {event.run_id}") and " phase " not in scope:
                rolled[event.run_id] = max(rolled.get(event.run_id, event.occurred_at),
                                           event.occurred_at)  # fmt: skip
        elif event.type == PhaseReconciled.event_type:
            reconciled[event.run_id] = max(reconciled.get(event.run_id, event.occurred_at),
                                           event.occurred_at)  # fmt: skip
    return {run for run, at in rolled.items() if run not in reconciled or at > reconciled[run]}


def delta_state(log: EventLog, runs: set[str]) -> dict[str, StateEntry]:
    """The latest source event of every key among ``runs`` (deleted keys included, hash None)."""
    state: dict[str, StateEntry] = {}
    for stored in log.read([Topic.SOURCE]):
        event = stored.event
        if event.run_id not in runs or event.type not in _SOURCE_TYPES:
            continue
        payload = event.payload
        deleted = event.type == SourceRecordDeleted.event_type
        state[event.key] = StateEntry(
            str(event.event_id),
            str(payload["table"]),
            None if deleted else str(payload["content_hash"]),
        )
    return state


def delta_scope(log: EventLog, run_id: str) -> DeltaScope | None:
    """The scope of ``run_id`` if it is a delta run, else None.

    The transform stage decides the records of :attr:`DeltaScope.in_run` in the context of the
    whole current state (:attr:`DeltaScope.latest`): lookups, duplicates and rejected parents
    resolve as they would in a full migration of the newer export. It decides the others too,
    and appends those whose decision differs from their latest one in :attr:`DeltaScope.chain`.
    """
    deltas = delta_runs(log)
    if run_id not in deltas:
        return None
    base_run = deltas[run_id][0]
    chain = _chain(log, base_run, run_id)
    runs = chain | {run_id}
    latest: dict[str, str] = {}
    in_run: set[str] = set()
    for stored in log.read([Topic.SOURCE]):
        event = stored.event
        if event.run_id not in runs or event.type not in _SOURCE_TYPES:
            continue
        if event.type == SourceRecordDeleted.event_type:
            latest.pop(event.key, None)
            in_run.discard(event.key)
            continue
        latest[event.key] = str(event.event_id)
        if event.run_id == run_id:
            in_run.add(event.key)
        else:
            in_run.discard(event.key)
    return DeltaScope(run_id, base_run, latest, frozenset(in_run), frozenset(chain))


# --- detecting -------------------------------------------------------------------------------


def detect(
    location: str | Path,
    log: EventLog,
    *,
    run_id: str,
    base_run: str | None = None,
    deletions: DeletionMode = "flag",
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> DeltaSummary:
    """Compare the export at ``location`` with the delta state; append the delta run's events.

    Raises :class:`DeltaError` when there is no base run, or ``run_id`` already holds a full
    extraction; :class:`~producers.work4all.errors.ExportError` for an unreadable export.
    """
    deltas = delta_runs(log)
    if run_id in deltas and registered_export(log, run_id) is not None:
        return _summary_from_log(log, run_id, deltas[run_id])
    if run_id not in deltas and registered_export(log, run_id) is not None:
        raise DeltaError(f"run {run_id!r} holds a full extraction; a delta needs a new run id")
    if base_run is None:
        base_run = deltas[run_id][0] if run_id in deltas else _latest_full_run(log, deltas)
        if base_run is None:
            raise DeltaError("the log holds no extracted run to compare with; migrate one first")
    elif base_run in deltas:
        base_run = deltas[base_run][0]  # a delta of a delta keeps the chain's base
    if registered_export(log, base_run) is None:
        raise DeltaError(f"base run {base_run!r} has no extracted export in the log")
    state = delta_state(log, _chain(log, base_run, None) - {run_id})
    summary = DeltaSummary(run_id, base_run, deletions)
    log.append([_started(run_id, base_run, deletions, location)])
    export = open_export(location)
    try:
        normaliser = Normaliser.for_export(export)
        present: set[str] = set()
        seen: set[str] = set()
        tables: dict[str, int] = {}
        for name in TABLES:
            table = export.find_table(name)
            if table is None:
                continue
            present.add(name)
            events = _changes(export, normaliser, table, run_id, state, summary, seen, tables)
            while batch := list(islice(events, batch_size)):
                log.append(batch)
                if progress is not None:
                    progress(name, len(batch))
        gone = list(_deletions(state, seen, present, run_id, summary))
        for start in range(0, len(gone), batch_size):
            log.append(gone[start : start + batch_size])
        registered = ExportRegistered(location=_location(export), format=export.form, tables=tables)
        log.append(
            [
                Event.create(
                    registered,
                    run_id=run_id,
                    key=f"export:{run_id}",
                    phase=DELTA_PHASE,
                    cause=f"delta|{registered.location}",
                )
            ]
        )
    finally:
        export.close()
    return summary


def _started(run_id: str, base_run: str, deletions: str, location: str | Path) -> Event:
    payload = RunStarted(
        started_by="crmledger delta",
        description=f"delta of {base_run}",
        settings={"delta": True, "base_run": base_run, "deletions": deletions,
                  "export": str(location)},
    )  # fmt: skip
    return Event.create(payload, run_id=run_id, key=f"run:{run_id}", cause="delta", phase=None)


def _changes(
    export: Any,
    normaliser: Normaliser,
    table: str,
    run_id: str,
    state: dict[str, StateEntry],
    summary: DeltaSummary,
    seen: set[str],
    tables: dict[str, int],
) -> Iterator[Event]:
    source = export.source(table)
    for row in export.rows(table):
        record = normaliser.record(row, source)
        key = record_key(record)
        seen.add(key)
        tables[record.table] = tables.get(record.table, 0) + 1
        extracted = SourceRecordExtracted.model_validate(
            extracted_event(record, dict(row.raw), run_id).payload
        )
        before = state.get(key)
        previous = before.content_hash if before is not None else None
        if previous == extracted.content_hash:
            summary.unchanged[record.table] += 1
            continue
        (summary.new if previous is None else summary.changed)[record.table] += 1
        changed = SourceRecordChanged(
            table=extracted.table, source_key=extracted.source_key, raw=extracted.raw,
            normalised=extracted.normalised, content_hash=extracted.content_hash,
            previous_hash=previous, position=extracted.position, findings=extracted.findings,
        )  # fmt: skip
        yield Event.create(
            changed, run_id=run_id, key=key, cause=changed.content_hash, phase=DELTA_PHASE
        )


def _deletions(
    state: dict[str, StateEntry],
    seen: set[str],
    present: set[str],
    run_id: str,
    summary: DeltaSummary,
) -> Iterator[Event]:
    for key, entry in state.items():
        if entry.content_hash is None or key in seen:
            continue
        if entry.table not in present:
            summary.tables_missing[entry.table] = summary.tables_missing.get(entry.table, 0) + 1
            continue
        summary.deleted[entry.table] += 1
        deleted = SourceRecordDeleted(
            table=entry.table, source_key=key.split(":", 1)[1], previous_hash=entry.content_hash
        )
        yield Event.create(
            deleted, run_id=run_id, key=key, cause=f"deleted|{entry.content_hash}",
            phase=DELTA_PHASE,
        )  # fmt: skip


def _summary_from_log(
    log: EventLog, run_id: str, started: tuple[str, str, datetime]
) -> DeltaSummary:
    mode = started[1] if started[1] in ("delete", "deactivate", "flag") else "flag"
    summary = DeltaSummary(run_id, started[0], mode, already_detected=True)  # type: ignore[arg-type]
    for stored in log.read([Topic.SOURCE]):
        event = stored.event
        if event.run_id != run_id:
            continue
        table = str(event.payload["table"])
        if event.type == SourceRecordDeleted.event_type:
            summary.deleted[table] += 1
        elif event.type == SourceRecordChanged.event_type:
            new = event.payload.get("previous_hash") is None
            (summary.new if new else summary.changed)[table] += 1
    return summary
