"""One migration run from end to end: extract → transform → schema → every phase, gated.

:func:`migrate` is the code path of ``crmledger migrate`` and ``crmledger demo`` on both
deployments (the log and the projection store are whatever the settings name). It calls the
stages in the order of ARCHITECTURE.md section 4 and, per phase of the map in dependency order:

    require_gate(previous phase) → start_phase → write_phase → verify_phase → reconcile_phase

A failed gate stops the run before the next phase starts unless the operator gave an override
reason, which ``start_phase`` records in ``PhaseStarted``.

Resuming is the normal case, not a special one: every stage is idempotent against the log
(deterministic event ids, decisions already in the log skipped, an empty schema plan, writes
addressed by deterministic target ids), so re-running ``migrate`` for the same run appends
nothing for what is done. Two stages are skipped outright on a re-run because their work is
recorded: extraction, when the run already holds every record the export's
``ExportRegistered`` event counted (on Kafka a second extraction would append duplicates), and
a phase whose last ``PhaseReconciled`` passed and none of whose decisions is pending. A decision
is pending again after a rollback undid its write (:mod:`consumers.writing.plan`, write
generations): a phase rolled back since it passed is run again (written, verified and gated
with a new ``PhaseReconciled``), and the phases after it are gated by that latest verdict, as
always.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from consumers.dataverse.client import DataverseClient
from consumers.dataverse.metadata import MetadataApi
from consumers.dataverse.throttle import Throttle
from consumers.reconcile import GateFailedError, GateThresholds, reconcile_phase, start_phase
from consumers.verify import verify_phase
from consumers.write import WriteProgress, write_phase
from consumers.writing.plan import pending_by_phase
from ledger.event_types import (
    PhaseReconciled,
    PhaseStarted,
    TransformDecided,
)
from ledger.events import Event, Topic
from ledger.log import EventLog, Position
from producers.extract import export_files, extract, registered_export
from producers.mapping.gate import require_confirmed
from producers.mapping.model import MigrationMap
from producers.mapping.schema import apply as apply_schema
from producers.mapping.schema import plan as plan_schema
from producers.mapping.stage import TransformSummary, transform_run

__all__ = [
    "Display",
    "InProcessStages",
    "MigrationRequest",
    "MigrationSummary",
    "PhaseOutcome",
    "PhaseStages",
    "migrate",
    "phase_numbers",
    "stage_counts",
]

EXTRACT = "extract"
TRANSFORM = "transform"


class Display(Protocol):
    """What a progress display sees of a migration (``rich`` in the CLI, nothing in tests)."""

    def stage_started(self, stage: str, total: int | None) -> None:
        """A stage began; ``total`` records are expected when known."""

    def advanced(self, stage: str, records: int, throttled: int) -> None:
        """``records`` more records are done; ``throttled`` 429s were answered so far."""

    def stage_finished(self, stage: str, detail: str) -> None:
        """A stage ended (or was skipped: ``detail`` says so)."""


class _Silent:
    def stage_started(self, stage: str, total: int | None) -> None:
        return None

    def advanced(self, stage: str, records: int, throttled: int) -> None:
        return None

    def stage_finished(self, stage: str, detail: str) -> None:
        return None


@dataclass(frozen=True)
class MigrationRequest:
    """What to migrate, where the run is recorded and how far to go."""

    export: str
    """CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL of the work4all export."""
    run_id: str = "main"
    phases: tuple[int, ...] | None = None
    """Only these phases (each still gated by the one before it); None: every phase."""
    override_reason: str | None = None
    """An operator's reason to start a phase although the gate before it failed."""
    files: Path | None = None
    """The export's file store (attachments); default: the folder of the run's registered export."""
    thresholds: GateThresholds | None = None
    """The gates' thresholds; None: the strict defaults of :class:`GateThresholds`."""
    batch_size: int = 100
    workers: int | None = None


@dataclass
class PhaseOutcome:
    """What became of one phase: its gate's verdict and counts per object."""

    phase: int
    verdict: str
    """``passed``, ``failed``, or ``not started`` (stopped by the gate before it)."""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    resumed: bool = False
    """The phase had passed in an earlier invocation, nothing of it was pending (rolled back
    since), and it was not run again."""
    overridden: str | None = None
    seconds: float = 0.0


@dataclass
class MigrationSummary:
    """The outcome of one ``migrate`` invocation."""

    run_id: str
    map_hash: str
    extracted: int = 0
    extract_skipped: bool = False
    transform: TransformSummary | None = None
    schema_changes: int = 0
    phases: list[PhaseOutcome] = field(default_factory=list)
    throttled: int = 0
    stopped: str | None = None
    """Why the run stopped before its last phase (a failed gate), None when it went through."""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every phase that ran passed its gate (or was let through by an override)."""
        return self.stopped is None and all(outcome.verdict == "passed" for outcome in self.phases)


def phase_numbers(migration_map: MigrationMap) -> list[int]:
    """The map's phases in dependency order."""
    return sorted({obj.phase for obj in migration_map.objects})


def migrate(
    log: EventLog,
    client: DataverseClient,
    migration_map: MigrationMap,
    request: MigrationRequest,
    *,
    display: Display | None = None,
    stages: PhaseStages | None = None,
) -> MigrationSummary:
    """Run ``request`` to the end, or to the first failed gate (``summary.stopped`` says why).

    ``client`` applies the schema; ``stages`` write and verify each phase (default:
    :class:`InProcessStages` with ``client``). Raises
    :class:`~producers.mapping.gate.MapNotConfirmedError` before touching anything when the map
    is not confirmed, and the stages' own errors (unreadable export, Dataverse errors).
    """
    started = time.perf_counter()
    shown = display or _Silent()
    stages = stages or InProcessStages(client)
    require_confirmed(log, migration_map)
    all_phases = phase_numbers(migration_map)
    wanted = _wanted_phases(all_phases, request.phases)
    summary = MigrationSummary(request.run_id, migration_map.content_hash)
    _extract(log, request, summary, shown)
    summary.transform = _transform(log, migration_map, request, shown)
    summary.schema_changes = _schema(log, client, migration_map, request.run_id, shown)
    reconciled = _last_reconciled(log, request.run_id)
    pending = pending_by_phase(log, request.run_id)
    for phase in wanted:
        previous = reconciled.get(phase)
        if previous is not None and previous.verdict == "passed" and not pending[phase]:
            summary.phases.append(
                PhaseOutcome(phase, "passed", dict(previous.counts), list(previous.reasons),
                             resumed=True)
            )  # fmt: skip
            shown.stage_finished(f"phase {phase}", "passed its gate earlier in this run")
            continue
        try:
            outcome = _run_phase(log, stages, migration_map, request, phase, shown)
        except GateFailedError as error:
            summary.stopped = str(error)
            summary.phases.append(PhaseOutcome(phase, "not started", reasons=[str(error)]))
            break
        summary.phases.append(outcome)
    summary.throttled = stages.throttled()
    summary.seconds = time.perf_counter() - started
    if summary.stopped is None:
        failed = [outcome for outcome in summary.phases if outcome.verdict == "failed"]
        if failed:
            last = failed[-1]
            summary.stopped = (
                f"phase {last.phase} failed its gate: {'; '.join(last.reasons) or 'see counts'}"
            )
    return summary


def _wanted_phases(all_phases: list[int], requested: tuple[int, ...] | None) -> list[int]:
    if requested is None:
        return all_phases
    unknown = sorted(set(requested) - set(all_phases))
    if unknown:
        from producers.mapping.model import MapError

        raise MapError(
            f"the map has no phase {', '.join(map(str, unknown))};"
            f" its phases are {', '.join(map(str, all_phases))}"
        )
    return sorted(set(requested))


# --- stages -----------------------------------------------------------------------------------


def _extract(
    log: EventLog, request: MigrationRequest, summary: MigrationSummary, shown: Display
) -> None:
    # ExportRegistered is appended after the last table: with it, the run's extraction is whole.
    registered = registered_export(log, request.run_id)
    if registered is not None:
        summary.extracted, summary.extract_skipped = sum(registered.tables.values()), True
        shown.stage_finished(
            EXTRACT, f"{summary.extracted:,} records already extracted in this run"
        )
        return
    shown.stage_started(EXTRACT, None)

    def advance(_table: str, count: int) -> None:
        shown.advanced(EXTRACT, count, 0)

    result = extract(request.export, log, run_id=request.run_id, progress=advance)
    summary.extracted = result.total
    shown.stage_finished(EXTRACT, f"{result.total:,} records")


def _transform(
    log: EventLog, migration_map: MigrationMap, request: MigrationRequest, shown: Display
) -> TransformSummary:
    shown.stage_started(TRANSFORM, None)

    def advance(step: str, count: int) -> None:
        if step != "index":
            shown.advanced(TRANSFORM, count, 0)

    files = request.files if request.files is not None else export_files(log, request.run_id)
    result = transform_run(log, migration_map, run_id=request.run_id, progress=advance, files=files)
    rejected = sum(counts.rejected for counts in result.objects.values())
    shown.stage_finished(
        TRANSFORM,
        f"{result.records:,} records decided ({rejected:,} rejected),"
        f" {result.appended:,} new decisions",
    )
    return result


def _schema(
    log: EventLog,
    client: DataverseClient,
    migration_map: MigrationMap,
    run_id: str,
    shown: Display,
) -> int:
    metadata = MetadataApi(client)
    schema_plan = plan_schema(migration_map, metadata)
    if schema_plan.empty:
        shown.stage_finished("schema", "Dataverse already has what the map needs")
        return 0
    shown.stage_started("schema", len(schema_plan.changes))
    events = apply_schema(schema_plan, metadata, log, run_id)
    shown.advanced("schema", len(events), 0)
    shown.stage_finished("schema", f"{len(events)} change(s) applied")
    return len(events)


def _run_phase(
    log: EventLog,
    stages: PhaseStages,
    migration_map: MigrationMap,
    request: MigrationRequest,
    phase: int,
    shown: Display,
) -> PhaseOutcome:
    started = time.perf_counter()
    run_id = request.run_id
    tables = sorted(
        {source for obj in migration_map.objects if obj.phase == phase for source in obj.sources}
    )
    # a phase run again (rolled back since) appends a PhaseStarted of the same id: its workers'
    # completions are the ones after this position
    before = log.end_position([Topic.CONTROL])
    # start_phase checks the previous phase's gate (GateFailedError) and records an override.
    start = start_phase(
        log, run_id=run_id, phase=phase, objects=tables, override_reason=request.override_reason
    )
    stages.write_and_verify(log, request, phase, start, shown, after=before)
    event = reconcile_phase(log, run_id=run_id, phase=phase, thresholds=request.thresholds)
    result = PhaseReconciled.model_validate(event.payload)
    shown.stage_finished(f"phase {phase} gate", result.verdict)
    return PhaseOutcome(
        phase, result.verdict, dict(result.counts), list(result.reasons),
        overridden=PhaseStarted.model_validate(start.payload).override_reason,
        seconds=time.perf_counter() - started,
    )  # fmt: skip


class PhaseStages(Protocol):
    """Who writes and verifies a started phase: this process, or workers (Kafka mode)."""

    def write_and_verify(
        self,
        log: EventLog,
        request: MigrationRequest,
        phase: int,
        start: Event,
        shown: Display,
        *,
        after: Position | None = None,
    ) -> None:
        """Write, then verify, every decision of ``phase`` (started by ``start``); then return.

        ``after``: the control topic's end just before ``start`` was appended; what completes
        this start comes after it (a phase run again repeats its ``PhaseStarted``).
        """

    def throttled(self) -> int:
        """429 responses met so far."""


class InProcessStages:
    """Write and verify in this process (the embedded deployment, and Kafka without workers).

    ``throttle`` paces every request of ``client``; build that client with
    ``RetryPolicy(max_retries=0)`` then, so retries are the throttle's. Without one the client
    retries by itself.
    """

    def __init__(self, client: DataverseClient, throttle: Throttle | None = None) -> None:
        self.client = client
        self.throttle = throttle

    def throttled(self) -> int:
        """429s seen by the throttle and by the client."""
        count = self.client.stats.throttled
        if self.throttle is not None:
            stats = self.throttle.stats()
            count += stats.throttled + stats.concurrency_limited
        return count

    def write_and_verify(
        self,
        log: EventLog,
        request: MigrationRequest,
        phase: int,
        start: Event,
        shown: Display,
        *,
        after: Position | None = None,
    ) -> None:
        """Call ``write_phase`` then ``verify_phase`` with progress (``after`` is not needed)."""
        run_id = request.run_id
        write_stage, verify_stage = f"phase {phase} write", f"phase {phase} verify"
        decided = _decided_count(log, run_id, phase)
        shown.stage_started(write_stage, decided)
        done = 0

        def on_write(state: WriteProgress) -> None:
            nonlocal done
            shown.advanced(write_stage, state.done - done, self.throttled())
            done = state.done

        written = write_phase(
            log, self.client, run_id=run_id, phase=phase, throttle=self.throttle,
            batch_size=request.batch_size, workers=request.workers, progress=on_write,
        )  # fmt: skip
        shown.stage_finished(write_stage, _describe(written))
        shown.stage_started(verify_stage, written.written + written.already_done)

        def on_verify(_table: str, records: int) -> None:
            shown.advanced(verify_stage, records, self.throttled())

        verified = verify_phase(
            log, self.client, run_id=run_id, phase=phase, throttle=self.throttle,
            progress=on_verify,
        )  # fmt: skip
        shown.stage_finished(verify_stage, _describe(verified))


_STAGE_COUNTS = (
    "written", "failed", "already_done", "verified", "mismatched", "already_verified",
    "throttled",
)  # fmt: skip


def stage_counts(result: object) -> dict[str, int]:
    """The record counts a write or verify summary reports (fields or properties)."""
    counts: dict[str, int] = {}
    for name in _STAGE_COUNTS:
        value = getattr(result, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            counts[name] = value
    return counts


def _describe(result: object) -> str:
    counts = stage_counts(result)
    return ", ".join(
        f"{value:,} {name.replace('_', ' ')}" for name, value in counts.items() if value
    )


# --- what the log already holds ---------------------------------------------------------------


def _decided_count(log: EventLog, run_id: str, phase: int) -> int:
    counts: Counter[str | None] = Counter(
        stored.event.phase
        for stored in log.read([Topic.DECISIONS])
        if stored.event.run_id == run_id and stored.event.type == TransformDecided.event_type
    )
    return counts[str(phase)]


def _last_reconciled(log: EventLog, run_id: str) -> dict[int, PhaseReconciled]:
    found: dict[int, tuple[Any, PhaseReconciled]] = {}
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.run_id != run_id or event.type != PhaseReconciled.event_type:
            continue
        phase = _phase_of(event.phase)
        if phase is None:
            continue
        previous = found.get(phase)
        if previous is None or previous[0] <= event.occurred_at:
            found[phase] = (event.occurred_at, PhaseReconciled.model_validate(event.payload))
    return {phase: payload for phase, (_, payload) in found.items()}


def _phase_of(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
