"""Rollback: undo what a run (or a phase of it) wrote to Dataverse, from the log alone.

:func:`plan_rollback` reads the run's decisions and write events and decides, per Dataverse row
the scope touched, one action:

- **delete** a row the run created (an intent ``op="create"``; after a crash the row may exist
  without its ``DestinationWritten``), together with the rows Dataverse made for it that the
  emulator does not cascade: the ``opportunityclose`` of a won/lost opportunity (its id is
  :func:`~consumers.writing.rows.close_activity_id`, named in the intent's ``steps``) and the
  units of a unit group (found by query);
- **restore** the before-image of a row the run updated, as a changeset: ``PATCH`` of the
  columns, ``DELETE …/<nav>/$ref`` for each lookup that was empty (the documented way, reference
  2.9), and the state columns in their own ``PATCH`` (before the columns when the row goes back
  to an open state, after them when it goes back to a closed one). A row updated several times
  gets the earliest before-image of every column (the before-images applied in reverse order of
  the updates).

  A delta run's deactivation (a ``DestinationWritten`` ``op="update"`` caused by a
  ``SourceRecordDeleted`` or a ``RecordRejected``, not by a decision) is restored the same way:
  its before-image is the row's previous ``statecode``/``statuscode``.
- **recreate** a row a delta run deleted (``DestinationRowDeleted``), from its before-image,
  with the same id: the columns valid for create (read from the table's metadata), the date the
  row showed as ``overriddencreatedon`` when the migration had backdated it, the lookups the
  migration bound as ``<nav>@odata.bind`` (named as :func:`~consumers.writing.rows.before_image`
  names them), every other lookup valid for create that held a value (the owner, a quote line's
  unit: the before-image names each lookup's target table; the navigation property comes from
  the table's relationship metadata), and its state as a step after the create. Re-creates come
  first in the plan, parents first (the reverse of the order the delta run deleted in): a
  re-created row binds only rows of the state before the run, while the restores and deletes
  after them may bind it.

**Order** of the deletes and restores, after the re-creates (children before parents): later
phases first; within a phase by table, in :data:`DELETE_ORDER` (custom tables first); within a
table, the latest write first. That is the reverse of the order the writer follows, so every
row is removed after the rows that bind to it.

**Dependencies** (``--cascade``): a record outside the scope depends on the scope when its
decision binds a row the rollback deletes, or when it wrote one of the scope's rows again later
(a later phase updating a row). Without ``cascade`` such dependents refuse the rollback
(:class:`RollbackRefusedError`, naming phases and records); with it they are rolled back too,
record by record, to a fixed point: rolling back phase 6 also deletes the phase-7 notes attached
to its phone calls (as Dataverse's own parental cascade would), and nothing else of phase 7.
The other way round too, for a delta run: restoring a row of the scope may bind a row the delta
run deleted outside the scope (an activity the delta unlinked from an account it then deleted);
without ``cascade`` that refuses the rollback, with it the deleted row is re-created first.

**Changed since the migration** (``--force``): before planning, every row is read back and the
columns the run wrote (the decided payload and lookups, folded over every write of the row,
with the values verification recorded in ``FieldMismatch`` where Dataverse normalised them) are
compared with what Dataverse holds now, using verification's normalisation
(:func:`~consumers.verify.same_value`). This needs no clock and no version recorded at write
time; it does not see changes to columns the run did not write. A row that differs is a
:class:`Conflict`: reported and left alone (and so are the rows it binds, which deleting would
cascade into it) unless ``force``. A unit group with units the run did not create conflicts too.

**Write generations** (:mod:`consumers.writing.plan`): only the writes of each decision's
current generation are undone. A ``DestinationDeleted`` or ``DestinationRestored`` is appended to
the ``writes`` topic keyed by the source key of the write it undoes (``causation_id``), so it is
in order with that record's write events; it closes the record's generation, and a later
migration of the same run writes the record anew (new write events of new ids). A rollback of
the same scope after such a re-migration undoes the new generation (deletes what it created,
restores the before-images its writes captured); the closed generations are never undone again.
A row several records wrote (a supplier merged into a customer's account) is deleted or restored
once, and every record's write the action undoes gets its event (the action's ``also``), so each
of those records is pending again. A failed write is not undone (there is nothing to undo).

**Idempotent and resumable**: each action appends one ``DestinationDeleted``,
``DestinationRestored`` or ``DestinationRecreated`` whose id derives from the write it undoes,
so a retried append is a duplicate; actions recorded are never planned again. A row already gone
(404, or missing when read) counts as deleted; a row already holding its before-image counts as
restored; a row found when planning its re-creation counts as re-created; so a rollback killed
between a request and its event finishes on the next call. ``RollbackPlanned`` is appended only
when the plan holds actions no earlier ``RollbackPlanned`` of the run listed: a resumed
rollback continues its plan, and a finished one plans and appends nothing.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from consumers.dataverse.client import DataverseClient, JsonObject
from consumers.dataverse.errors import DataverseError
from consumers.verify import same_value
from consumers.writing import batch, rows
from consumers.writing.plan import Generations
from ledger.event_types import (
    DestinationDeleted,
    DestinationRecreated,
    DestinationRestored,
    DestinationRowDeleted,
    DestinationWriteIntended,
    DestinationWritten,
    FieldMismatch,
    RollbackPlanned,
    TransformDecided,
)
from ledger.events import Event, Topic, content_hash
from ledger.log import EventLog
from producers.mapping.rules import entity_set
from producers.mapping.stage import CLEARED_BIND

__all__ = [
    "DELETE_ORDER",
    "Action",
    "Conflict",
    "RollbackError",
    "RollbackPlan",
    "RollbackRefusedError",
    "RollbackSummary",
    "execute_rollback",
    "plan_rollback",
    "record_plan",
    "rollback",
]

DELETE_ORDER = (
    "annotation",
    "email",
    "appointment",
    "task",
    "phonecall",
    "opportunityclose",
    "opportunityproduct",
    "quotedetail",
    "quote",
    "opportunity",
    "productpricelevel",
    "product",
    "pricelevel",
    "uom",
    "uomschedule",
    "contact",
    "account",
)
"""Within a phase, rows of earlier tables are undone first (children before parents); tables
not listed (custom tables such as ``w4a_openitem``) come before all of them."""

_STATE = ("statecode", "statuscode")
_NOT_COMPARED = frozenset({"overriddencreatedon"})  # create-only; Dataverse keeps it in createdon
_NOT_RECREATED = frozenset(
    {"createdon", "modifiedon", "versionnumber", "overriddencreatedon", "importsequencenumber"}
)
_READ_CHUNK = 50
_LOOKUP_TARGET = "@Microsoft.Dynamics.CRM.lookuplogicalname"
_DEACTIVATED = {"statecode": 1}
"""What a delta run's deactivation writes (:func:`consumers.delta.apply_deletions`)."""
_GUID_BIND = re.compile(r"^/?(?P<set>[A-Za-z0-9_]+)\((?P<id>[0-9a-fA-F-]{36})\)$")
_KEY_BIND = re.compile(r"^/?(?P<set>[A-Za-z0-9_]+)\((?P<key>.+)\)$")
_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)")
_WELL_KNOWN_SETS = {"systemusers": "systemuser", "teams": "team"}


class RollbackError(RuntimeError):
    """The rollback cannot be planned (nothing written in that scope, Dataverse unreadable)."""


class RollbackRefusedError(RollbackError):
    """Records outside the scope depend on it; ``cascade`` would roll them back too."""

    def __init__(self, message: str, dependents: Mapping[int, int]) -> None:
        super().__init__(message)
        self.dependents = dict(dependents)
        """phase → number of records depending on the scope."""


@dataclass(frozen=True)
class Action:
    """One step of a rollback: delete a row, restore a row's before-image, or re-create a row a
    delta run deleted (``before_image`` is then the create body)."""

    action: Literal["delete", "restore", "recreate"]
    table: str
    id: str
    key: str
    """the source key of the record (of the opportunity, for its opportunityclose)."""
    phase: int
    undoes: str
    """the id of the write event (``DestinationWritten``, else the intent) this action undoes."""
    reason: str
    before_image: JsonObject | None = None
    cascaded: bool = False
    """in the plan because a record of the scope depends on it (``--cascade``)."""
    must_exist: bool = True
    """the run recorded the row as written; False: only an intent (a crash, or a failure)."""
    also: tuple[tuple[str, str, int], ...] = ()
    """(source key, write event id, phase) of the other records' writes of the row this action
    undoes too (a merged account): each gets an event of its own, closing its generation."""

    def as_json(self) -> JsonObject:
        """The action as ``RollbackPlanned`` lists it."""
        data: JsonObject = {
            "action": self.action,
            "table": self.table,
            "id": self.id,
            "key": self.key,
            "phase": self.phase,
            "undoes": self.undoes,
            "reason": self.reason,
        }
        if self.action in ("restore", "recreate"):
            data["before_image"] = self.before_image
        if self.cascaded:
            data["cascaded"] = True
        if self.also:
            data["also_undoes"] = [undoes for _, undoes, _ in self.also]
        return data

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What makes an action the same one in another plan."""
        return (self.action, self.table, self.id, self.undoes)


@dataclass(frozen=True)
class Conflict:
    """A row someone changed in Dataverse after the run wrote it."""

    action: Action
    columns: dict[str, tuple[Any, Any]]
    """column → (what the run wrote, what Dataverse holds now)."""
    note: str = ""

    def describe(self) -> str:
        """One line for a report."""
        if self.note:
            return f"{self.action.table} {self.action.id} ({self.action.key}): {self.note}"
        changed = ", ".join(
            f"{column}: {wrote!r} → {now!r}" for column, (wrote, now) in self.columns.items()
        )
        return f"{self.action.table} {self.action.id} ({self.action.key}): {changed}"


@dataclass
class RollbackPlan:
    """What a rollback will do: the actions, in order, and what it leaves alone and why."""

    run_id: str
    scope: str
    phases: tuple[int, ...]
    actions: list[Action] = field(default_factory=list)
    """the actions not yet recorded, in the order they are carried out."""
    recorded: int = 0
    """actions an earlier rollback recorded (not planned again)."""
    conflicts: list[Conflict] = field(default_factory=list)
    """rows changed in Dataverse since the run wrote them: left alone (unless ``force``)."""
    held: list[Conflict] = field(default_factory=list)
    """rows left alone because a row that binds them is a conflict (deleting would cascade)."""
    dependents: dict[int, int] = field(default_factory=dict)
    """phase → records outside the scope rolled back with it (``cascade``)."""
    forced: bool = False
    already: set[tuple[str, str, str, str]] = field(default_factory=set)
    """actions whose effect Dataverse already shows (a resumed rollback): recorded, not sent."""
    planned_before: bool = False
    """an earlier ``RollbackPlanned`` of the run lists every action: resuming it."""
    current: dict[tuple[str, str], JsonObject] = field(default_factory=dict)
    """the rows as read while planning (the lookups a restore must clear)."""

    def counts(self) -> dict[tuple[str, str], int]:
        """(table, action) → number of actions."""
        return dict(Counter((a.table, a.action) for a in self.actions))

    @property
    def empty(self) -> bool:
        """Nothing left to do."""
        return not self.actions


@dataclass
class RollbackSummary:
    """What one rollback call did."""

    plan: RollbackPlan
    deleted: Counter[str] = field(default_factory=Counter)
    restored: Counter[str] = field(default_factory=Counter)
    recreated: Counter[str] = field(default_factory=Counter)
    already_gone: int = 0
    """deletes answered 404, or rows found missing: counted as done."""
    failed: list[str] = field(default_factory=list)
    """actions Dataverse refused (not recorded: the next rollback tries them again)."""
    appended: int = 0

    @property
    def done(self) -> int:
        """Actions recorded by this call."""
        return (
            sum(self.deleted.values()) + sum(self.restored.values()) + sum(self.recreated.values())
        )


# --- what the log says ---------------------------------------------------------------------


_UPDATED = "updated by the run"


@dataclass
class _Touch:
    """One record's write of one row, in log order."""

    position: int
    key: str
    phase: int
    table: str
    row_id: str
    payload: JsonObject
    binds: dict[str, str]
    op: str
    before_image: JsonObject | None
    steps: list[str]
    undoes: str
    written: bool
    failed: bool
    mismatches: dict[str, Any]
    reason: str = _UPDATED
    """why the row changed, as the restore names it."""


@dataclass
class _Deletion:
    """A row a delta run deleted (``DestinationRowDeleted``), in log order."""

    position: int
    key: str
    phase: int
    table: str
    row_id: str
    before_image: JsonObject
    undoes: str


@dataclass
class _History:
    touches: list[_Touch] = field(default_factory=list)
    deletions: list[_Deletion] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)
    """``undoes|table|id`` of every action a rollback event recorded."""
    planned: set[tuple[str, str, str, str]] = field(default_factory=set)
    sets: dict[str, str] = field(default_factory=dict)
    """entity set → table, for every table the run wrote."""
    undone: Counter[int] = field(default_factory=Counter)
    """phase → rollback events that undid writes of closed generations (done, never planned
    again)."""


def _phase(text: str | None) -> int:
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _history(log: EventLog, run_id: str) -> _History:
    decisions: dict[uuid.UUID, Event] = {}
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        if event.run_id == run_id and event.type == TransformDecided.event_type:
            decisions[event.event_id] = event
    history = _History()
    generations = Generations()
    positions: dict[uuid.UUID, int] = {}
    undo_events: list[Event] = []
    mismatches: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
    for position, stored in enumerate(log.read([Topic.WRITES, Topic.CONTROL])):
        event = stored.event
        if event.run_id != run_id:
            continue
        if event.topic is Topic.WRITES:
            generations.add(event)
        if event.type == DestinationWriteIntended.event_type and event.causation_id:
            positions.setdefault(event.event_id, position)
        elif event.type == FieldMismatch.event_type and event.causation_id:
            mismatches[event.causation_id][str(event.payload["column"])] = event.payload["actual"]
        elif event.type == DestinationRowDeleted.event_type:
            history.deletions.append(
                _Deletion(
                    position=position,
                    key=event.key,
                    phase=_phase(event.phase),
                    table=str(event.payload["target_table"]),
                    row_id=str(event.payload["target_id"]).lower(),
                    before_image=dict(event.payload["before_image"]),
                    undoes=str(event.event_id),
                )
            )
        elif event.type in (
            DestinationDeleted.event_type,
            DestinationRestored.event_type,
            DestinationRecreated.event_type,
        ):
            history.recorded.add(
                f"{event.causation_id}|{event.payload['target_table']}|{event.payload['target_id']}"
            )
            undo_events.append(event)
        elif event.type == RollbackPlanned.event_type:
            for action in event.payload.get("actions", []):
                history.planned.add(
                    (action["action"], action["table"], action["id"], action["undoes"])
                )
    # a delta run's deactivations: write events caused by a deletion or rejection, not a decision
    deactivations = {
        cause
        for cause, events in generations.writes.items()
        if cause not in decisions
        and any(e.type == DestinationWriteIntended.event_type for e in events)
    }
    # only the current generation of each decision's (or deactivation's) writes is to undo
    intents: list[tuple[int, uuid.UUID, Event, Event | None]] = []
    closed: set[uuid.UUID] = set()
    for decision_id in [*decisions, *deactivations]:
        closed.update(event.event_id for event in generations.closed(decision_id))
        current = generations.current(decision_id)
        intent_event = next(
            (e for e in current if e.type == DestinationWriteIntended.event_type), None
        )
        if intent_event is None:
            continue
        outcomes = [e for e in current if e.type != DestinationWriteIntended.event_type]
        position = positions[intent_event.event_id]
        intents.append((position, decision_id, intent_event, outcomes[-1] if outcomes else None))
    for event in undo_events:
        if event.causation_id in closed:
            history.undone[_phase(event.phase)] += 1
    for position, decision_id, intent_event, outcome in sorted(intents, key=lambda i: i[0]):
        intent = DestinationWriteIntended.model_validate(intent_event.payload)
        written = outcome is not None and outcome.type == DestinationWritten.event_type
        undone: Event = outcome if written and outcome is not None else intent_event
        decision = decisions.get(decision_id)
        if decision is None:  # a delta's deactivation: caused by a deletion, not a decision
            table, row_id, source = intent.target_table, intent.target_id, intent_event
            payload, binds, reason = dict(_DEACTIVATED), {}, "deactivated by the delta run"
        else:
            decided = TransformDecided.model_validate(decision.payload)
            table, row_id, source = decided.target_table, decided.target_id, decision
            payload, binds, reason = dict(decided.payload), dict(decided.binds), _UPDATED
        history.sets[entity_set(table)] = table
        history.touches.append(
            _Touch(
                position=position,
                key=source.key,
                phase=_phase(source.phase),
                table=table,
                row_id=row_id.lower(),
                payload=payload,
                binds=binds,
                op=intent.op,
                before_image=intent.before_image,
                steps=list(intent.steps),
                undoes=str(undone.event_id),
                written=written,
                failed=outcome is not None and not written,
                mismatches={} if decision is None else mismatches.get(undone.event_id, {}),
                reason=reason,
            )
        )
    return history


# --- planning ------------------------------------------------------------------------------


Row = tuple[str, str]
"""(table, id) of a Dataverse row."""


def _bound_row(reference: str, sets: Mapping[str, str]) -> Row | None:
    match = _GUID_BIND.match(reference.strip())
    if match is None or match["set"] not in sets:
        return None
    return sets[match["set"]], match["id"].lower()


def _scope_touches(
    history: _History, phases: set[int] | None, cascade: bool
) -> tuple[list[_Touch], dict[int, list[_Touch]]]:
    """The touches to undo: the scope's, plus (with ``cascade``) every dependent one."""
    by_row: dict[Row, list[_Touch]] = defaultdict(list)
    for touch in history.touches:
        by_row[(touch.table, touch.row_id)].append(touch)
    chosen = [t for t in history.touches if phases is None or t.phase in phases]
    if phases is None:
        return chosen, {}
    selected = {id(t) for t in chosen}
    dependents: dict[int, list[_Touch]] = defaultdict(list)
    while True:
        deleted = {(t.table, t.row_id) for t in chosen if t.op == "create"}
        undone_rows = {(t.table, t.row_id) for t in chosen}
        first_undone = {
            row: min(t.position for t in chosen if (t.table, t.row_id) == row)
            for row in undone_rows
        }
        found = []
        for touch in history.touches:
            if id(touch) in selected or touch.failed:
                continue
            row = (touch.table, touch.row_id)
            binds_deleted = any(
                _bound_row(reference, history.sets) in deleted for reference in touch.binds.values()
            )
            rewrites = row in first_undone and touch.position > first_undone[row]
            if binds_deleted or rewrites:
                found.append(touch)
        if not found:
            break
        for touch in found:
            dependents[touch.phase].append(touch)
            if not cascade:
                continue
            for other in by_row[(touch.table, touch.row_id)]:
                if id(other) not in selected and other.position >= touch.position:
                    selected.add(id(other))
                    chosen.append(other)
        if not cascade:
            break
    chosen.sort(key=lambda t: t.position)
    return chosen, dependents


def _row_actions(row_touches: list[_Touch], scope_phases: set[int] | None) -> list[Action]:
    """The actions undoing ``row_touches`` (one row's touches in the scope, in log order)."""
    first = row_touches[0]
    table, row_id = first.table, first.row_id
    cascaded = scope_phases is not None and all(t.phase not in scope_phases for t in row_touches)
    creates = [t for t in row_touches if t.op == "create"]
    actions: list[Action] = []
    closing = [t for t in row_touches if any(s.startswith("opportunityclose ") for s in t.steps)]
    for touch in closing:
        for step in touch.steps:
            if step.startswith("opportunityclose "):
                close_id = step.split(" ", 1)[1].strip().lower()
                actions.append(
                    Action("delete", "opportunityclose", close_id, touch.key, touch.phase,
                           touch.undoes, f"closed opportunity {row_id}", cascaded=cascaded,
                           must_exist=touch.written)
                )  # fmt: skip
    if creates:
        create = creates[0]
        written = any(t.written for t in row_touches)
        others = [t for t in row_touches if t is not create and not t.failed]
        actions.append(
            Action("delete", table, row_id, create.key, create.phase, create.undoes,
                   "created by the run", cascaded=cascaded, must_exist=written,
                   also=_also(others))
        )  # fmt: skip
        return actions
    updates = [t for t in row_touches if not t.failed and t.before_image is not None]
    if not updates:
        return actions
    image: JsonObject = {}
    for touch in reversed(updates):
        image.update(touch.before_image or {})
    earliest, latest = updates[0], updates[-1]
    # keyed by the record whose write it names as undone: in order with that record's writes
    actions.append(
        Action("restore", table, row_id, latest.key, earliest.phase, latest.undoes,
               latest.reason, before_image=image, cascaded=cascaded,
               must_exist=any(t.written for t in updates), also=_also(updates[:-1]))
    )  # fmt: skip
    return actions


def _also(touches: Iterable[_Touch]) -> tuple[tuple[str, str, int], ...]:
    return tuple((t.key, t.undoes, t.phase) for t in touches)


def _rank(action: Action, position: int) -> tuple[int, int, int]:
    table_rank = DELETE_ORDER.index(action.table) if action.table in DELETE_ORDER else -1
    return (-action.phase, table_rank, -position)


def plan_rollback(
    log: EventLog,
    client: DataverseClient,
    *,
    run_id: str,
    phase: int | None = None,
    cascade: bool = False,
    force: bool = False,
) -> RollbackPlan:
    """The rollback of ``run_id`` (or of its ``phase``), checked against Dataverse now.

    Raises :class:`RollbackError` when the run wrote nothing in that scope and
    :class:`RollbackRefusedError` when records outside the scope depend on it and ``cascade``
    is not set. Appends nothing (see :func:`record_plan` and :func:`execute_rollback`).
    """
    history = _history(log, run_id)
    phases = {phase} if phase is not None else None
    deletions = [d for d in history.deletions if phases is None or d.phase in phases]
    undone = sum(n for p, n in history.undone.items() if phases is None or p in phases)
    if (
        not deletions
        and not undone
        and not any(phases is None or t.phase in phases for t in history.touches)
    ):
        where = f"phase {phase} of run {run_id!r}" if phase is not None else f"run {run_id!r}"
        raise RollbackError(f"{where} wrote nothing to Dataverse: there is nothing to roll back")
    touches, dependents = _scope_touches(history, phases, cascade)
    scope = f"run {run_id}" + (f" phase {phase}" if phase is not None else "")
    needed = _deleted_parents(history, touches, deletions)
    if needed and not cascade:
        listed = ", ".join(
            f"phase {p}: {len(ds)} row(s), e.g. {ds[0].key}"
            for p, ds in sorted(_by_phase(needed).items())
        )
        raise RollbackRefusedError(
            f"restoring {scope} would bind rows the delta run deleted ({listed}); re-create"
            " them too with --cascade",
            {p: len(ds) for p, ds in _by_phase(needed).items()},
        )
    deletions += needed
    if dependents and not cascade:
        listed = ", ".join(
            f"phase {p}: {len(ts)} record(s), e.g. {ts[0].key}"
            for p, ts in sorted(dependents.items())
        )
        raise RollbackRefusedError(
            f"later records depend on {scope} ({listed}); roll them back too with --cascade",
            {p: len(ts) for p, ts in dependents.items()},
        )
    if cascade:
        scope += " with dependents"
    plan = RollbackPlan(
        run_id,
        scope,
        tuple(sorted({t.phase for t in touches})),
        recorded=undone,  # writes of closed generations: undone before, never planned again
        dependents={p: len(ts) for p, ts in dependents.items()},
        forced=force,
    )
    by_row: dict[Row, list[_Touch]] = defaultdict(list)
    for touch in touches:
        by_row[(touch.table, touch.row_id)].append(touch)
    ordered: list[tuple[tuple[int, int, int], Action]] = []
    for row_touches in by_row.values():
        last = max(t.position for t in row_touches)
        for action in _row_actions(row_touches, phases):
            if f"{action.undoes}|{action.table}|{action.id}" in history.recorded:
                plan.recorded += 1
                continue
            ordered.append((_rank(action, last), action))
    ordered.sort(key=lambda pair: pair[0])
    candidates = [action for _, action in ordered]
    recreates = []
    for action in _recreate_actions(log, client, deletions):
        if f"{action.undoes}|{action.table}|{action.id}" in history.recorded:
            plan.recorded += 1
        else:
            recreates.append(action)
    # first: a re-created row binds only rows of the state before the run (existing, or
    # re-created before it), and restores may bind it
    candidates[:0] = recreates
    _check_dataverse(client, history, touches, candidates, plan, force)
    plan.planned_before = bool(plan.actions) and all(
        a.identity in history.planned for a in plan.actions
    )
    return plan


def _deleted_parents(
    history: _History, touches: list[_Touch], deletions: list[_Deletion]
) -> list[_Deletion]:
    """Rows a delta run deleted outside the scope that a restore of the scope binds again (an
    activity whose account the same delta run deleted): they must be re-created first."""
    chosen = {(d.table, d.row_id) for d in deletions}
    outside = {
        (d.table, d.row_id): d
        for d in history.deletions
        if (d.table, d.row_id) not in chosen
        and f"{d.undoes}|{d.table}|{d.row_id}" not in history.recorded
    }
    if not outside:
        return []
    sets = {entity_set(table): table for table, _ in outside}
    needed: dict[Row, _Deletion] = {}
    for touch in touches:
        for name, value in (touch.before_image or {}).items():
            if name.endswith("@odata.bind") and isinstance(value, str):
                row = _bound_row(value, sets)
                if row is not None and row in outside:
                    needed[row] = outside[row]
    return sorted(needed.values(), key=lambda d: d.position)


def _by_phase(deletions: list[_Deletion]) -> dict[int, list[_Deletion]]:
    found: dict[int, list[_Deletion]] = defaultdict(list)
    for deletion in deletions:
        found[deletion.phase].append(deletion)
    return found


def _recreate_actions(
    log: EventLog, client: DataverseClient, deletions: list[_Deletion]
) -> list[Action]:
    """Re-create the rows a delta run deleted, parents first (the reverse of deletion order).

    The create body holds the before-image's columns Dataverse accepts on create and its
    lookups as ``<nav>@odata.bind``: the ones the migration bound named as the writer's
    before-images name them (:func:`~consumers.writing.rows.before_image`), every other lookup
    valid for create that held a value (a quote line's unit, the owner) by the target table the
    before-image names for it. A before-image without target tables (older events) re-creates
    the bound lookups only; the others get Dataverse's defaults.
    """
    if not deletions:
        return []
    rows_deleted = {(d.table, d.row_id) for d in deletions}
    binds: dict[Row, dict[str, str]] = defaultdict(dict)
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        if event.type != TransformDecided.event_type:
            continue
        row = (str(event.payload["target_table"]), str(event.payload["target_id"]).lower())
        if row in rows_deleted:
            binds[row].update(event.payload.get("binds") or {})
    tables: dict[str, _Creatable] = {}
    actions: list[Action] = []
    for deletion in sorted(deletions, key=lambda d: d.position, reverse=True):
        table = deletion.table
        if table not in tables:
            tables[table] = _Creatable(
                _creatable_columns(client, table), _lookup_navigations(client, table)
            )
        body = _recreate_body(deletion, binds[(table, deletion.row_id)], tables[table])
        actions.append(
            Action("recreate", table, deletion.row_id, deletion.key, deletion.phase,
                   deletion.undoes, "deleted by the delta run", before_image=body)
        )  # fmt: skip
    return actions


@dataclass(frozen=True)
class _Creatable:
    """What a create of a row of one table may send."""

    columns: frozenset[str] | None
    """the columns valid for create; None when the metadata cannot be read."""
    navigations: Mapping[tuple[str, str], str]
    """(lookup column, target table) → the navigation property that binds it."""


def _creatable_columns(client: DataverseClient, table: str) -> frozenset[str] | None:
    """The columns of ``table`` valid for create; None when the metadata cannot be read."""
    try:
        found = client.get(
            f"EntityDefinitions(LogicalName='{table}')/Attributes",
            {"$select": "LogicalName,IsValidForCreate"},
        )
    except DataverseError:
        return None
    return frozenset(
        str(a["LogicalName"]) for a in found.get("value", []) if a.get("IsValidForCreate")
    )


def _lookup_navigations(client: DataverseClient, table: str) -> dict[tuple[str, str], str]:
    """(lookup column, target table) → navigation property, for the lookups of ``table``.

    Read from the table's many-to-one relationships (``ReferencingAttribute``,
    ``ReferencedEntity``, ``ReferencingEntityNavigationPropertyName``); where the service does
    not list them (the emulator), named from the lookup columns' ``Targets`` by
    :func:`_navigation_name`. Empty when neither can be read.
    """
    definition = f"EntityDefinitions(LogicalName='{table}')"
    try:
        found = client.get(
            f"{definition}/ManyToOneRelationships",
            {
                "$select": "ReferencingAttribute,ReferencedEntity,"
                "ReferencingEntityNavigationPropertyName"
            },
        )
    except DataverseError:
        pass
    else:
        return {
            (str(r["ReferencingAttribute"]), str(r["ReferencedEntity"])): str(
                r["ReferencingEntityNavigationPropertyName"]
            )
            for r in found.get("value", [])
            if r.get("ReferencingEntityNavigationPropertyName")
        }
    try:
        found = client.get(
            f"{definition}/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata",
            {"$select": "LogicalName,Targets"},
        )
    except DataverseError:
        return {}
    navigations: dict[tuple[str, str], str] = {}
    for attribute in found.get("value", []):
        column, targets = str(attribute["LogicalName"]), list(attribute.get("Targets") or [])
        for target in targets:
            navigations[(column, str(target))] = _navigation_name(table, column, targets, target)
    return navigations


def _navigation_name(table: str, column: str, targets: Sequence[str], target: str) -> str:
    """The navigation property that binds lookup ``column`` of ``table`` to a row of ``target``
    (reference 4): the column itself for the owner and single-target lookups,
    ``regardingobjectid_<target>_<table>`` for an activity's regarding, ``<column>_<target>``
    for every other polymorphic lookup (``parentcustomerid_account``, ``objectid_contact``)."""
    if column == "ownerid" or len(targets) <= 1:
        return column
    if column == "regardingobjectid":
        return f"regardingobjectid_{target}_{table}"
    return f"{column}_{target}"


def _recreate_body(deletion: _Deletion, binds: Mapping[str, str], table: _Creatable) -> JsonObject:
    """The columns and ``<nav>@odata.bind`` lookups that re-create the deleted row (state
    included: :func:`_changeset` sends it as the writer does, after the create)."""
    image = deletion.before_image
    body: JsonObject = {rows.primary_id(deletion.table): deletion.row_id}
    for name, value in image.items():
        if "@" in name or name.startswith("_") or name in _NOT_RECREATED or value is None:
            continue
        if table.columns is None or name in table.columns or name in _STATE:
            body[name] = value
    if image.get("overriddencreatedon") is not None:
        # the migration backdated the row: keep the date it showed
        body["overriddencreatedon"] = image.get("createdon") or image["overriddencreatedon"]
    bound = {rows.lookup_column(navigation) for navigation in binds}
    for name, value in image.items():
        column = name[1:-6] if name.startswith("_") and name.endswith("_value") else None
        target = image.get(f"{name}{_LOOKUP_TARGET}")
        if column is None or column in bound or value is None or target is None:
            continue
        # an owner is valid for create wherever a row has one (reference 4.7)
        if column != "ownerid" and (table.columns is None or column not in table.columns):
            continue
        navigation = column if column == "ownerid" else table.navigations.get((column, str(target)))
        if navigation is not None:
            body[f"{navigation}@odata.bind"] = f"/{entity_set(str(target))}({value})"
    # the lookups the migration bound, as it bound them
    for navigation, reference in binds.items():
        wrote = None if reference == CLEARED_BIND else reference
        lookup = rows.before_image({f"{navigation}@odata.bind": wrote}, image, state=False)
        body.update({name: value for name, value in lookup.items() if value is not None})
    return body


# --- Dataverse's side of the plan ----------------------------------------------------------


class _Reader:
    """Reads current rows and resolves alternate-key binds, cached."""

    def __init__(self, client: DataverseClient, sets: Mapping[str, str]) -> None:
        self._client = client
        self._sets = {**_WELL_KNOWN_SETS, **sets}
        self._binds: dict[str, str | None] = {}

    def rows(self, table: str, ids: Sequence[str], columns: Iterable[str]) -> dict[str, JsonObject]:
        pk = rows.primary_id(table)
        select = ",".join(dict.fromkeys([pk, *sorted(set(columns) - {pk})]))
        found: dict[str, JsonObject] = {}
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start : start + _READ_CHUNK]
            params = {"$select": select, "$filter": " or ".join(f"{pk} eq {i}" for i in chunk)}
            for row in self._query(entity_set(table), params):
                found[str(row[pk]).lower()] = row
        return found

    def children(self, table: str, lookup: str, parent_id: str) -> list[JsonObject]:
        params = {"$filter": f"_{lookup}_value eq {parent_id}"}
        return self._query(entity_set(table), params)

    def bound_id(self, reference: str) -> str | None:
        match = _GUID_BIND.match(reference.strip())
        if match is not None:
            return match["id"].lower()
        if reference not in self._binds:
            self._binds[reference] = self._resolve(reference)
        return self._binds[reference]

    def _resolve(self, reference: str) -> str | None:
        match = _KEY_BIND.match(reference.strip())
        table = self._sets.get(match["set"]) if match else None
        if match is None or table is None:
            return None
        parts = _KEY_PART.findall(match["key"])
        if not parts:
            return None
        pk = rows.primary_id(table)
        condition = " and ".join(f"{name} eq {value.strip()}" for name, value in parts)
        found = self._query(match["set"], {"$select": pk, "$filter": condition})
        return str(found[0][pk]).lower() if len(found) == 1 else None

    def _query(self, set_name: str, params: Mapping[str, str]) -> list[JsonObject]:
        page = self._client.get(set_name, params, max_page_size=5000)
        found = list(page.get("value", []))
        while isinstance(link := page.get("@odata.nextLink"), str):
            page = self._client.get(link, max_page_size=5000)
            found.extend(page.get("value", []))
        return found


def _expected(row_touches: Iterable[_Touch]) -> tuple[JsonObject, dict[str, str]]:
    """What the run left in the row: read column → value, and read column → bind reference."""
    values: JsonObject = {}
    binds: dict[str, str] = {}
    for touch in row_touches:
        if touch.failed:
            continue
        for name, value in touch.payload.items():
            if name in _NOT_COMPARED or isinstance(value, list | dict):
                continue
            values[name] = value
        for navigation, reference in touch.binds.items():
            column = f"_{rows.lookup_column(navigation)}_value"
            binds[column] = reference
            values.pop(column, None)
        for name, actual in touch.mismatches.items():
            if name.startswith("("):
                continue
            if name in touch.binds:
                column = f"_{rows.lookup_column(name)}_value"
                binds.pop(column, None)
                values[column] = actual
            elif name not in _NOT_COMPARED:
                values[name] = actual
    return values, binds


def _image_columns(image: Mapping[str, Any]) -> JsonObject:
    """A before-image as read columns: lookups as ``_x_value`` ids (None when empty)."""
    columns: JsonObject = {}
    for name, value in image.items():
        if name.endswith("@odata.bind"):
            column = f"_{rows.lookup_column(name.removesuffix('@odata.bind'))}_value"
            match = _GUID_BIND.match(str(value)) if value is not None else None
            columns[column] = match["id"].lower() if match else value
        else:
            columns[name] = value
    return columns


def _same_id(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    return str(expected).lower() == str(actual).lower()


def _differences(
    expected: Mapping[str, Any], binds: Mapping[str, str], row: Mapping[str, Any], reader: _Reader
) -> dict[str, tuple[Any, Any]]:
    changed: dict[str, tuple[Any, Any]] = {}
    for column, value in expected.items():
        actual = row.get(column)
        same = _same_id(value, actual) if column.endswith("_value") else same_value(value, actual)
        if not same:
            changed[column] = (value, actual)
    for column, reference in binds.items():
        wanted = reader.bound_id(reference)
        if not _same_id(wanted, row.get(column)):
            changed[column] = (wanted or reference, row.get(column))
    return changed


def _check_dataverse(
    client: DataverseClient,
    history: _History,
    touches: list[_Touch],
    candidates: list[Action],
    plan: RollbackPlan,
    force: bool,
) -> None:
    """Fill ``plan.actions`` from ``candidates``: conflicts left out, implicit rows added."""
    reader = _Reader(client, history.sets)
    by_row: dict[Row, list[_Touch]] = defaultdict(list)
    for touch in history.touches:
        by_row[(touch.table, touch.row_id)].append(touch)
    wanted: dict[str, set[str]] = defaultdict(set)
    ids: dict[str, list[str]] = defaultdict(list)
    for action in candidates:
        ids[action.table].append(action.id)
        if action.table == "opportunityclose" or action.action == "recreate":
            continue
        expected, binds = _expected(by_row[(action.table, action.id)])
        wanted[action.table].update(expected, binds)
        wanted[action.table].update(_image_columns(action.before_image or {}))
    current: dict[Row, JsonObject] = {}
    for table, table_ids in ids.items():
        for row_id, found_row in reader.rows(table, table_ids, wanted[table]).items():
            current[(table, row_id)] = found_row
    plan.current = current
    conflicted: list[Action] = []
    units: dict[str, list[Action]] = {}
    dropped: set[tuple[str, str, str, str]] = set()
    for action in candidates:
        row = current.get((action.table, action.id))
        if action.action == "recreate":
            if row is not None:
                plan.already.add(action.identity)  # re-created before a crash
            continue
        if row is None and action.action == "delete":
            if action.must_exist:
                plan.already.add(action.identity)
            else:
                dropped.add(action.identity)  # only an intent, and no row: nothing was written
            continue
        if action.table == "opportunityclose":
            continue
        conflict = _conflict(action, row, by_row[(action.table, action.id)], reader)
        if conflict is not None:
            plan.conflicts.append(conflict)
            if not force:
                conflicted.append(action)
                continue
        if action.action == "delete" and action.table == "uomschedule" and row is not None:
            unit_actions, foreign = _units(reader, action)
            if foreign:
                plan.conflicts.append(foreign)
                if not force:
                    conflicted.append(action)
                    continue
            units[action.id] = unit_actions
        if row is not None and action.action == "restore":
            image = _image_columns(action.before_image or {})
            if not _differences(image, {}, row, reader):
                plan.already.add(action.identity)
    held = _held(conflicted, by_row, history.sets)
    skipped = {a.identity for a in conflicted}
    for action in candidates:
        if action.identity in skipped or action.identity in dropped:
            continue
        if action.table == "opportunityclose" and _closed_row(action, candidates) in skipped:
            continue
        # only a delete would cascade into the changed row; a restore leaves it bound as it is
        blocker = held.get((action.table, action.id)) if action.action == "delete" else None
        if blocker is not None:
            plan.held.append(
                Conflict(action, {}, f"kept: {blocker} binds it and was changed in Dataverse")
            )
            continue
        if action.table == "uomschedule":
            plan.actions.extend(units.get(action.id, []))
        plan.actions.append(action)


def _closed_row(close: Action, candidates: list[Action]) -> tuple[str, str, str, str] | None:
    for action in candidates:
        if action.table == "opportunity" and action.undoes == close.undoes:
            return action.identity
    for action in candidates:
        if action.table == "opportunity" and action.key == close.key:
            return action.identity
    return None


def _held(
    conflicted: list[Action], by_row: Mapping[Row, list[_Touch]], sets: Mapping[str, str]
) -> dict[Row, str]:
    """Rows a conflicted row binds (transitively): deleting them would cascade into it."""
    held: dict[Row, str] = {}
    pending = [(a.table, a.id, f"{a.table} {a.id} ({a.key})") for a in conflicted]
    while pending:
        table, row_id, why = pending.pop()
        for touch in by_row.get((table, row_id), []):
            for reference in touch.binds.values():
                bound = _bound_row(reference, sets)
                if bound is not None and bound not in held:
                    held[bound] = why
                    pending.append((bound[0], bound[1], why))
    return held


def _conflict(
    action: Action, row: JsonObject | None, row_touches: list[_Touch], reader: _Reader
) -> Conflict | None:
    if row is None:
        if action.action == "restore" and action.must_exist:
            return Conflict(action, {}, "deleted in Dataverse since the run updated it")
        return None
    expected, binds = _expected(row_touches)
    changed = _differences(expected, binds, row, reader)
    if not changed:
        return None
    if action.action == "restore":
        image = _image_columns(action.before_image or {})
        if not _differences(image, {}, row, reader):
            return None  # already restored (a resumed rollback)
    return Conflict(action, changed)


def _units(reader: _Reader, schedule: Action) -> tuple[list[Action], Conflict | None]:
    """The units of a unit group the run created (Dataverse made its base unit), deleted base
    unit last; a conflict when the group has units the run did not create."""
    found = reader.children("uom", "uomscheduleid", schedule.id)
    others = [unit for unit in found if not unit.get("isschedulebaseuom")]
    conflict = None
    if others:
        names = ", ".join(str(unit.get("name")) for unit in others[:3])
        conflict = Conflict(
            schedule, {}, f"the unit group has units the run did not create: {names}"
        )
    base_last = sorted(found, key=lambda unit: bool(unit.get("isschedulebaseuom")))
    actions = [
        Action("delete", "uom", str(u["uomid"]).lower(), schedule.key, schedule.phase,
               schedule.undoes, f"unit of unit group {schedule.id}", cascaded=schedule.cascaded)
        for u in base_last
    ]  # fmt: skip
    return actions, conflict


# --- carrying it out -----------------------------------------------------------------------

Progress = Callable[[str, int], None]
"""``progress(table, actions)``: called after each ``$batch``."""


def record_plan(log: EventLog, plan: RollbackPlan) -> Event | None:
    """Append ``RollbackPlanned`` for ``plan``; None when there is nothing new to plan.

    An earlier ``RollbackPlanned`` of the run that lists every action is being resumed: nothing
    is appended for it. The event id derives from the actions, so a retried append is dropped.
    """
    if plan.empty or plan.planned_before:
        return None
    actions = [action.as_json() for action in plan.actions]
    event = Event.create(
        RollbackPlanned(scope=plan.scope, actions=actions),
        run_id=plan.run_id,
        key=f"rollback:{plan.run_id}",
        cause=content_hash(actions),
        phase=str(plan.phases[0]) if len(plan.phases) == 1 else None,
    )
    log.append([event])
    return event


def execute_rollback(
    log: EventLog,
    client: DataverseClient,
    plan: RollbackPlan,
    *,
    batch_size: int = 100,
    correlation_id: uuid.UUID | None = None,
    progress: Progress | None = None,
) -> RollbackSummary:
    """Carry out ``plan`` in its order, one ``$batch`` of up to ``batch_size`` rows of one table
    and action at a time (one changeset per row), appending each batch's events after it.

    A delete answered 404 counts as done. A refused action is listed in
    :attr:`RollbackSummary.failed` and not recorded, so the next rollback tries it again; a
    request that fails as a whole (Dataverse unreachable) raises, with everything before it
    recorded.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    summary = RollbackSummary(plan)
    for chunk in _chunks(plan.actions, batch_size):
        events: list[Event] = []
        to_send: list[Action] = []
        for action in chunk:
            if action.identity in plan.already:
                events.extend(_recorded(action, plan, correlation_id))
                _count(summary, action, gone=action.action == "delete")
            else:
                to_send.append(action)
        if to_send:
            parts = _send(client, to_send, plan)
            for action, part in zip(to_send, parts, strict=True):
                gone = action.action == "delete" and part.status == 404
                if part.ok or gone:
                    events.extend(_recorded(action, plan, correlation_id))
                    _count(summary, action, gone=gone)
                else:
                    code, message = part.error
                    summary.failed.append(
                        f"{action.action} {action.table} {action.id} ({action.key}):"
                        f" {part.status} {code} {message}"
                    )
        if events:
            log.append(events)
            summary.appended += len(events)
        if progress is not None:
            progress(chunk[0].table, len(chunk))
    return summary


def rollback(
    log: EventLog,
    client: DataverseClient,
    *,
    run_id: str,
    phase: int | None = None,
    cascade: bool = False,
    force: bool = False,
    batch_size: int = 100,
    progress: Progress | None = None,
) -> RollbackSummary:
    """Plan, record and carry out the rollback of ``run_id`` (or of its ``phase``).

    See :func:`plan_rollback` for the errors; a rollback with nothing left to do appends
    nothing.
    """
    plan = plan_rollback(log, client, run_id=run_id, phase=phase, cascade=cascade, force=force)
    planned = record_plan(log, plan)
    correlation = planned.event_id if planned is not None else None
    return execute_rollback(
        log, client, plan, batch_size=batch_size, correlation_id=correlation, progress=progress
    )


def _chunks(actions: list[Action], size: int) -> list[list[Action]]:
    chunks: list[list[Action]] = []
    for action in actions:
        last = chunks[-1] if chunks else None
        same = (
            last is not None
            and len(last) < size
            and (last[0].phase, last[0].table, last[0].action)
            == (action.phase, action.table, action.action)
        )
        if same and last is not None:
            last.append(action)
        else:
            chunks.append([action])
    return chunks


def _count(summary: RollbackSummary, action: Action, *, gone: bool) -> None:
    if action.action == "delete":
        summary.deleted[action.table] += 1
        summary.already_gone += int(gone)
    elif action.action == "recreate":
        summary.recreated[action.table] += 1
    else:
        summary.restored[action.table] += 1


def _recorded(action: Action, plan: RollbackPlan, correlation_id: uuid.UUID | None) -> list[Event]:
    """The action's event, and one per other record's write it undid too (:attr:`Action.also`),
    each keyed by the source key of the write it undoes."""
    payload: DestinationDeleted | DestinationRestored | DestinationRecreated
    if action.action == "delete":
        payload = DestinationDeleted(target_table=action.table, target_id=action.id)
    elif action.action == "recreate":
        payload = DestinationRecreated(
            target_table=action.table, target_id=action.id, recreated=action.before_image or {}
        )
    else:
        payload = DestinationRestored(
            target_table=action.table, target_id=action.id, restored=action.before_image or {}
        )
    return [
        Event.create(
            payload,
            run_id=plan.run_id,
            key=key,
            cause=f"rollback|{action.action}|{action.table}|{action.id}|{undoes}",
            phase=str(phase),
            causation_id=uuid.UUID(undoes),
            correlation_id=correlation_id,
        )
        for key, undoes, phase in ((action.key, action.undoes, action.phase), *action.also)
    ]


def _send(client: DataverseClient, actions: list[Action], plan: RollbackPlan) -> list[batch.Part]:
    changesets = [_changeset(action, plan) for action in actions]
    content_type, body = batch.encode(changesets, client.base_url)
    response = client.request(
        "POST",
        "$batch",
        content=body,
        headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
    )
    sizes = [len(changeset) for changeset in changesets]
    parts = batch.decode(response.headers.get("content-type", ""), response.content, sizes)
    if len(parts) != len(changesets):
        raise DataverseError(
            response.status_code, "", f"$batch answered {len(parts)} parts for {len(changesets)}"
        )
    return parts


def _changeset(action: Action, plan: RollbackPlan) -> list[batch.Request]:
    path = f"{entity_set(action.table)}({action.id})"
    if action.action == "delete":
        return [batch.Request("DELETE", path)]
    if action.action == "recreate":
        return _recreate_requests(action)
    image = action.before_image or {}
    current = plan.current.get((action.table, action.id), {})
    values = {
        name: value
        for name, value in image.items()
        if name not in _STATE and not (name.endswith("@odata.bind") and value is None)
    }
    # DELETE $ref only where the lookup holds a value (or was not read)
    empty = [
        n.removesuffix("@odata.bind")
        for n, v in image.items()
        if n.endswith("@odata.bind") and v is None
    ]
    clear = [
        nav for nav in empty if current.get(f"_{rows.lookup_column(nav)}_value", "") is not None
    ]
    state = {name: image[name] for name in _STATE if name in image}
    match = {"If-Match": "*"}  # never create a row someone deleted
    if action.table == "product" and (values or clear):
        product = _product_restore(path, values, clear, state, current)
        if product is not None:
            return product
    requests: list[batch.Request] = []
    reopen = bool(state) and state.get("statecode") == 0
    if reopen:
        requests.append(batch.Request("PATCH", path, state, match))
    if values:
        requests.append(batch.Request("PATCH", path, values, match))
    requests += [batch.Request("DELETE", f"{path}/{navigation}/$ref") for navigation in clear]
    if state and not reopen:
        requests.append(batch.Request("PATCH", path, state, match))
    return requests or [batch.Request("PATCH", path, {}, match)]


def _product_restore(
    path: str,
    values: JsonObject,
    clear: list[str],
    state: JsonObject,
    current: JsonObject,
) -> list[batch.Request] | None:
    """A product's restore, as the writer updates one: revised first unless it is in Draft or
    Under Revision (only those can be edited, reference 10.4), its columns, then the state of the
    before-image (else the state it is in now). None when neither state is known."""
    final = state or {name: current[name] for name in _STATE if current.get(name) is not None}
    if not final:
        return None
    match = {"If-Match": "*"}
    requests: list[batch.Request] = []
    if rows.needs_revision("product", [*values, *clear], current.get("statecode")):
        revise = {"statecode": rows.REVISE.state, "statuscode": rows.REVISE.status}
        requests.append(batch.Request("PATCH", path, revise, match))
    if values:
        requests.append(batch.Request("PATCH", path, values, match))
    requests += [batch.Request("DELETE", f"{path}/{navigation}/$ref") for navigation in clear]
    requests.append(batch.Request("PATCH", path, final, match))
    return requests


def _recreate_requests(action: Action) -> list[batch.Request]:
    """The create and, as the writer sends it, the state step after it (one changeset)."""
    image = action.before_image or {}
    binds = {
        name.removesuffix("@odata.bind"): str(value)
        for name, value in image.items()
        if name.endswith("@odata.bind")
    }
    payload = {name: value for name, value in image.items() if not name.endswith("@odata.bind")}
    body = rows.body_of(action.table, payload, binds, create=True)
    requests = [batch.Request("POST", entity_set(action.table), body)]
    step = rows.step_of(action.table, payload, create=True)
    if step is not None:
        method, path, step_body = rows.step_request(action.table, action.id, payload, step)
        requests.append(batch.Request(method, path, step_body))
    return requests
