"""Phase gates: count what became of every record of a phase, judge it, and guard the next phase.

:func:`reconcile_phase` counts, from the log alone, per work4all source table of one run and
phase: ``extracted``, ``decided``, ``rejected`` (of which ``excluded``: rejected only because no
map object's filter takes the record, a scope decision rather than a data problem), ``written``,
``failed``, ``verified`` and ``mismatched``. It checks the invariants of ARCHITECTURE.md section 8
(extracted = decided + rejected, decided = written + failed, and, unless configured otherwise,
written = verified + mismatched) and the :class:`GateThresholds`, and appends one
``PhaseReconciled`` whose ``reasons`` list every violation.

:func:`require_gate` and :func:`start_phase` guard the next phase: it refuses to start while the
previous phase's latest ``PhaseReconciled`` failed or is missing, unless an operator gives a
reason, which is recorded in the ``PhaseStarted`` event (``override_reason``).

How records are counted is :mod:`projections.counting` (one rule for the gates, delta gates
and the ``reconciliation_counts`` projection): each record once, by its latest decision and the
latest write of that decision no rollback undid; a delta run's changed and new records, and its
knock-on re-decisions, count as extracted; its deletions are never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from ledger.event_types import PhaseReconciled, PhaseStarted
from ledger.events import Event, Topic, content_hash
from ledger.log import EventLog
from ledger.settings import Settings
from projections.counting import COUNT_NAMES, run_counts

__all__ = [
    "COUNT_NAMES",
    "GateCheck",
    "GateFailedError",
    "GateThresholds",
    "gate_reasons",
    "latest_reconciliation",
    "phase_counts",
    "reconcile_phase",
    "require_gate",
    "start_phase",
]

_COUNTED = [Topic.SOURCE, Topic.DECISIONS, Topic.WRITES, Topic.CONTROL]


class GateFailedError(RuntimeError):
    """A phase may not start: the previous phase's gate failed or was never reconciled."""

    def __init__(self, phase: int, previous: int, reasons: Sequence[str]) -> None:
        self.phase = phase
        self.previous = previous
        self.reasons = list(reasons)
        listed = "; ".join(self.reasons)
        super().__init__(
            f"phase {phase} cannot start: the gate of phase {previous} did not pass ({listed})."
            f" Fix the causes and reconcile phase {previous} again, or start phase {phase} with"
            ' --override-gate "REASON" to record an operator override'
        )


@dataclass(frozen=True)
class GateThresholds:
    """What a phase may contain and still pass its gate (``gate_*`` settings).

    The defaults are strict: no failed write, no field mismatch, every written record verified,
    and at most 10% of a table's in-scope records rejected for data problems (the synthetic
    export's defects reject about 6%; more points at a map or source problem to look at).
    """

    max_failed_share: float = 0.0
    """failed writes / decided records, per source table."""
    max_rejected_share: float = 0.10
    """(rejected - excluded) / (extracted - excluded), per source table."""
    max_mismatched: int = 0
    """records whose read-back differs from the decision, per source table."""
    require_verified: bool = True
    """every written record must have been verified (RecordVerified or FieldMismatch)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> GateThresholds:
        """The thresholds ``crmledger.toml`` (or ``CRMLEDGER_GATE_*``) configures."""
        return cls(
            max_failed_share=settings.gate_max_failed_share,
            max_rejected_share=settings.gate_max_rejected_share,
            max_mismatched=settings.gate_max_mismatched,
            require_verified=settings.gate_require_verified,
        )


# --- counting ----------------------------------------------------------------------------------


def phase_counts(log: EventLog, *, run_id: str, phase: int) -> dict[str, dict[str, int]]:
    """The counts (:data:`COUNT_NAMES`) of every source table of ``phase`` in ``run_id``.

    Read from the log alone, by the rule of :mod:`projections.counting`; a delta run counts the
    same way (its changed and new records are its extracted ones).
    """
    events = (stored.event for stored in log.read(_COUNTED))
    counts = run_counts(events, run_id).get(phase, {})
    return {table: {name: row[name] for name in COUNT_NAMES} for table, row in counts.items()}


# --- judging -----------------------------------------------------------------------------------


def gate_reasons(counts: Mapping[str, Mapping[str, int]], thresholds: GateThresholds) -> list[str]:
    """Every invariant and threshold ``counts`` violate, one sentence each (empty: passed)."""
    reasons: list[str] = []
    for table, row in sorted(counts.items()):
        reasons.extend(_table_reasons(table, row, thresholds))
    return reasons


def _table_reasons(table: str, row: Mapping[str, int], thresholds: GateThresholds) -> list[str]:
    reasons: list[str] = []
    extracted, decided, rejected = row["extracted"], row["decided"], row["rejected"]
    written, failed = row["written"], row["failed"]
    checked = row["verified"] + row["mismatched"]
    if extracted != decided + rejected:
        reasons.append(
            f"{table}: {extracted:,} extracted but {decided:,} decided + {rejected:,} rejected"
            f" ({_difference(extracted - decided - rejected, 'without a decision')})"
        )
    if decided != written + failed:
        reasons.append(
            f"{table}: {decided:,} decided but {written:,} written + {failed:,} failed"
            f" ({_difference(decided - written - failed, 'without a write')})"
        )
    if thresholds.require_verified and checked != written:
        reasons.append(
            f"{table}: {written:,} written but {checked:,} verified"
            f" ({_difference(written - checked, 'not verified')})"
        )
    if decided and failed / decided > thresholds.max_failed_share:
        reasons.append(
            f"{table}: {failed:,} of {decided:,} writes failed ({failed / decided:.1%}),"
            f" more than the gate allows ({thresholds.max_failed_share:.1%})"
        )
    if row["mismatched"] > thresholds.max_mismatched:
        reasons.append(
            f"{table}: {row['mismatched']:,} records differ from their decision in Dataverse,"
            f" more than the gate allows ({thresholds.max_mismatched:,})"
        )
    in_scope = extracted - row["excluded"]
    problems = rejected - row["excluded"]
    if in_scope > 0 and problems / in_scope > thresholds.max_rejected_share:
        reasons.append(
            f"{table}: {problems:,} of {in_scope:,} records rejected ({problems / in_scope:.1%}),"
            f" more than the gate allows ({thresholds.max_rejected_share:.1%})"
        )
    return reasons


def _difference(missing: int, what: str) -> str:
    return f"{missing:,} {what}" if missing > 0 else f"{-missing:,} more than the records"


def reconcile_phase(
    log: EventLog, *, run_id: str, phase: int, thresholds: GateThresholds | None = None
) -> Event:
    """Count ``phase`` of ``run_id``, judge it against ``thresholds`` and append the verdict.

    Returns the appended ``PhaseReconciled`` event. Reconciling the same log state again gives
    the same event id (so the log keeps one); any new source, decision or write event makes a
    new verdict, which becomes the phase's latest.
    """
    thresholds = thresholds or GateThresholds()
    counts = phase_counts(log, run_id=run_id, phase=phase)
    reasons = gate_reasons(counts, thresholds)
    verdict: Literal["passed", "failed"] = "failed" if reasons else "passed"
    state = content_hash(
        {
            "counts": counts,
            "thresholds": asdict(thresholds),
            "log": sorted(
                (str(partition), offset)
                for partition, offset in log.end_position(
                    [Topic.SOURCE, Topic.DECISIONS, Topic.WRITES]
                ).items()
            ),
        }
    )
    event = Event.create(
        PhaseReconciled(counts=counts, verdict=verdict, reasons=reasons),
        run_id=run_id,
        key=_phase_key(phase),
        cause=f"reconcile|{state}",
        phase=str(phase),
    )
    log.append([event])
    return event


# --- the gate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateCheck:
    """Whether ``phase`` may start, and why."""

    phase: int
    previous: int | None
    """the phase whose gate guards this one; None when nothing comes before it."""
    verdict: Literal["passed", "failed", "missing", "none"]
    """the previous phase's latest verdict; ``missing`` if never reconciled, ``none`` if no
    previous phase."""
    reasons: tuple[str, ...] = ()
    override_reason: str | None = None
    """the operator's reason, when the gate failed and was overridden."""
    started: Event | None = None
    """the ``PhaseStarted`` appended for an override."""

    @property
    def open(self) -> bool:
        """Whether the phase may start without an override."""
        return self.verdict in ("passed", "none")


def _phase_key(phase: int) -> str:
    # One key for a phase's control events: one partition, so they keep their order.
    return f"phase:{phase}"


def _control(log: EventLog, run_id: str, phase: int, event_type: str) -> list[Event]:
    return [
        stored.event
        for stored in log.read([Topic.CONTROL])
        if stored.event.run_id == run_id
        and stored.event.type == event_type
        and stored.event.key == _phase_key(phase)
    ]


def latest_reconciliation(log: EventLog, *, run_id: str, phase: int) -> Event | None:
    """The latest ``PhaseReconciled`` of ``phase`` in ``run_id``, or None."""
    found = _control(log, run_id, phase, PhaseReconciled.event_type)
    return found[-1] if found else None


def _previous_phase(log: EventLog, run_id: str, phase: int) -> int | None:
    """The highest phase below ``phase`` that the run decided records in or started."""
    earlier: set[int] = set()
    for stored in log.read([Topic.DECISIONS, Topic.CONTROL]):
        event = stored.event
        if event.run_id != run_id:
            continue
        number: int | None = None
        if event.type == PhaseStarted.event_type:
            number = int(event.payload["phase_number"])
        elif event.topic is Topic.DECISIONS and event.phase is not None and event.phase.isdigit():
            number = int(event.phase)
        if number is not None and number < phase:
            earlier.add(number)
    return max(earlier) if earlier else None


def require_gate(
    log: EventLog,
    *,
    run_id: str,
    phase: int,
    override_reason: str | None = None,
    objects: Iterable[str] = (),
) -> GateCheck:
    """Check that ``phase`` may start: the previous phase's latest gate passed.

    When it failed or was never reconciled, raise :class:`GateFailedError`, unless
    ``override_reason`` (a non-blank operator's reason) is given: then a ``PhaseStarted`` with
    that reason (and ``objects``, as in :func:`start_phase`) is appended and returned in
    :attr:`GateCheck.started`. A reason given for an open gate is not recorded: nothing was
    overridden.
    """
    previous = _previous_phase(log, run_id, phase)
    if previous is None:
        return GateCheck(phase, None, "none")
    latest = latest_reconciliation(log, run_id=run_id, phase=previous)
    if latest is None:
        verdict: Literal["passed", "failed", "missing"] = "missing"
        reasons: tuple[str, ...] = (f"phase {previous} was never reconciled",)
    else:
        verdict = "passed" if latest.payload["verdict"] == "passed" else "failed"
        reasons = tuple(str(reason) for reason in latest.payload.get("reasons") or ())
    if verdict == "passed":
        return GateCheck(phase, previous, verdict, reasons)
    reason = (override_reason or "").strip()
    if not reason:
        raise GateFailedError(phase, previous, reasons or (f"phase {previous} failed",))
    started = _started(run_id, phase, tuple(objects), reason)
    log.append([started])
    return GateCheck(phase, previous, verdict, reasons, reason, started)


def start_phase(
    log: EventLog,
    *,
    run_id: str,
    phase: int,
    objects: Iterable[str] = (),
    override_reason: str | None = None,
) -> Event:
    """Pass the gate (:func:`require_gate`) and append the ``PhaseStarted`` of ``phase``.

    ``objects`` names what the phase moves (source tables, e.g. ``Kunden``, count in its
    reconciliation even when none of their records was decided). Raises
    :class:`GateFailedError` when the gate is closed and no ``override_reason`` is given.
    """
    names = tuple(objects)
    check = require_gate(
        log, run_id=run_id, phase=phase, override_reason=override_reason, objects=names
    )
    if check.started is not None:
        return check.started
    started = _started(run_id, phase, names, None)
    log.append([started])
    return started


def _started(run_id: str, phase: int, objects: tuple[str, ...], reason: str | None) -> Event:
    payload = PhaseStarted(phase_number=phase, objects=list(objects), override_reason=reason)
    return Event.create(
        payload,
        run_id=run_id,
        key=_phase_key(phase),
        cause=f"start|{content_hash(payload.model_dump(mode='json'))}",
        phase=str(phase),
    )
