"""What a phase's writer has to do: the run's decisions of the phase, what is done, in what order.

The log is the writer's memory. Before writing, :func:`load` reads the run's decisions of the
phase and every write event of the run, and looks only at each decision's **current
generation** (below): a decision with a ``DestinationWritten`` or ``DestinationWriteFailed``
there is done (not written or recorded again); a decision with only a
``DestinationWriteIntended`` there was being written when a writer stopped, and its intent says
what the row was before (``op``, ``before_image``); a decision whose current generation is empty
is pending and is written (again).

**Write generations.** A decision's write events (intent, written, failed: ``causation_id`` the
decision's event id, keyed by its source key, topic ``writes``) are read in log order, which is
reliable because they share a key and so a partition. A rollback undoes a write with a
``DestinationDeleted`` or ``DestinationRestored`` whose ``causation_id`` is that write's id and
whose target is the write's row (the ``opportunityclose`` or units a rollback deletes along with
a row do not count); it is appended to the same topic, keyed by the same source key (see
:mod:`consumers.rollback`). The decision's write events up to and including the last one a
rollback undid form closed generations; only the events after it are the current generation.
The rule needs only the order of the decision's own write events: which write was undone is
named by id, so where the rollback event lands in the log does not matter.
So after a rollback the decision is pending again: the writer writes it anew (a create when the
rollback deleted the row), and an intent of a closed generation never makes it take an existing
row for "ours from before a crash". The events of a new generation get new ids
(:meth:`PhaseWork.cause`: the decision's id and the last undone write), so they are never
dropped as duplicates of the generation the rollback closed. Verification
(:mod:`consumers.verify`) and rollback read generations the same way (:class:`Generations`).

:func:`groups` orders the rest: tables in dependency order within the phase (a table whose
decisions bind rows of another table of the phase comes after it: product before
productpricelevel, quote before quotedetail), and decisions that address a row already addressed
by an earlier decision (a supplier merged into a customer's account) in a later round, so that
they update the row the earlier one wrote.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationWriteFailed,
    DestinationWriteIntended,
    DestinationWritten,
    TransformDecided,
)
from ledger.events import Event, Topic
from ledger.log import EventLog
from producers.mapping.rules import entity_set

_OUTCOMES = frozenset({DestinationWritten.event_type, DestinationWriteFailed.event_type})
WRITE_EVENTS = frozenset({DestinationWriteIntended.event_type, *_OUTCOMES})
"""The write events of a decision (``causation_id`` the decision's event id)."""
UNDO_EVENTS = frozenset({DestinationDeleted.event_type, DestinationRestored.event_type})
"""The rollback events that undo a write (``causation_id`` the write's event id)."""

STATIC_ORDER = (
    "account",
    "contact",
    "uomschedule",
    "pricelevel",
    "product",
    "productpricelevel",
    "opportunity",
    "quote",
    "quotedetail",
    "opportunityproduct",
    "phonecall",
    "task",
    "appointment",
    "email",
    "annotation",
)
"""Tie-break (and cycle-break) order of tables, following ARCHITECTURE.md section 5."""


@dataclass(frozen=True)
class Decision:
    """One ``TransformDecided`` event to write."""

    event: Event
    table: str
    target_id: str
    payload: dict[str, Any]
    binds: dict[str, str]

    @property
    def key(self) -> str:
        """The source key (``Kunden:123``): every write event of the record carries it."""
        return self.event.key

    @classmethod
    def of(cls, event: Event) -> Decision:
        """The decision an event holds."""
        decided = TransformDecided.model_validate(event.payload)
        return cls(
            event,
            decided.target_table,
            decided.target_id.lower(),
            dict(decided.payload),
            dict(decided.binds),
        )


@dataclass
class Generations:
    """Decisions' write events split into generations by the rollback events that undo them.

    Feed it a run's ``writes`` events in log order (:meth:`add`); every event of another kind is
    ignored. See the module docstring for the rule.
    """

    writes: dict[uuid.UUID, list[Event]] = field(default_factory=lambda: defaultdict(list))
    """decision event id → its write events, in log order."""
    undone: set[tuple[uuid.UUID, str, str]] = field(default_factory=set)
    """(write event id, table, row id) of every write a rollback event undid."""

    def add(self, event: Event) -> None:
        """Take one event of the ``writes`` topic."""
        if event.causation_id is None:
            return
        if event.type in WRITE_EVENTS:
            self.writes[event.causation_id].append(event)
        elif event.type in UNDO_EVENTS:
            self.undone.add((event.causation_id, *_target(event)))

    def is_undone(self, write: Event) -> bool:
        """Whether a rollback event undid ``write`` (on the row ``write`` wrote)."""
        return (write.event_id, *_target(write)) in self.undone

    def current(self, decision_id: uuid.UUID) -> list[Event]:
        """The decision's write events after the last one a rollback undid, in log order."""
        events = self.writes.get(decision_id, [])
        return events[self._boundary(events) + 1 :]

    def closed(self, decision_id: uuid.UUID) -> list[Event]:
        """The decision's write events of closed generations (never verified or undone again)."""
        events = self.writes.get(decision_id, [])
        return events[: self._boundary(events) + 1]

    def cause(self, decision_id: uuid.UUID) -> str:
        """The ``cause`` of the write events of the decision's current generation."""
        closed = self.closed(decision_id)
        if not closed:
            return str(decision_id)  # the first generation keeps the ids it always had
        return f"{decision_id}|after {closed[-1].event_id}"

    def _boundary(self, events: list[Event]) -> int:
        return max((i for i, event in enumerate(events) if self.is_undone(event)), default=-1)


def _target(event: Event) -> tuple[str, str]:
    return str(event.payload.get("target_table")), str(event.payload.get("target_id")).lower()


@dataclass
class PhaseWork:
    """A phase's decisions, which of them are done, and the intents of interrupted writes (all
    of the decisions' current generations)."""

    decisions: list[Decision] = field(default_factory=list)
    done: set[uuid.UUID] = field(default_factory=set)
    intents: dict[uuid.UUID, DestinationWriteIntended] = field(default_factory=dict)
    causes: dict[uuid.UUID, str] = field(default_factory=dict)
    """decision event id → the ``cause`` of its write events (see :meth:`cause`)."""

    @property
    def pending(self) -> list[Decision]:
        """Decisions without an outcome event in their current generation, in log order."""
        return [d for d in self.decisions if d.event.event_id not in self.done]

    def cause(self, decision: Decision) -> str:
        """The ``cause`` of ``decision``'s next write events: its event id in the first
        generation, and the last write a rollback undid as well after that."""
        return self.causes.get(decision.event.event_id, str(decision.event.event_id))


def load(log: EventLog, run_id: str, phase: int) -> PhaseWork:
    """The run's decisions of ``phase``, with what the run's write events say about them."""
    work = PhaseWork()
    wanted = str(phase)
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        if (
            event.run_id == run_id
            and event.phase == wanted
            and event.type == TransformDecided.event_type
        ):
            work.decisions.append(Decision.of(event))
    generations = _generations(log, run_id, {d.event.event_id for d in work.decisions})
    for decision in work.decisions:
        decision_id = decision.event.event_id
        work.causes[decision_id] = generations.cause(decision_id)
        for event in generations.current(decision_id):
            if event.type in _OUTCOMES:
                work.done.add(decision_id)
            elif event.type == DestinationWriteIntended.event_type:
                work.intents.setdefault(
                    decision_id, DestinationWriteIntended.model_validate(event.payload)
                )
    return work


def pending_by_phase(log: EventLog, run_id: str) -> Counter[int]:
    """Phase → the run's decisions of it without an outcome in their current generation (never
    written, interrupted, or rolled back since)."""
    phases: dict[uuid.UUID, int] = {}
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        decided = event.run_id == run_id and event.type == TransformDecided.event_type
        if decided and event.phase is not None and event.phase.isdigit():
            phases[event.event_id] = int(event.phase)
    generations = _generations(log, run_id, set(phases))
    pending: Counter[int] = Counter()
    for decision_id, phase in phases.items():
        if not any(e.type in _OUTCOMES for e in generations.current(decision_id)):
            pending[phase] += 1
    return pending


def _generations(log: EventLog, run_id: str, decisions: set[uuid.UUID]) -> Generations:
    generations = Generations()
    for stored in log.read([Topic.WRITES]):
        event = stored.event
        if event.run_id != run_id:
            continue
        if event.type in UNDO_EVENTS or event.causation_id in decisions:
            generations.add(event)
    return generations


def groups(decisions: Iterable[Decision]) -> list[dict[str, list[Decision]]]:
    """Decisions grouped for writing: each group's tables may be written in parallel, and a
    group is written only after the groups before it. Within a table, log order is kept."""
    by_table: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        by_table[decision.table].append(decision)
    levels = _levels(by_table)
    ordered: list[dict[str, list[Decision]]] = []
    for level in levels:
        rounds: dict[int, dict[str, list[Decision]]] = defaultdict(lambda: defaultdict(list))
        for table in level:
            seen: Counter[str] = Counter()
            for decision in by_table[table]:
                rounds[seen[decision.target_id]][table].append(decision)
                seen[decision.target_id] += 1
        ordered.extend(dict(rounds[number]) for number in sorted(rounds))
    return ordered


def _levels(by_table: dict[str, list[Decision]]) -> list[list[str]]:
    sets = {entity_set(table): table for table in by_table}
    needs: dict[str, set[str]] = {table: set() for table in by_table}
    for table, decisions in by_table.items():
        for decision in decisions:
            for reference in decision.binds.values():
                target = sets.get(reference.lstrip("/").split("(", 1)[0])
                if target is not None and target != table:
                    needs[table].add(target)
    levels: list[list[str]] = []
    remaining = dict(needs)
    while remaining:
        ready = [t for t, n in remaining.items() if not (n & remaining.keys())]
        if not ready:  # a cycle: break it by the documented order
            ready = [min(remaining, key=_rank)]
        levels.append(sorted(ready, key=_rank))
        for table in ready:
            del remaining[table]
    return levels


def _rank(table: str) -> tuple[int, str]:
    return (STATIC_ORDER.index(table) if table in STATIC_ORDER else len(STATIC_ORDER), table)
