"""A delta run through Dataverse: its changed records phase by phase, gated; then its deletions.

:func:`migrate_delta` takes a delta run whose source events :func:`producers.delta.detect`
appended and runs it as a migration does (:func:`consumers.migrate.migrate`), with two
differences:

- **Gates count the delta**: a phase's ``extracted`` are the run's ``SourceRecordChanged``
  records of the phase's tables, by the one counting rule of :mod:`projections.counting`
  (:func:`delta_phase_counts`); the invariants and thresholds are
  those of :func:`consumers.reconcile.gate_reasons`, and the verdict is a ``PhaseReconciled`` as
  usual, so ``start_phase`` gates the next phase of the delta run.
- **Deletions come last**, after every phase passed, in reverse dependency order (a contact
  before its account: deleting the account first could take its contacts with it in a real
  tenant before their before-images are read). What a deletion does is the run's
  ``source_deletion`` mode (``RunStarted.settings.deletions``, else the map's
  ``settings.source_deletion``):

  ``delete``      ``DestinationDeleteIntended`` (the whole row as read, with the target
                  table of each lookup) → ``DELETE`` → ``DestinationRowDeleted`` (the same
                  before-image): a rollback re-creates it, lookups included.
  ``deactivate``  ``DestinationWriteIntended`` → ``PATCH statecode=1`` → ``DestinationWritten``
                  ``op="update"`` with the previous ``statecode``/``statuscode`` as before-image:
                  a rollback restores it like any update.
  ``flag``        ``SourceDeletionFlagged``: nothing changes in Dataverse; the report lists it.

  A record whose row another record shares (a supplier merged into a customer's account) or that
  was never written is flagged with the reason, whatever the mode. Every deletion event is keyed
  by the source key, carries the phase of the row's earlier write and has the
  ``SourceRecordDeleted`` as ``causation_id``; a deletion with an outcome event is not redone.
- **Withdrawals** go with the deletions: a record the delta run rejects (a changed record that
  lost a required value, or a knock-on such as a contact whose account was deleted) whose row a
  run of the chain wrote would not exist after a fresh migration of the newer export, so its
  row is withdrawn by the same mode and mechanics, with the ``RecordRejected`` as
  ``causation_id`` and ``rejected by the delta: <first reason>`` as the reason. A rollback of
  the delta run re-creates a withdrawn row as it re-creates a deleted one.

  Deletions and withdrawals run together, children first: by the phase of the row's write,
  then latest created first (within a phase the writer creates parents before their children,
  a quote before its lines).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from consumers.dataverse.client import DataverseClient
from consumers.dataverse.errors import DataverseError
from consumers.dataverse.metadata import MetadataApi
from consumers.migrate import Display, InProcessStages, MigrationRequest, PhaseStages
from consumers.reconcile import (
    GateFailedError,
    GateThresholds,
    gate_reasons,
    latest_reconciliation,
    phase_counts,
    start_phase,
)
from consumers.writing.plan import pending_by_phase
from consumers.writing.rows import primary_id
from ledger.event_types import (
    DestinationDeleteIntended,
    DestinationRecreated,
    DestinationRestored,
    DestinationRowDeleted,
    DestinationWriteFailed,
    DestinationWriteIntended,
    DestinationWritten,
    PhaseReconciled,
    RecordRejected,
    SourceDeletionFlagged,
    SourceRecordDeleted,
)
from ledger.events import Event, EventPayload, Topic, content_hash
from ledger.log import EventLog
from producers.delta import DeletionMode, delta_chain, delta_runs, rolled_back_runs
from producers.extract import export_files
from producers.mapping.context import target_id
from producers.mapping.gate import require_confirmed
from producers.mapping.model import MigrationMap
from producers.mapping.rules import WARNINGS_KEY, entity_set
from producers.mapping.schema import apply as apply_schema
from producers.mapping.schema import plan as plan_schema
from producers.mapping.stage import TransformSummary, transform_run

__all__ = [
    "DeletionCounts",
    "DeltaMigrationSummary",
    "DeltaRunError",
    "apply_deletions",
    "deletion_totals",
    "delta_phase_counts",
    "migrate_delta",
    "withdrawal_totals",
]

_DELETION_OUTCOMES = frozenset(
    {
        DestinationRowDeleted.event_type,
        DestinationWritten.event_type,
        SourceDeletionFlagged.event_type,
        DestinationWriteFailed.event_type,
    }
)
_LOOKUP_TARGET = "@Microsoft.Dynamics.CRM.lookuplogicalname"
_LOOKUP_TARGETS = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
"""``Prefer`` value that makes Dataverse name the target table of every lookup value."""


_UNDOING = frozenset({DestinationRecreated.event_type, DestinationRestored.event_type})
"""Rollback events that undo a deletion's outcome (their ``causation_id`` is the outcome's id)."""


class DeltaRunError(ValueError):
    """The run is not a delta run (``crmledger delta`` creates one)."""


@dataclass
class DeletionCounts:
    """What became of one source table's deleted records."""

    deleted: int = 0
    deactivated: int = 0
    flagged: int = 0
    failed: int = 0
    already_done: int = 0


@dataclass
class DeltaMigrationSummary:
    """The outcome of one :func:`migrate_delta` call."""

    run_id: str
    deletions_mode: DeletionMode
    transform: TransformSummary | None = None
    schema_changes: int = 0
    phases: dict[int, PhaseReconciled] = field(default_factory=dict)
    resumed: list[int] = field(default_factory=list)
    deletions: dict[str, DeletionCounts] = field(default_factory=dict)
    withdrawals: dict[str, DeletionCounts] = field(default_factory=dict)
    """rows of records the delta run rejects, withdrawn as deletions are, per source table."""
    failures: list[str] = field(default_factory=list)
    """deletions and withdrawals Dataverse refused: ``key: message``."""
    stopped: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every phase passed its gate and every deletion was carried out."""
        return (
            self.stopped is None
            and all(result.verdict == "passed" for result in self.phases.values())
            and not self.failures
        )


def migrate_delta(
    log: EventLog,
    client: DataverseClient,
    migration_map: MigrationMap,
    *,
    run_id: str,
    deletions: DeletionMode | None = None,
    thresholds: GateThresholds | None = None,
    stages: PhaseStages | None = None,
    display: Display | None = None,
    files: Path | None = None,
    batch_size: int = 100,
) -> DeltaMigrationSummary:
    """Transform, write, verify and gate every phase of delta run ``run_id``; then its deletions.

    ``deletions`` overrides the mode the run was detected with. Resuming is the normal case: a
    phase whose gate passed is not run again, a deletion with an outcome is not redone. Raises
    :class:`DeltaRunError` for a run that is not a delta run and
    :class:`~producers.mapping.gate.MapNotConfirmedError` for an unconfirmed map.
    """
    started = time.perf_counter()
    runs = delta_runs(log)
    if run_id not in runs:
        raise DeltaRunError(
            f"run {run_id!r} is not a delta run; `crmledger delta EXPORT` makes one"
        )
    if run_id in rolled_back_runs(log):
        raise DeltaRunError(
            f"delta run {run_id!r} was rolled back; run the newer export as a new delta run"
            f" (`crmledger delta EXPORT --run NEW --base-run {runs[run_id][0]}`): the delta"
            " state no longer counts this one"
        )
    require_confirmed(log, migration_map)
    mode = deletions or _mode(runs[run_id][1], migration_map)
    summary = DeltaMigrationSummary(run_id, mode)
    stages = stages or InProcessStages(client)
    summary.transform = transform_run(
        log, migration_map, run_id=run_id, files=files or export_files(log, run_id)
    )
    metadata = MetadataApi(client)
    schema_plan = plan_schema(migration_map, metadata)
    if not schema_plan.empty:
        summary.schema_changes = len(apply_schema(schema_plan, metadata, log, run_id))
    phases = sorted({obj.phase for obj in migration_map.objects})
    request = MigrationRequest(export="", run_id=run_id, thresholds=thresholds,
                               batch_size=batch_size)  # fmt: skip
    pending = pending_by_phase(log, run_id)
    for phase in phases:
        latest = latest_reconciliation(log, run_id=run_id, phase=phase)
        if latest is not None and latest.payload["verdict"] == "passed" and not pending[phase]:
            summary.phases[phase] = PhaseReconciled.model_validate(latest.payload)
            summary.resumed.append(phase)
            continue
        tables = sorted(
            {
                source
                for obj in migration_map.objects
                if obj.phase == phase
                for source in obj.sources
            }
        )
        before = log.end_position([Topic.CONTROL])  # a phase run again repeats its start
        try:
            start = start_phase(log, run_id=run_id, phase=phase, objects=tables)
        except GateFailedError as error:
            summary.stopped = str(error)
            break
        stages.write_and_verify(log, request, phase, start, display or _Silent(), after=before)
        summary.phases[phase] = reconcile_delta_phase(log, run_id, phase, thresholds)
    failed = [p for p, result in summary.phases.items() if result.verdict != "passed"]
    if summary.stopped is None and failed:
        summary.stopped = f"phase {failed[-1]} failed its gate: " + "; ".join(
            summary.phases[failed[-1]].reasons
        )
    if summary.stopped is None:
        apply_deletions(log, client, run_id=run_id, mode=mode, summary=summary)
    summary.seconds = time.perf_counter() - started
    return summary


class _Silent:
    def stage_started(self, stage: str, total: int | None) -> None:
        return None

    def advanced(self, stage: str, records: int, throttled: int) -> None:
        return None

    def stage_finished(self, stage: str, detail: str) -> None:
        return None


def _mode(recorded: str, migration_map: MigrationMap) -> DeletionMode:
    if recorded in ("delete", "deactivate", "flag"):
        return recorded  # type: ignore[return-value]
    return migration_map.settings.source_deletion


# --- gates -----------------------------------------------------------------------------------


def delta_phase_counts(log: EventLog, run_id: str, phase: int) -> dict[str, dict[str, int]]:
    """The counts (:data:`~consumers.reconcile.COUNT_NAMES`) of ``phase`` of a delta run.

    :func:`consumers.reconcile.phase_counts`: one rule for every run (its changed and new
    records are the extracted ones; deletions are never written).
    """
    return phase_counts(log, run_id=run_id, phase=phase)


def reconcile_delta_phase(
    log: EventLog, run_id: str, phase: int, thresholds: GateThresholds | None = None
) -> PhaseReconciled:
    """Count ``phase`` of a delta run, judge it and append its ``PhaseReconciled``."""
    counts = delta_phase_counts(log, run_id, phase)
    reasons = gate_reasons(counts, thresholds or GateThresholds())
    verdict: Literal["passed", "failed"] = "failed" if reasons else "passed"
    payload = PhaseReconciled(counts=counts, verdict=verdict, reasons=reasons)
    ends = sorted(
        (str(partition), offset)
        for partition, offset in log.end_position([Topic.SOURCE, Topic.DECISIONS, Topic.WRITES])
        .items()
    )  # fmt: skip
    event = Event.create(
        payload, run_id=run_id, key=f"phase:{phase}", phase=str(phase),
        cause=f"delta-reconcile|{content_hash({'counts': counts, 'log': ends})}",
    )  # fmt: skip
    log.append([event])
    return payload


# --- deletions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    """The Dataverse row a deleted source record became, as its latest write says."""

    table: str
    row_id: str
    phase: str | None
    created: int = 0
    """position of the row's first write among the writes: parents come before children."""


def apply_deletions(
    log: EventLog,
    client: DataverseClient,
    *,
    run_id: str,
    mode: DeletionMode,
    summary: DeltaMigrationSummary | None = None,
) -> DeltaMigrationSummary:
    """Carry out every ``SourceRecordDeleted`` of ``run_id`` by ``mode``, and withdraw the rows
    of the records it rejects that the chain wrote (see the module doc)."""
    summary = summary or DeltaMigrationSummary(run_id, mode)
    deleted: list[Event] = []
    done: set[str] = set()
    for stored in log.read([Topic.SOURCE]):
        if stored.event.run_id == run_id and stored.event.type == SourceRecordDeleted.event_type:
            deleted.append(stored.event)
    rejected = _rejected(log, run_id)
    if not deleted and not rejected:
        return summary
    intents: dict[str, Event] = {}
    outcome_of: dict[str, str] = {}  # outcome event id → the deletion (or rejection) it carried out
    after: dict[str, str] = {}  # deletion → "|after <undone outcome>": its next generation's cause
    for stored in log.read([Topic.WRITES]):
        event = stored.event
        if event.run_id != run_id or event.causation_id is None:
            continue
        cause = str(event.causation_id)
        if event.type in _DELETION_OUTCOMES:
            done.add(cause)
            outcome_of[str(event.event_id)] = cause
        elif event.type in (
            DestinationDeleteIntended.event_type,
            DestinationWriteIntended.event_type,
        ):
            intents[cause] = event
        elif event.type in _UNDOING and cause in outcome_of:
            # a rollback undid it (re-created or re-activated the row): done anew, new events
            deletion = outcome_of.pop(cause)
            done.discard(deletion)
            intents.pop(deletion, None)
            after[deletion] = f"|after {cause}"
    rows = _rows_of(log, run_id, {event.key for event in deleted} | set(rejected))
    withdrawn = [event for key, event in rejected.items() if key in rows]
    ordered = sorted([*deleted, *withdrawn], key=lambda e: _order(rows.get(e.key)), reverse=True)
    for event in ordered:
        table = event.key.split(":", 1)[0]
        withdrawal = event.type == RecordRejected.event_type
        counts = (summary.withdrawals if withdrawal else summary.deletions).setdefault(
            table, DeletionCounts()
        )
        if str(event.event_id) in done:
            counts.already_done += 1
            continue
        generation = after.get(str(event.event_id), "")
        outcome = _apply_one(client, event, rows.get(event.key), mode, intents, log, generation)
        log.append([outcome])
        if outcome.type == DestinationRowDeleted.event_type:
            counts.deleted += 1
        elif outcome.type == DestinationWritten.event_type:
            counts.deactivated += 1
        elif outcome.type == SourceDeletionFlagged.event_type:
            counts.flagged += 1
        else:
            counts.failed += 1
            summary.failures.append(f"{event.key}: {outcome.payload['message']}")
    return summary


def _order(row: _Row | None) -> tuple[int, int]:
    if row is None:
        return (-1, -1)
    return (int(row.phase) if row.phase and row.phase.isdigit() else -1, row.created)


def _rejected(log: EventLog, run_id: str) -> dict[str, Event]:
    """Per key whose latest decision in ``run_id`` is a ``RecordRejected``: that event."""
    latest: dict[str, Event] = {}
    for stored in log.read([Topic.DECISIONS]):
        if stored.event.run_id == run_id:
            latest[stored.event.key] = stored.event
    return {key: e for key, e in latest.items() if e.type == RecordRejected.event_type}


def _first_reason(rejected: Event) -> str:
    reasons: dict[str, list[str]] = rejected.payload.get("reasons") or {}
    for column, texts in reasons.items():
        if column != WARNINGS_KEY and texts:
            return str(texts[0])
    return "no reason given"


def _rows_of(log: EventLog, run_id: str, keys: set[str]) -> dict[str, _Row]:
    """Per deleted key, the row its latest write (in the base chain) created or updated."""
    deltas = delta_runs(log)
    base = deltas[run_id][0] if run_id in deltas else run_id
    chain = delta_chain(log, base, run_id)  # earlier runs only; rolled-back ones left out
    rows: dict[str, _Row] = {}
    for position, stored in enumerate(log.read([Topic.WRITES])):
        event = stored.event
        if event.key not in keys or event.run_id not in chain:
            continue
        if event.type == DestinationWritten.event_type:
            earlier = rows.get(event.key)
            rows[event.key] = _Row(
                str(event.payload["target_table"]),
                str(event.payload["target_id"]).lower(),
                event.phase,
                earlier.created if earlier is not None else position,
            )
        elif event.type == DestinationRowDeleted.event_type:
            rows.pop(event.key, None)
    return rows


def _apply_one(
    client: DataverseClient,
    deleted: Event,
    row: _Row | None,
    mode: DeletionMode,
    intents: dict[str, Event],
    log: EventLog,
    after: str = "",
) -> Event:
    """Delete, deactivate or flag the row of ``deleted``: a ``SourceRecordDeleted``, or the
    ``RecordRejected`` of a withdrawal."""
    table_name, code = deleted.key.split(":", 1)
    why = (
        f"rejected by the delta: {_first_reason(deleted)}"
        if deleted.type == RecordRejected.event_type
        else None
    )

    def flagged(reason: str) -> str:
        return reason if why is None else f"{why}; {reason}"

    if row is None:
        return _event(
            SourceDeletionFlagged(
                reason=flagged("never written to Dataverse (rejected or not migrated)")
            ),
            deleted, None, "flagged" + after,
        )  # fmt: skip
    if row.row_id != target_id(table_name, code).lower():
        return _event(
            SourceDeletionFlagged(
                target_table=row.table, target_id=row.row_id,
                reason=flagged(
                    "the row belongs to another record too (merged into it); left alone"
                ),
            ),
            deleted, row, "flagged" + after,
        )  # fmt: skip
    if mode == "flag":
        return _event(
            SourceDeletionFlagged(
                target_table=row.table, target_id=row.row_id,
                reason=flagged("source_deletion = flag"),
            ),
            deleted, row, "flagged" + after,
        )  # fmt: skip
    path = f"{entity_set(row.table)}({row.row_id})"
    intent = intents.get(str(deleted.event_id))
    try:
        if intent is not None:
            before = dict(intent.payload["before_image"] or {})
        else:
            current = _read(client, path)
            if current is None:
                return _event(
                    SourceDeletionFlagged(
                        target_table=row.table, target_id=row.row_id,
                        reason=flagged("the row is no longer in Dataverse"),
                    ),
                    deleted, row, "flagged" + after,
                )  # fmt: skip
            if mode == "deactivate" and "statecode" not in current:
                return _event(
                    SourceDeletionFlagged(
                        target_table=row.table, target_id=row.row_id,
                        reason=flagged(f"{row.table} rows have no state to deactivate; left alone"),
                    ),
                    deleted, row, "flagged" + after,
                )  # fmt: skip
            before = _image(current, row.table, mode)
            log.append([_intent(deleted, row, mode, before, after)])
        if mode == "delete":
            try:
                client.delete(path)
            except DataverseError as error:
                if error.status != 404:  # gone since the intent: the delete had been sent
                    raise
            return _event(
                DestinationRowDeleted(
                    target_table=row.table, target_id=row.row_id, before_image=before,
                    reason=why or "source record deleted",
                ),
                deleted, row, "deleted" + after,
            )  # fmt: skip
        client.patch(path, {"statecode": 1})
        return _event(
            DestinationWritten(
                target_table=row.table, target_id=row.row_id, op="update", before_image=before
            ),
            deleted, row, "deactivated" + after,
        )  # fmt: skip
    except DataverseError as error:
        return _event(
            DestinationWriteFailed(
                target_table=row.table, target_id=row.row_id, status=error.status,
                error_code=error.code, message=f"{mode}: {error.message}",
            ),
            deleted, row, "failed" + after,
        )  # fmt: skip


def _read(client: DataverseClient, path: str) -> dict[str, Any] | None:
    try:
        return client.get(path, headers={"Prefer": _LOOKUP_TARGETS})
    except DataverseError as error:
        if error.status == 404:
            return None
        raise


def _image(row: dict[str, Any], table: str, mode: DeletionMode) -> dict[str, Any]:
    """The before-image of a deletion: the state a deactivation changes, or the whole row with
    the target table of each lookup that holds a value (``_x_value@…lookuplogicalname``), so a
    rollback can bind every lookup again when it re-creates the row."""
    if mode == "deactivate":
        return {name: row.get(name) for name in ("statecode", "statuscode")}
    image = {
        name: value
        for name, value in row.items()
        if "@" not in name or (name.endswith(_LOOKUP_TARGET) and value is not None)
    }
    image.setdefault(primary_id(table), None)
    return image


def _intent(
    deleted: Event, row: _Row, mode: DeletionMode, before: dict[str, Any], after: str = ""
) -> Event:
    payload: EventPayload
    if mode == "delete":
        payload = DestinationDeleteIntended(
            target_table=row.table, target_id=row.row_id, before_image=before
        )
    else:
        payload = DestinationWriteIntended(
            target_table=row.table, target_id=row.row_id, op="update", before_image=before,
            steps=["SetState 1"],
        )  # fmt: skip
    return _event(payload, deleted, row, f"intent|{mode}{after}")


def _event(payload: EventPayload, deleted: Event, row: _Row | None, what: str) -> Event:
    kind = "withdrawal" if deleted.type == RecordRejected.event_type else "source-deletion"
    return Event.create(
        payload, run_id=deleted.run_id, key=deleted.key, phase=row.phase if row else None,
        cause=f"{kind}|{what}|{deleted.event_id}", causation_id=deleted.event_id,
    )  # fmt: skip


def deletion_totals(summary: DeltaMigrationSummary) -> Counter[str]:
    """deleted / deactivated / flagged / failed over every table (source deletions)."""
    return _totals(summary.deletions)


def withdrawal_totals(summary: DeltaMigrationSummary) -> Counter[str]:
    """deleted / deactivated / flagged / failed over every table (withdrawn rejected rows)."""
    return _totals(summary.withdrawals)


def _totals(by_table: dict[str, DeletionCounts]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for counts in by_table.values():
        totals.update(
            deleted=counts.deleted, deactivated=counts.deactivated, flagged=counts.flagged,
            failed=counts.failed,
        )  # fmt: skip
    return totals
