"""Stage workers for the distributed deployment: long-running consumers of control events.

``crmledger migrate`` on a ``kafka://`` log orchestrates a phase through the control topic
instead of calling the stages itself::

    migrate:  PhaseStarted(P) ──▶ write worker: write_phase ──▶ StageCompleted(write, P)
              ──▶ verify worker: verify_phase ──▶ StageCompleted(verify, P) ──▶ migrate reconciles

Each worker is a member of a consumer group (``crmledger.worker.write.<log>``, …), so several
may run: Kafka gives each control event to one member, a member that dies has its uncommitted events
redelivered to another, and because the stages are idempotent a redelivered phase is finished,
never done twice. A ``StageCompleted`` carries the ``PhaseStarted`` event id as its causation,
so the orchestrator waits for the completion of exactly the phase start it appended.

A worker exits after one phase with ``once``, or when a ``WorkersStopRequested`` for its stage
is appended after it started. The stop request is read from the whole control topic, not
through the group, because every member must see it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from consumers.migrate import Display, MigrationRequest
from ledger.event_types import (
    DestinationWriteFailed,
    DestinationWritten,
    FieldMismatch,
    PhaseStarted,
    RecordVerified,
    StageCompleted,
    WorkersStopRequested,
)
from ledger.events import Event, Topic
from ledger.log import CommitFailedError, EventLog, Partition, Position, StoredEvent, advance

__all__ = [
    "PhaseHandler",
    "Stage",
    "WorkerReport",
    "WorkerStages",
    "WorkersStalledError",
    "completion",
    "group_of",
    "request_stop",
    "run_phase_worker",
    "run_until_stopped",
]

Stage = Literal["write", "verify"]
PhaseHandler = Callable[[str, int], Mapping[str, int]]
"""``handler(run_id, phase)`` does the stage for one phase and returns its counts."""

_POLL_TIMEOUT_S = 1.0


def group_of(stage: str, log: EventLog) -> str:
    """The consumer group of a stage's workers on ``log``.

    The log's URL is part of it, so deployments sharing a Kafka cluster under different topic
    prefixes never share a group.
    """
    return f"crmledger.worker.{stage}.{hashlib.sha256(log.url.encode()).hexdigest()[:12]}"


@dataclass
class WorkerReport:
    """What one worker did before it exited."""

    stage: str
    phases: list[tuple[str, int]] = field(default_factory=list)
    """(run, phase) handled, in order."""
    stopped: bool = False
    """It exited because a stop was requested (not because of ``once``)."""


def run_phase_worker(
    log: EventLog,
    stage: Stage,
    handler: PhaseHandler,
    *,
    run_id: str | None = None,
    once: bool = False,
    on_idle: Callable[[], None] | None = None,
) -> WorkerReport:
    """Consume the control topic in ``stage``'s group and run ``handler`` per triggering event.

    ``write`` is triggered by ``PhaseStarted``, ``verify`` by ``StageCompleted(write)``. Only
    events of ``run_id`` count when it is given. Returns when a stop is requested, or after one
    phase with ``once``.
    """
    report = WorkerReport(stage)
    stops = _StopWatch(log, stage, run_id)
    with log.subscribe(group_of(stage, log), [Topic.CONTROL]) as subscription:
        while True:
            polled = subscription.poll(max_events=50, timeout=_POLL_TIMEOUT_S)
            for stored in polled:
                trigger = _trigger(stored.event, stage, run_id)
                if trigger is None:
                    continue
                started_id, phase = trigger
                counts = handler(stored.event.run_id, phase)
                log.append([_completed(stored.event, stage, phase, started_id, counts)])
                report.phases.append((stored.event.run_id, phase))
            if polled:
                try:
                    subscription.commit(polled)
                except CommitFailedError:
                    continue  # rebalanced: the uncommitted events come again, to someone
            if once and report.phases:
                return report
            if stops.requested():
                report.stopped = True
                return report
            if not polled and on_idle is not None:
                on_idle()


def run_until_stopped(
    log: EventLog,
    stage: str,
    step: Callable[[], int],
    *,
    run_id: str | None = None,
    once: bool = False,
    interval_s: float = 1.0,
) -> WorkerReport:
    """Call ``step`` (e.g. one projection pass) until a stop is requested; once with ``once``.

    A stop request is honoured after one last ``step``, so what was appended before it is
    processed.
    """
    report = WorkerReport(stage)
    stops = _StopWatch(log, stage, run_id)
    while True:
        stopping = stops.requested()
        done = step()
        if once or stopping:
            report.stopped = stopping
            return report
        if not done:
            time.sleep(interval_s)


def request_stop(log: EventLog, run_id: str, stages: list[str], reason: str = "") -> Event:
    """Append ``WorkersStopRequested`` for ``stages`` (every stage when empty)."""
    payload = WorkersStopRequested(stages=sorted(stages), reason=reason)
    event = Event.create(
        payload, run_id=run_id, key=f"workers:{run_id}", cause=uuid.uuid4().hex
    )  # a fresh id: every request is a new fact
    log.append([event])
    return event


def completion(
    log: EventLog, run_id: str, stage: Stage, started_id: uuid.UUID, start: Mapping[Partition, int]
) -> tuple[StageCompleted | None, dict[Partition, int]]:
    """The ``StageCompleted`` of ``stage`` for the phase start ``started_id``, read from ``start``.

    Returns it (or None) and the position to read from next time.
    """
    found: StageCompleted | None = None
    events = list(log.read([Topic.CONTROL], start))
    for stored in events:
        event = stored.event
        if (
            event.run_id == run_id
            and event.type == StageCompleted.event_type
            and event.causation_id == started_id
        ):
            payload = StageCompleted.model_validate(event.payload)
            if payload.stage == stage:
                found = payload
    return found, advance(start, events)


def _trigger(event: Event, stage: Stage, run_id: str | None) -> tuple[uuid.UUID, int] | None:
    """(the PhaseStarted id, phase) when ``event`` starts ``stage``'s work, else None."""
    if run_id is not None and event.run_id != run_id:
        return None
    if stage == "write" and event.type == PhaseStarted.event_type:
        return event.event_id, PhaseStarted.model_validate(event.payload).phase_number
    if stage == "verify" and event.type == StageCompleted.event_type:
        done = StageCompleted.model_validate(event.payload)
        if done.stage == "write" and event.causation_id is not None:
            return event.causation_id, done.phase_number
    return None


def _completed(
    trigger: Event, stage: Stage, phase: int, started_id: uuid.UUID, counts: Mapping[str, int]
) -> Event:
    payload = StageCompleted(stage=stage, phase_number=phase, counts=dict(counts))
    return Event.create(
        payload, run_id=trigger.run_id, key=f"phase:{trigger.run_id}:{phase}",
        cause=f"{stage}|{trigger.event_id}", phase=str(phase),
        causation_id=started_id, correlation_id=trigger.correlation_id,
    )  # fmt: skip


class _StopWatch:
    """Sees ``WorkersStopRequested`` events appended after it was created."""

    def __init__(self, log: EventLog, stage: str, run_id: str | None) -> None:
        self._log = log
        self._stage = stage
        self._run_id = run_id
        self._position: dict[Partition, int] = log.end_position([Topic.CONTROL])

    def requested(self) -> bool:
        events = list(self._log.read([Topic.CONTROL], self._position))
        self._position = advance(self._position, events)
        for stored in events:
            event = stored.event
            if event.type != WorkersStopRequested.event_type:
                continue
            if self._run_id is not None and event.run_id != self._run_id:
                continue
            stages = WorkersStopRequested.model_validate(event.payload).stages
            if not stages or self._stage in stages:
                return True
        return False


class WorkersStalledError(RuntimeError):
    """No worker made progress on a phase for longer than the orchestrator waits."""


class WorkerStages:
    """Write and verify a phase through workers: wait for their ``StageCompleted`` events.

    Progress is read from the log: the phase's write and verification events as they arrive.
    When nothing moves for ``stall_timeout_s``, :class:`WorkersStalledError` says which workers
    to start.
    """

    def __init__(self, *, stall_timeout_s: float = 300.0, poll_s: float = 0.5) -> None:
        self.stall_timeout_s = stall_timeout_s
        self.poll_s = poll_s
        self._throttled = 0

    def throttled(self) -> int:
        """429s the workers reported in their completions."""
        return self._throttled

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
        """Wait until the workers wrote and verified the phase ``start`` started.

        Completions are looked for from ``after`` (the control topic's end before ``start`` was
        appended), else from the topic's start: a phase run again after a rollback appends a
        ``PhaseStarted`` of the same id, and only what the workers complete after it counts.
        """
        run_id = request.run_id
        labels: dict[Stage, str] = {
            "write": f"phase {phase} write",
            "verify": f"phase {phase} verify",
        }
        for label in labels.values():
            shown.stage_started(label, None)
        writes: dict[Partition, int] = {}
        done: set[Stage] = set()
        moved_at = time.monotonic()
        while True:
            events = list(log.read([Topic.WRITES], writes))
            writes = advance(writes, events)
            for stage, count in _progress_counts(events, run_id, str(phase)).items():
                if count:
                    shown.advanced(labels[stage], count, self._throttled)
            for stage in ("write", "verify"):
                if stage in done:
                    continue
                # The control topic is small: read again each time, from ``after`` or its start.
                found, _ = completion(log, run_id, stage, start.event_id, after or {})
                if found is None:
                    break
                done.add(stage)
                self._throttled += found.counts.get("throttled", 0)
                shown.stage_finished(labels[stage], _counts_text(found.counts))
                moved_at = time.monotonic()
            if "verify" in done:
                return
            if events:
                moved_at = time.monotonic()
            elif time.monotonic() - moved_at > self.stall_timeout_s:
                waiting = "verify" if "write" in done else "write"
                raise WorkersStalledError(
                    f"no {waiting} worker made progress on phase {phase} of run {run_id!r} for"
                    f" {self.stall_timeout_s:.0f} s: start 'crmledger worker {waiting}'"
                    " (on a kafka:// log, phases are written and verified by workers)"
                )
            time.sleep(self.poll_s)


_WRITE_OUTCOMES = frozenset({DestinationWritten.event_type, DestinationWriteFailed.event_type})
_VERIFY_OUTCOMES = frozenset({RecordVerified.event_type, FieldMismatch.event_type})


def _progress_counts(events: list[StoredEvent], run_id: str, phase: str) -> dict[Stage, int]:
    counts: dict[Stage, int] = {"write": 0, "verify": 0}
    for stored in events:
        event = stored.event
        if event.run_id != run_id or event.phase != phase:
            continue
        if event.type in _WRITE_OUTCOMES:
            counts["write"] += 1
        elif event.type in _VERIFY_OUTCOMES:
            counts["verify"] += 1
    return counts


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in counts.items())
