"""The transform stage: every extracted record of a run becomes one decision.

``transform_run`` turns a run's ``SourceRecordExtracted`` events into exactly one
``TransformDecided`` or ``RecordRejected`` per record of a mapped table, under a *confirmed* map
only (:func:`producers.mapping.gate.require_confirmed`).

Two passes, memory bounded by sets of keys:

1. read the run's source events once (:class:`~producers.mapping.index.RunIndex`): keys per
   object, users, payments, same-company groups, date formats; spool mapped records per object;
2. decide object by object in phase and map order, so a parent's rejection is known before its
   children look it up: a contact whose account is missing or rejected is rejected too.

A decision's event id derives from the record's content hash and the map hash, and the key stays
the source key (``Kunden:1739201``), so re-running appends nothing: decisions already in the
log for the run are read first and skipped (on SQLite the log would also drop them; on Kafka
this is what keeps the topic free of duplicates). A record already decided under another map or
content keeps its first decision; re-deciding needs a new run.

Choices the map cannot express (documented here because reviewers ask):

- **Duplicates** (``settings.duplicate_rule``): partner rows with the same fingerprint
  (:func:`producers.mapping.rules.fingerprint`) form a group; the row of the earliest object with
  the lowest ``Nummer`` survives. Another row of the same object is ``RecordRejected`` with
  ``duplicate_of: Kunden:<survivor>``; the survivor's decision notes every duplicate
  (``duplicate_merged``); lookups to a duplicate resolve to the survivor's row, so its contacts,
  documents and activities are kept.
- **Customer and supplier**: a supplier in the same group as a customer (same fingerprint, or
  linked by ``AdresseWirdGepflegtBeiKundeCode``/``…BeiLieferantCode``) is decided as an update of
  the customer's account: the same target id, only the columns the customer object does not
  set (the supplier flags and numbers), and a ``supplier_merged`` note on both sides.
- **Open items** (``RA``): gross = ``RBetrag + RMwst``, paid = Σ ``RABezSumme.Summe``, open =
  gross - paid, written to the map's ``w4a_grossamount``/``w4a_paidamount``/``w4a_openamount``
  columns where it declares them; a ``payment_mismatch`` note when ``BezSumme`` differs.
- **Findings**: every extraction finding becomes a note whose code is the finding's kind; float
  artefacts in raw money values (``float_noise``) and dates written unlike the rest of their
  table (``text_date``) are noted too.
- **Delta runs** (:mod:`producers.delta`): pass 1 indexes the whole current source state (the
  base run's records as the delta runs since changed them, deleted ones left out), and pass 2
  decides every record of it, so lookups, duplicates and rejected parents come out as in a full
  migration of the newer export. The run's new and changed records (``SourceRecordChanged``)
  are counted and appended; so is every other record whose decision differs from its latest
  decision in the chain (base run and earlier delta runs) — a **knock-on**: a duplicate whose
  survivor was deleted, a contact whose account was, a lookup that now resolves elsewhere.
  Decisions are compared by kind (decided or rejected) and, when decided, by target table and
  id, payload and binds, a cleared column or lookup being the same as one never set (notes and
  event ids do not count). A knock-on carries a ``knock_on`` note (in a rejection, under
  :data:`~producers.mapping.rules.WARNINGS_KEY`) naming what changed, and clears what the
  record no longer has, as a changed record does. The chain's decisions are held as one short
  digest per key (:func:`decision_digest`), never as payloads.
- A record that no object's filter takes is rejected (``filtered_out``), never skipped silently.
  Tables no object maps (``Mitarbeiter``, ``RABezSumme``, lookups) are reference data: read, not
  decided.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.event_types import RecordRejected, SourceRecordExtracted, TransformDecided
from ledger.events import Event, EventPayload, Topic, canonical_json
from ledger.log import EventLog
from producers.delta import DeltaScope, delta_scope
from producers.mapping import rules
from producers.mapping.context import StageContext, target_id
from producers.mapping.gate import require_confirmed
from producers.mapping.index import RunIndex, Spool
from producers.mapping.model import ColumnMap, MapError, MigrationMap, ObjectMap
from producers.mapping.transforms import (
    TRANSFORMS,
    Bind,
    FileRef,
    Outcome,
    note,
    reason_code,
)
from producers.work4all.tables import TABLES, Kind

__all__ = [
    "CLEARED_BIND",
    "KNOCK_ON",
    "ObjectCounts",
    "TransformSummary",
    "decision_digest",
    "decision_key_counts",
    "target_id",
    "transform_run",
]

Progress = Callable[[str, int], None]
"""``progress(step, records)``: ``step`` is ``"index"`` or an object name."""

OPEN_ITEM_COLUMNS = ("w4a_grossamount", "w4a_paidamount", "w4a_openamount")
"""Columns of an ``RA`` object the stage fills itself: gross, Σ payments, open amount."""

CLEARED_BIND = ""
"""A bind reference that empties the lookup: the writer disassociates it (``DELETE …/$ref``)."""

KNOCK_ON = "knock_on"
"""Reason code of a delta run's decision that only the records around it changed."""

_LOOKUP_TRANSFORMS = frozenset({"lookup", "owner"})
_NEVER_CLEARED = frozenset({"statecode", "statuscode", "ownerid", "overriddencreatedon"})
"""Columns a changed record never clears: a state and an owner always have a value, and
``overriddencreatedon`` only counts on create."""

_BATCH = 1000


@dataclass
class ObjectCounts:
    """What became of one map object's records."""

    phase: int
    target: str
    extracted: int = 0
    decided: int = 0
    rejected: int = 0
    notes: Counter[str] = field(default_factory=Counter)
    """notes on decisions, by reason code."""
    reasons: Counter[str] = field(default_factory=Counter)
    """rejection reasons, by reason code."""
    knock_on: int = 0
    """records of a delta run decided anew because the records around them changed (counted
    in ``extracted`` and in ``decided``/``rejected`` too)."""


@dataclass
class TransformSummary:
    """The outcome of one transform run."""

    run_id: str
    map_hash: str
    objects: dict[str, ObjectCounts] = field(default_factory=dict)
    reference: dict[str, int] = field(default_factory=dict)
    """records of tables read but not decided (users, payments, lookups)."""
    appended: int = 0
    already_in_log: int = 0
    """decisions found in the log for the run and not appended again."""
    kept_earlier: int = 0
    """records already decided in the run under another map or content: not re-decided."""
    seconds: float = 0.0

    @property
    def records(self) -> int:
        """Records decided or rejected in this run."""
        return sum(counts.decided + counts.rejected for counts in self.objects.values())

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds else 0.0


def transform_run(
    log: EventLog,
    migration_map: MigrationMap,
    *,
    run_id: str,
    progress: Progress | None = None,
    files: Path | None = None,
    work_dir: Path | None = None,
) -> TransformSummary:
    """Decide every extracted record of ``run_id`` under ``migration_map`` and append the events.

    ``files`` is the export's file store (attachments are read from it, Base64, into
    ``documentbody``); ``work_dir`` where the spool of pass 1 goes (default: the system's
    temporary directory). Raises :class:`~producers.mapping.gate.MapNotConfirmedError` for an
    unconfirmed map and
    :class:`~producers.mapping.model.MapError` for a map naming unknown transforms.
    """
    started = time.perf_counter()
    require_confirmed(log, migration_map)
    _check_transforms(migration_map)
    summary = TransformSummary(run_id, migration_map.content_hash)
    with tempfile.TemporaryDirectory(prefix="crmledger-transform-", dir=work_dir) as spool_dir:
        spool = Spool(Path(spool_dir))
        try:
            scope = delta_scope(log, run_id)
            index = _index(log, migration_map, run_id, spool, progress, scope)
            existing, decided_keys = _existing_decisions(log, run_id)
            decider = _Decider(index, summary.run_id, migration_map.content_hash, files)
            delta = _DeltaContext.read(log, scope, migration_map) if scope is not None else None
            _decide_all(decider, spool, summary, existing, decided_keys, log, progress, delta)
        finally:
            spool.close()
    summary.reference = dict(index.reference)
    summary.seconds = time.perf_counter() - started
    return summary


def decision_digest(event: Event) -> bytes:
    """A short digest of what a decision does to Dataverse, to compare two decisions of a key.

    One byte for the kind (``R`` rejected, ``D`` decided); a decision adds 8 bytes of the
    SHA-256 of its target table and id, payload and binds, then per column and lookup 4 bytes
    naming it and 2 of its value (what :func:`_changes` reads to name what changed). A column
    set to ``None`` and a :data:`CLEARED_BIND` count as not set; notes and ids not at all.
    """
    if event.type != TransformDecided.event_type:
        return b"R"
    payload = event.payload
    fields = {
        **{f"p:{name}": value for name, value in payload["payload"].items() if value is not None},
        **{f"b:{nav}": ref for nav, ref in payload["binds"].items() if ref != CLEARED_BIND},
    }
    target = (str(payload["target_table"]), str(payload["target_id"]).lower())
    whole = canonical_json({"target": target, "fields": fields}).encode()
    parts = [b"D", hashlib.sha256(whole).digest()[:8]]
    for name in sorted(fields):
        parts.append(_short(name, 4) + _short(canonical_json(fields[name]), 2))
    return b"".join(parts)


def _short(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def decision_key_counts(log: EventLog, run_id: str) -> Counter[str]:
    """How many decisions each source key has in ``run_id`` (for checks: every count is 1)."""
    counts: Counter[str] = Counter()
    for stored in log.read([Topic.DECISIONS]):
        if stored.event.run_id == run_id:
            counts[stored.event.key] += 1
    return counts


# --- pass 1 ------------------------------------------------------------------------------------


def _check_transforms(migration_map: MigrationMap) -> None:
    unknown = sorted(
        {
            f"{obj.name}.{column.target}: {column.transform!r}"
            for obj in migration_map.objects
            for column in obj.columns
            if column.transform not in TRANSFORMS
        }
    )
    if unknown:
        raise MapError(
            f"the map names transforms crmledger does not know: {', '.join(unknown)};"
            f" known: {', '.join(sorted(TRANSFORMS))}"
        )


def _index(
    log: EventLog,
    migration_map: MigrationMap,
    run_id: str,
    spool: Spool,
    progress: Progress | None,
    scope: DeltaScope | None = None,
) -> RunIndex:
    index = RunIndex(migration_map)
    seen = 0
    for stored in log.read([Topic.SOURCE]):
        event = stored.event
        if scope is not None:
            if scope.latest.get(event.key) != str(event.event_id):
                continue  # a delta run: only each record's current version
        elif event.run_id != run_id or event.type != SourceRecordExtracted.event_type:
            continue
        obj = index.add(event.payload)
        if obj is not None:
            spool.add(index.ranks[obj.name], str(event.event_id), event.key, event.payload)
        seen += 1
        if progress is not None and seen % _BATCH == 0:
            progress("index", _BATCH)
    if progress is not None:
        progress("index", seen % _BATCH)
    index.finish()
    return index


def _existing_decisions(log: EventLog, run_id: str) -> tuple[set[uuid.UUID], set[str]]:
    ids: set[uuid.UUID] = set()
    keys: set[str] = set()
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        if event.run_id == run_id:
            ids.add(event.event_id)
            keys.add(event.key)
    return ids, keys


# --- pass 2 ------------------------------------------------------------------------------------


def _decide_all(
    decider: _Decider,
    spool: Spool,
    summary: TransformSummary,
    existing: set[uuid.UUID],
    decided_keys: set[str],
    log: EventLog,
    progress: Progress | None,
    delta: _DeltaContext | None = None,
) -> None:
    """Decide every spooled record; in a delta run count and append only the run's records and
    the knock-ons: the others are decided for their effect on lookups (a rejected parent)."""
    index, context = decider.index, decider.context
    migration_map = index.migration_map
    by_rank = {index.ranks[obj.name]: obj for obj in migration_map.objects}
    for obj in migration_map.objects:
        summary.objects[obj.name] = ObjectCounts(
            obj.phase, obj.target, extracted=index.extracted[obj.name] if delta is None else 0
        )
    batch: list[Event] = []
    done_keys: set[str] = set()
    for rank in spool.ranks():
        obj = by_rank[rank]
        context.rank = rank
        counts = summary.objects[obj.name]
        count = 0
        for event_id, key, payload in spool.read(rank):
            count += 1
            knock_on = delta is not None and key not in delta.in_run
            event = decider.decide(obj, key, uuid.UUID(event_id), payload, clear=knock_on)
            if event.type == RecordRejected.event_type:
                context.rejected[obj.name].add(str(payload["source_key"]))
            if delta is not None:
                if knock_on:
                    changed = delta.knock_on(event)
                    if changed is None:
                        continue
                    event = changed
                    counts.knock_on += 1
                counts.extracted += 1
            _count(counts, event)
            if event.event_id in existing:
                summary.already_in_log += 1
            elif key in decided_keys or key in done_keys:
                summary.kept_earlier += 1
            else:
                batch.append(event)
                done_keys.add(key)
            if len(batch) >= _BATCH:
                log.append(batch)
                summary.appended += len(batch)
                batch = []
            if progress is not None and count % _BATCH == 0:
                progress(obj.name, _BATCH)
        if progress is not None:
            progress(obj.name, count % _BATCH)
    if batch:
        log.append(batch)
        summary.appended += len(batch)


@dataclass
class _DeltaContext:
    """What pass 2 of a delta run needs: the run's own keys and the chain's latest decisions."""

    in_run: frozenset[str]
    earlier: dict[str, bytes]
    """key → :func:`decision_digest` of its latest decision in the base run and the delta runs
    before this one."""
    names: dict[bytes, str]
    """4-byte digest of ``p:<column>``/``b:<lookup>`` → the column's name, for every column the
    map (or the stage) can set."""

    @classmethod
    def read(cls, log: EventLog, scope: DeltaScope, migration_map: MigrationMap) -> _DeltaContext:
        """The chain's latest decision digests, read from the log in one pass."""
        earlier: dict[str, bytes] = {}
        for stored in log.read([Topic.DECISIONS]):
            event = stored.event
            if event.run_id in scope.chain and event.type in _DECISION_TYPES:
                earlier[event.key] = decision_digest(event)
        targets = {column.target for obj in migration_map.objects for column in obj.columns}
        targets.update(OPEN_ITEM_COLUMNS)
        return cls(scope.in_run, earlier, _field_names(targets))

    def knock_on(self, event: Event) -> Event | None:
        """``event`` with a ``knock_on`` note if it decides its key otherwise than the chain's
        latest decision did, else None."""
        now = decision_digest(event)
        before = self.earlier.get(event.key)
        if before is not None and before[:9] == now[:9]:
            return None
        names = {**self.names, **_field_names(_fields_of(event))}
        text = note(KNOCK_ON, f"decision changed by the delta ({_changes(before, now, names)})")
        payload = dict(event.payload)
        if event.type == TransformDecided.event_type:
            payload["notes"] = [*payload["notes"], text]
        else:
            reasons = dict(payload["reasons"])
            reasons[rules.WARNINGS_KEY] = [*reasons.get(rules.WARNINGS_KEY, []), text]
            payload["reasons"] = reasons
        return event.model_copy(update={"payload": payload})


_DECISION_TYPES = frozenset({TransformDecided.event_type, RecordRejected.event_type})


def _fields_of(event: Event) -> list[str]:
    if event.type != TransformDecided.event_type:
        return []
    return [*event.payload["payload"], *event.payload["binds"]]


def _field_names(targets: Iterable[str]) -> dict[bytes, str]:
    names: dict[bytes, str] = {}
    for target in targets:
        names[_short(f"p:{target}", 4)] = f"payload {target}"
        names[_short(f"b:{target}", 4)] = f"binds {target}"
    return names


def _changes(before: bytes | None, now: bytes, names: Mapping[bytes, str]) -> str:
    """What differs between two :func:`decision_digest` values, in words."""
    if before is None:
        return "no earlier decision"
    if before[:1] != now[:1]:
        return "rejected before, decided now" if now[:1] == b"D" else "rejected now"
    old, new = _unpack(before), _unpack(now)
    changed = sorted(
        names.get(name, "a column")
        for name in old.keys() | new.keys()
        if old.get(name) != new.get(name)
    )
    return ", ".join(dict.fromkeys(changed)) or "target row"


def _unpack(digest: bytes) -> dict[bytes, bytes]:
    return {digest[at : at + 4]: digest[at + 4 : at + 6] for at in range(9, len(digest), 6)}


def _count(counts: ObjectCounts, event: Event) -> None:
    if event.type == TransformDecided.event_type:
        counts.decided += 1
        counts.notes.update(reason_code(text) for text in event.payload["notes"])
    else:
        counts.rejected += 1
        for field_name, reasons in event.payload["reasons"].items():
            if field_name != rules.WARNINGS_KEY:
                counts.reasons.update(reason_code(text) for text in reasons)


@dataclass
class _Record:
    """What is being decided about one record."""

    obj: ObjectMap
    key: str
    payload: Mapping[str, Any]
    values: Mapping[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    forward: set[str] = field(default_factory=set)
    """lookups to a later phase, left unbound (and never cleared)."""
    clear: bool = False
    """clear what has no value even though the source record is not a changed one."""

    @property
    def source_key(self) -> str:
        return str(self.payload["source_key"])

    @property
    def table(self) -> str:
        return str(self.payload["table"])

    def reject(self, column: str, reason: str) -> None:
        self.errors.setdefault(column, []).append(reason)


class _Decider:
    """Turns one spooled record into its decision event."""

    def __init__(self, index: RunIndex, run_id: str, map_hash: str, files: Path | None) -> None:
        self.index = index
        self.context = StageContext(index)
        self._index = index
        self._context = self.context
        self._files = files
        self._run_id = run_id
        self._map_hash = map_hash
        self._objects = {obj.name: obj for obj in index.migration_map.objects}
        self._targets: dict[str, dict[str, rules.TargetColumn | None]] = {
            obj.name: {c.target: rules.target_column(obj.target, c) for c in obj.columns}
            for obj in index.migration_map.objects
        }
        self._money: dict[str, tuple[str, ...]] = {}
        self._dates: dict[str, tuple[str, ...]] = {}
        for name, spec in TABLES.items():
            self._money[name] = tuple(c.name for c in spec.columns if c.kind is Kind.MONEY)
            self._dates[name] = tuple(c.name for c in spec.columns if c.kind is Kind.DATETIME)

    def decide(
        self,
        obj: ObjectMap,
        key: str,
        source_event: uuid.UUID,
        payload: Mapping[str, Any],
        *,
        clear: bool = False,
    ) -> Event:
        """The decision about one record; ``clear``: empty in Dataverse what it has no value
        for, as for a changed record (a delta run's knock-on updates a row written before)."""
        record = _Record(obj, key, payload, payload["normalised"], clear=clear)
        self._source_notes(record)
        member = (obj.name, record.source_key)
        if record.source_key not in self._index.object_keys[obj.name]:
            record.reject(
                obj.filter.column if obj.filter else "(filter)",
                note(rules.FILTERED_OUT, _filter_text(obj)),
            )
            return self._event(record, source_event)
        survivor = self._index.redirects.get(member)
        if survivor is not None and member not in self._index.merged:
            # the columns still run, so the rejection keeps every warning the record had
            self._columns(record)
            duplicate = note(
                rules.DUPLICATE_OF,
                f"{self._table_of(survivor[0])}:{survivor[1]}"
                f" (same company by rule {self._index.migration_map.settings.duplicate_rule})",
            )
            record.errors = {"(record)": [duplicate], **record.errors}
            return self._event(record, source_event)
        self._columns(record)
        self._open_item(record)
        self._absorbed(record, member)
        self._clear_emptied(record)
        if survivor is not None:
            self._merge_into(record, survivor)
        return self._event(record, source_event, survivor)

    # --- columns ---------------------------------------------------------------------------

    def _columns(self, record: _Record) -> None:
        for column in record.obj.columns:
            if self._context.forward:
                self._context.forward = []
            sources = [record.values.get(source) for source in column.sources]
            outcome = self._run(column, sources)
            record.notes.extend(outcome.notes)
            value, error = outcome.value, outcome.error
            if error is None and isinstance(value, FileRef):
                value, error = self._file(value)
            self._place(record, column, column.target, value, error, sources)

    def _run(self, column: ColumnMap, sources: Sequence[Any]) -> Outcome:
        function = TRANSFORMS[column.transform]
        try:
            return function(sources, column.params, self._context)
        except Exception as error:  # one bad value must not stop the run
            return Outcome(
                error=note(
                    rules.TRANSFORM_ERROR,
                    f"{column.transform} failed on {sources!r}: {type(error).__name__}: {error}",
                )
            )

    def _file(self, ref: FileRef) -> tuple[str | None, str | None]:
        """The Base64 body of an attachment file in the export's file store."""
        if self._files is None:
            return None, note(
                rules.ATTACHMENT_MISSING, f"{ref.path}: no file store given (--files DIR)"
            )
        path = self._files / ref.path
        try:
            size = path.stat().st_size
            if (size + 2) // 3 * 4 > rules.MAX_UPLOAD_BYTES:
                return None, note(
                    rules.ATTACHMENT_TOO_LARGE,
                    f"{ref.path}: {size:,} bytes, over the {rules.MAX_UPLOAD_BYTES:,}-byte"
                    " upload limit once Base64-encoded",
                )
            return base64.b64encode(path.read_bytes()).decode("ascii"), None
        except OSError as error:
            return None, note(rules.ATTACHMENT_MISSING, f"{path}: {error.strerror}")

    def _place(
        self,
        record: _Record,
        column: ColumnMap,
        target: str,
        value: Any,
        error: str | None,
        sources: Sequence[Any],
    ) -> None:
        if error is None and isinstance(value, Bind) and self._context.forward:
            record.notes.append(
                note(
                    rules.FORWARD_LOOKUP,
                    f"{target} points at {', '.join(self._context.forward)}, decided in a later"
                    " phase; not bound on create",
                )
            )
            record.forward.add(target)
            return
        if error is None and value is not None and not isinstance(value, Bind):
            value, error = rules.validate(target, value, self._targets[record.obj.name].get(target))
        if error is not None:
            where = _where(column, sources)
            if column.required:
                record.reject(target, error + where)
            else:
                record.notes.append(f"{error}{where}; {rules.VALUE_DROPPED}")
            return
        if value is None:
            if column.required:
                missing = f"{target} has no value{_where(column, sources)}"
                record.reject(target, note(rules.REQUIRED_MISSING, missing))
            return
        if isinstance(value, Bind):
            record.binds[target] = str(value)
        else:
            record.columns[target] = value

    def _clear_emptied(self, record: _Record) -> None:
        """A changed record empties every mapped column and lookup that has no value now."""
        if record.payload.get("previous_hash") is None and not record.clear:
            return  # a new record (or a full run): nothing to clear
        for column in record.obj.columns:
            target = column.target
            if (
                target in _NEVER_CLEARED
                or target in record.columns
                or target in record.binds
                or target in record.forward
            ):
                continue
            if column.transform in _LOOKUP_TRANSFORMS:
                record.binds[target] = CLEARED_BIND
            else:
                record.columns[target] = None

    # --- domain rules ----------------------------------------------------------------------

    def _source_notes(self, record: _Record) -> None:
        for finding in record.payload.get("findings") or []:
            column = finding.get("column")
            where = f"{column}: " if column else ""
            record.notes.append(note(str(finding.get("kind")), f"{where}{finding.get('message')}"))
        raw: Mapping[str, Any] = record.payload.get("raw") or {}
        for column in self._money.get(record.table, ()):
            value = raw.get(column)
            if value is not None and rules.float_noise(value):
                rounded = record.values.get(column)
                record.notes.append(
                    note(rules.FLOAT_NOISE, f"{column}: {value!r} rounded to {rounded}")
                )
        native = self._index.date_shapes.get(record.table)
        for column in self._dates.get(record.table, ()):
            shape = rules.date_shape(raw.get(column))
            if shape is not None and native is not None and shape != native:
                record.notes.append(
                    note(
                        rules.TEXT_DATE,
                        f"{column}: {raw.get(column)!r} is written unlike the table's other dates;"
                        f" read as {record.values.get(column)}",
                    )
                )

    def _open_item(self, record: _Record) -> None:
        if record.table != "RA":
            return
        values = record.values
        gross = rules.cents(values.get("RBetrag")) + rules.cents(values.get("RMwst"))
        code = values.get("Code")
        paid = self._index.payments.get(code, 0) if isinstance(code, int) else 0
        declared = {column.target for column in record.obj.columns}
        for target, amount in zip(OPEN_ITEM_COLUMNS, (gross, paid, gross - paid), strict=True):
            if target in declared:
                record.columns[target] = amount / 100
        recorded = rules.cents(values.get("BezSumme"))
        if recorded != paid:
            record.notes.append(
                note(
                    rules.PAYMENT_MISMATCH,
                    f"BezSumme {rules.euros(recorded)} but the RABezSumme payments sum to"
                    f" {rules.euros(paid)}; open amount {rules.euros(gross - paid)} is gross"
                    f" {rules.euros(gross)} minus the payments",
                )
            )

    def _absorbed(self, record: _Record, member: tuple[str, str]) -> None:
        for name, key in self._index.absorbed.get(member, []):
            other = f"{self._table_of(name)}:{key}"
            if (name, key) in self._index.merged:
                record.notes.append(
                    note(rules.SUPPLIER_MERGED, f"{other} is the same company; one account")
                )
            else:
                record.notes.append(
                    note(rules.DUPLICATE_MERGED, f"{other} is a duplicate of this record")
                )

    def _merge_into(self, record: _Record, survivor: tuple[str, str]) -> None:
        owner = self._objects[survivor[0]]
        theirs = {column.target for column in owner.columns}
        set_values = (*record.columns.items(), *record.binds.items())
        dropped = sorted(t for t, v in set_values if t in theirs and v not in (None, CLEARED_BIND))
        record.columns = {k: v for k, v in record.columns.items() if k not in theirs}
        record.binds = {k: v for k, v in record.binds.items() if k not in theirs}
        record.notes.append(
            note(
                rules.SUPPLIER_MERGED,
                f"same company as {owner.primary_source}:{survivor[1]}; updates that account"
                f" (kept its {', '.join(dropped) or 'columns'})",
            )
        )

    # --- events ----------------------------------------------------------------------------

    def _event(
        self,
        record: _Record,
        source_event: uuid.UUID,
        survivor: tuple[str, str] | None = None,
    ) -> Event:
        decision: EventPayload
        if record.errors:
            reasons = dict(record.errors)
            if record.notes:
                reasons[rules.WARNINGS_KEY] = list(record.notes)
            decision = RecordRejected(reasons=reasons)
        else:
            table, key = (
                (self._table_of(survivor[0]), survivor[1])
                if survivor is not None
                else (record.table, record.source_key)
            )
            decision = TransformDecided(
                target_table=record.obj.target,
                target_id=target_id(table, key),
                payload=record.columns,
                binds=record.binds,
                notes=record.notes,
            )
        return Event.create(
            decision,
            run_id=self._run_id,
            key=record.key,
            cause=f"{record.payload['content_hash']}|{self._map_hash}",
            phase=str(record.obj.phase),
            causation_id=source_event,
        )

    def _table_of(self, object_name: str) -> str:
        return self._objects[object_name].primary_source


def _filter_text(obj: ObjectMap) -> str:
    if obj.filter is None:
        return f"not taken by {obj.name}"
    shown = "" if obj.filter.value is None else f" {obj.filter.value!r}"
    return f"no object takes it ({obj.name} needs {obj.filter.column} {obj.filter.op}{shown})"


def _where(column: ColumnMap, sources: Sequence[Any]) -> str:
    if not column.sources:
        return ""
    return f" (from {', '.join(column.sources)} = {_shown(sources)})"


def _shown(values: Sequence[Any]) -> str:
    text = ", ".join(repr(value) for value in values)
    return text if len(text) <= 120 else text[:117] + "..."
