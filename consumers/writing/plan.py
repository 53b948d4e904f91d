"""What a phase's writer has to do: the run's decisions of the phase, what is done, in what order.

The log is the writer's memory. Before writing, :func:`load` reads the run's decisions of the
phase and every write event of the run: a decision with a ``DestinationWritten`` or
``DestinationWriteFailed`` is done (never written or recorded again); a decision with a
``DestinationWriteIntended`` was being written when a writer stopped, and its intent says what
the row was before (``op``, ``before_image``).

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
    DestinationWriteFailed,
    DestinationWriteIntended,
    DestinationWritten,
    TransformDecided,
)
from ledger.events import Event, Topic
from ledger.log import EventLog
from producers.mapping.rules import entity_set

_OUTCOMES = frozenset({DestinationWritten.event_type, DestinationWriteFailed.event_type})

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
class PhaseWork:
    """A phase's decisions, which of them are done, and the intents of interrupted writes."""

    decisions: list[Decision] = field(default_factory=list)
    done: set[uuid.UUID] = field(default_factory=set)
    intents: dict[uuid.UUID, DestinationWriteIntended] = field(default_factory=dict)

    @property
    def pending(self) -> list[Decision]:
        """Decisions without an outcome event yet, in log order."""
        return [d for d in self.decisions if d.event.event_id not in self.done]


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
    ids = {d.event.event_id for d in work.decisions}
    for stored in log.read([Topic.WRITES]):
        event = stored.event
        if event.run_id != run_id or event.causation_id not in ids:
            continue
        assert event.causation_id is not None
        if event.type in _OUTCOMES:
            work.done.add(event.causation_id)
        elif event.type == DestinationWriteIntended.event_type:
            work.intents[event.causation_id] = DestinationWriteIntended.model_validate(
                event.payload
            )
    return work


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
