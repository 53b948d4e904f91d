"""The counting rule of reconciliation: what every record of a run adds to its phase's counts.

One rule for every reader: the phase gates (:func:`consumers.reconcile.phase_counts`, of full
and delta runs alike) fold the whole log with :func:`run_counts`; the projection
(``reconciliation_counts``) keeps one :class:`RecordTally` per record and sums what each
contributes as its events arrive. Both end in :func:`assemble`, so ``crmledger reconcile`` and a
gate can never disagree.

Per record (one source key in one run), by its own events only:

- ``extracted``: the run has a ``SourceRecordExtracted`` or ``SourceRecordChanged`` of it (a
  re-read counts once), or its decision is a *knock-on* re-decision (a note or reason starting
  with ``knock_on``: an unchanged record a delta run decided again because another changed), so
  extracted = decided + rejected holds for a delta too. A ``SourceRecordDeleted`` is a deletion,
  never extracted.
- ``decided`` | ``rejected`` (of which ``excluded``: rejected only because no map object's
  filter takes it): its latest decision, in the decision's phase, which places the record.
- ``written`` | ``failed``: the latest write outcome (``DestinationWritten`` /
  ``DestinationWriteFailed``) that carries out the record's latest decision, a
  ``TransformDecided`` (its ``causation_id``; an outcome without one, as older logs and
  hand-built tests hold, belongs to the record's decision) and that no
  rollback undid (``DestinationDeleted`` / ``DestinationRestored`` naming it as causation).
  Counted once, in the write's phase: a failed write retried, or a row re-migrated after a
  rollback, is one record. Writes caused by anything else (a delta's deactivation of a deleted
  record) are never ``written``.
- ``verified`` | ``mismatched``: the checks (``RecordVerified`` / ``FieldMismatch``) of that
  counted write; any mismatch makes it ``mismatched``. Checks of an undone write do not count.
- deletions (:data:`DELETION_NAMES`): ``source_deleted`` for a ``SourceRecordDeleted``; the
  latest outcome not undone of the deletion, or of a delta's withdrawal of a record it rejects
  (the ``RecordRejected`` as causation): ``deleted`` (``DestinationRowDeleted``, undone by
  ``DestinationRecreated``), ``deactivated`` (a ``DestinationWritten`` caused by the deletion or
  rejection), ``flagged`` (``SourceDeletionFlagged``) or ``deletion_failed`` (a
  ``DestinationWriteFailed`` caused by it).

Per phase (:func:`assemble`):

- A source table belongs to a phase when records of it are decided there. A phase without any
  decision counts the tables its ``PhaseStarted`` events list that have extracted records, so a
  phase whose records were never transformed fails on extracted = decided + rejected while a
  phase with nothing to move passes. Tables with writes in the phase count too.
- A record without a decision counts as extracted in every phase its table belongs to (a table
  split over phases, ``Briefe``, counts in each the records not decided in another one).
- A table's deletions count in the lowest phase whose ``PhaseStarted`` lists the table (phase 0
  when none does), whatever their outcome: a deletion never moves between phases, and the gate
  counts, taken before the deletions are carried out, keep their rows.

Shares and gates are per source table: a large table cannot hide a small table's failures.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.event_types import (
    DestinationDeleted,
    DestinationRecreated,
    DestinationRestored,
    DestinationRowDeleted,
    DestinationWriteFailed,
    DestinationWritten,
    FieldMismatch,
    PhaseStarted,
    RecordRejected,
    RecordVerified,
    SourceDeletionFlagged,
    SourceRecordChanged,
    SourceRecordDeleted,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event, canonical_json
from projections.facts import phase_number, split_key

__all__ = [
    "ALL_NAMES",
    "COUNT_NAMES",
    "DELETION_NAMES",
    "KNOCK_ON",
    "TALLIED",
    "Counts",
    "RecordTally",
    "Tallies",
    "assemble",
    "excluded",
    "run_counts",
]

COUNT_NAMES = (
    "extracted",
    "decided",
    "rejected",
    "excluded",
    "written",
    "failed",
    "verified",
    "mismatched",
)
"""The counts of every source table in ``PhaseReconciled.counts``, in display order."""

DELETION_NAMES = ("source_deleted", "deleted", "deactivated", "flagged", "deletion_failed")
"""What became of a run's deleted source records (delta runs), in display order."""

ALL_NAMES = COUNT_NAMES + DELETION_NAMES
"""Every count of a phase's source table in ``reconciliation_counts``."""

KNOCK_ON = "knock_on"
"""The reason code of a re-decision of an unchanged record that another record's change caused."""

_FILTERED_OUT = "filtered_out"
_WARNINGS_KEY = "_warnings"  # producers.mapping.rules.WARNINGS_KEY: notes, not reasons
_MIGRATION = ("written", "failed")

Counts = dict[str, dict[str, int]]
"""Per source table, per count name, how many records."""

Tallies = Mapping[tuple[int | None, str, str], int]
"""Per (phase, source table, count name), the records' contributions summed; phase None: the
record has no phase of its own (extracted but undecided; deletions)."""

_OUTCOMES = {
    DestinationWritten.event_type: "written",
    DestinationWriteFailed.event_type: "failed",
    DestinationRowDeleted.event_type: "deleted",
    SourceDeletionFlagged.event_type: "flagged",
}
_CHECKS = {RecordVerified.event_type: "verified", FieldMismatch.event_type: "mismatched"}
_UNDOING = frozenset(
    {
        DestinationDeleted.event_type,
        DestinationRestored.event_type,
        DestinationRecreated.event_type,
    }
)
_DECISIONS = frozenset({TransformDecided.event_type, RecordRejected.event_type})
_EXTRACTED = frozenset({SourceRecordExtracted.event_type, SourceRecordChanged.event_type})

TALLIED = frozenset(
    {*_EXTRACTED, SourceRecordDeleted.event_type, *_DECISIONS, *_OUTCOMES, *_CHECKS, *_UNDOING}
)
"""The event types that change a record's tally (each keyed by the record's source key)."""


def _codes(texts: Iterable[str]) -> set[str]:
    return {text.split(":", 1)[0].strip() for text in texts}


def excluded(reasons: Mapping[str, Sequence[str]]) -> bool:
    """Whether a rejection is only a scope decision (no map object's filter takes the record).

    Warnings and a knock-on note are not reasons.
    """
    codes = _codes(text for column, texts in reasons.items() if column != _WARNINGS_KEY
                   for text in texts)  # fmt: skip
    return codes - {KNOCK_ON} == {_FILTERED_OUT}


def _knock_on(event: Event) -> bool:
    payload = event.payload
    texts: list[str] = [str(note) for note in payload.get("notes") or []]
    for entries in (payload.get("reasons") or {}).values():
        texts.extend(str(text) for text in entries)
    return KNOCK_ON in _codes(texts)


@dataclass
class _Outcome:
    event_id: str
    kind: str
    """``written`` | ``failed`` | ``deleted`` | ``flagged``."""
    phase: int | None
    causation: str | None


@dataclass
class RecordTally:
    """What one record's events of one run say about it, folded in the log's order.

    Events of one topic arrive in order (one key, one partition); across topics they may not, so
    what a write means is decided when counting (:meth:`contribution`), not when it arrives.
    """

    table: str
    extracted: bool = False
    deletion_id: str | None = None
    decision_id: str | None = None
    decision: str | None = None
    """``decided`` | ``rejected`` | ``excluded``."""
    decision_phase: int | None = None
    knock_on: bool = False
    outcomes: list[_Outcome] = field(default_factory=list)
    undone: set[str] = field(default_factory=set)
    checks: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str) -> RecordTally:
        """An empty tally of the record ``key`` (``Kunden:1739201``)."""
        return cls(split_key(key)[0])

    def apply(self, event: Event) -> None:
        """Fold one of the record's events (types in :data:`TALLIED`; others change nothing)."""
        kind, payload = event.type, event.payload
        if kind in _EXTRACTED:
            self.table = str(payload.get("table") or self.table)
            self.extracted = True
        elif kind == SourceRecordDeleted.event_type:
            self.table = str(payload.get("table") or self.table)
            self.deletion_id = str(event.event_id)
        elif kind in _DECISIONS:
            self.decision_id = str(event.event_id)
            self.decision_phase = phase_number(event)
            self.knock_on = _knock_on(event)
            if kind == TransformDecided.event_type:
                self.decision = "decided"
            else:
                self.decision = "excluded" if excluded(payload.get("reasons") or {}) else "rejected"
        elif kind in _OUTCOMES:
            cause = str(event.causation_id) if event.causation_id is not None else None
            self.outcomes.append(
                _Outcome(str(event.event_id), _OUTCOMES[kind], phase_number(event), cause)
            )
        elif kind in _CHECKS and event.causation_id is not None:
            write = str(event.causation_id)
            if self.checks.get(write) != "mismatched":
                self.checks[write] = _CHECKS[kind]
        elif kind in _UNDOING and event.causation_id is not None:
            self.undone.add(str(event.causation_id))

    def _latest(self, counts: Callable[[_Outcome], bool]) -> _Outcome | None:
        for outcome in reversed(self.outcomes):
            if outcome.event_id not in self.undone and counts(outcome):
                return outcome
        return None

    def _carries_decision(self, outcome: _Outcome) -> bool:
        if outcome.kind not in _MIGRATION:
            return False
        if outcome.causation is None:  # older logs: a write belongs to the record's decision
            return True
        return self.decision == "decided" and outcome.causation == self.decision_id

    def _carries_deletion(self, outcome: _Outcome) -> bool:
        if outcome.kind in ("deleted", "flagged"):
            return True
        if outcome.causation is None:
            return False
        withdrawn = self.decision in ("rejected", "excluded") and self.decision_id is not None
        return outcome.causation in (self.deletion_id, self.decision_id if withdrawn else None)

    def contribution(self) -> Counter[tuple[int | None, str]]:
        """What the record adds to the counts: (phase or None, count name) → 1."""
        added: Counter[tuple[int | None, str]] = Counter()
        place = self.decision_phase if self.decision is not None else None
        if self.extracted or (self.decision is not None and self.knock_on):
            added[(place, "extracted")] += 1
        if self.decision == "decided":
            added[(place, "decided")] += 1
        elif self.decision is not None:
            added[(place, "rejected")] += 1
            added[(place, "excluded")] += int(self.decision == "excluded")
        write = self._latest(self._carries_decision)
        if write is not None:
            phase = write.phase if write.phase is not None else place
            added[(phase, write.kind)] += 1
            check = self.checks.get(write.event_id) if write.kind == "written" else None
            if check is not None:
                added[(phase, check)] += 1
        if self.deletion_id is not None:
            added[(None, "source_deleted")] += 1
        deletion = self._latest(self._carries_deletion)
        if deletion is not None:
            names = {"written": "deactivated", "failed": "deletion_failed"}
            added[(None, names.get(deletion.kind, deletion.kind))] += 1
        return +added

    def to_json(self) -> str:
        """The tally as canonical JSON (what the projection stores per record)."""
        return canonical_json(
            {
                "table": self.table,
                "extracted": self.extracted,
                "deletion_id": self.deletion_id,
                "decision_id": self.decision_id,
                "decision": self.decision,
                "decision_phase": self.decision_phase,
                "knock_on": self.knock_on,
                "outcomes": [[o.event_id, o.kind, o.phase, o.causation] for o in self.outcomes],
                "undone": sorted(self.undone),
                "checks": self.checks,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RecordTally:
        """The tally :meth:`to_json` stored."""
        data = json.loads(text)
        return cls(
            table=data["table"],
            extracted=data["extracted"],
            deletion_id=data["deletion_id"],
            decision_id=data["decision_id"],
            decision=data["decision"],
            decision_phase=data["decision_phase"],
            knock_on=data["knock_on"],
            outcomes=[_Outcome(*item) for item in data["outcomes"]],
            undone=set(data["undone"]),
            checks=dict(data["checks"]),
        )


def assemble(tallies: Tallies, listed: Mapping[int, Collection[str]]) -> dict[int, Counts]:
    """Per phase and source table, every count (:data:`ALL_NAMES`), by the module's rules.

    ``tallies`` sums the records' contributions; ``listed`` names, per phase, the source tables
    its ``PhaseStarted`` events listed.
    """
    by_phase: defaultdict[int | None, defaultdict[str, Counter[str]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    sourced: set[str] = set()
    for (phase, table, name), count in tallies.items():
        if count:
            by_phase[phase][table][name] += count
            if name == "extracted":
                sourced.add(table)
    unplaced = by_phase.pop(None, defaultdict(Counter))
    first_listing: dict[str, int] = {}
    for phase in sorted(listed, reverse=True):
        for table in listed[phase]:
            first_listing[str(table)] = phase
    deletions: defaultdict[int, dict[str, Counter[str]]] = defaultdict(dict)
    for table, sums in unplaced.items():
        if any(sums[name] for name in DELETION_NAMES):
            deletions[first_listing.get(table, 0)][table] = sums
    phases = {p for p in by_phase if p is not None} | set(listed) | set(deletions)
    result: dict[int, Counts] = {}
    for phase in sorted(phases):
        here = by_phase[phase]
        decided = {t for t, sums in here.items() if sums["decided"] or sums["rejected"]}
        tables = decided or {str(t) for t in listed.get(phase, ())} & sourced
        written = {t for t, sums in here.items() if any(sums[n] for n in COUNT_NAMES)}
        counts: Counts = {}
        for table in sorted(tables | written | set(deletions[phase])):
            row = {name: here[table][name] for name in COUNT_NAMES}
            if table in tables:
                row["extracted"] += unplaced[table]["extracted"]
            gone = deletions[phase].get(table, Counter())
            counts[table] = row | {name: gone[name] for name in DELETION_NAMES}
        if counts:
            result[phase] = counts
    return result


def run_counts(events: Iterable[Event], run_id: str) -> dict[int, Counts]:
    """Every phase's counts of ``run_id``, folded from ``events`` (the log, any topic order)."""
    records: dict[str, RecordTally] = {}
    listed: defaultdict[int, set[str]] = defaultdict(set)
    for event in events:
        if event.run_id != run_id:
            continue
        if event.type == PhaseStarted.event_type:
            number = int(event.payload["phase_number"])
            listed[number].update(str(name) for name in event.payload.get("objects") or [])
        elif event.type in TALLIED:
            tally = records.get(event.key)
            if tally is None:
                tally = records[event.key] = RecordTally.of(event.key)
            tally.apply(event)
    tallies: Counter[tuple[int | None, str, str]] = Counter()
    for tally in records.values():
        for (phase, name), count in tally.contribution().items():
            tallies[(phase, tally.table, name)] += count
    return assemble(tallies, listed)
