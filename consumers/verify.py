"""Verification: read the rows a phase wrote back from Dataverse and compare them field by field.

:func:`verify_phase` takes every ``DestinationWritten`` of one run and phase that has no
verification yet, reads the rows back in batches (``GET <set>?$select=<mapped columns>&$filter=
<id> eq … or <id> eq …``) and compares each column with the record's ``TransformDecided``: one
``RecordVerified`` per matching record, one ``FieldMismatch`` per differing column otherwise.

Rules (documented here because reviewers ask):

- **What is compared**: every column of the decided ``payload`` and every lookup of its ``binds``.
  A bind ``parentcustomerid_account`` reads back as ``_parentcustomerid_value`` (the lookup
  column is the longest ``_``-prefix of the navigation property that the table's metadata lists
  as a lookup) and is compared with the bound row's id; a bind by alternate key
  (``/systemusers(internalemailaddress='…')``) is resolved to that row's id first.
- **Cleared values** (a delta run's changed record): a payload column decided as ``None`` matches
  a row that holds no value, whether the column reads back as ``null`` or is missing; a lookup
  decided as :data:`~producers.mapping.stage.CLEARED_BIND` matches an empty lookup.
- **Final state**: the comparison runs after the writer's last step, so ``statecode`` and
  ``statuscode`` are compared with the decided values, which *are* the final state (completed
  activities, won/lost opportunities, published products). Columns Dataverse handles itself:
  ``overriddencreatedon`` is read from ``createdon``, where Dataverse keeps the migrated
  timestamp (reference 9.1); create-only columns (``overriddencreatedon``) are not compared
  after an ``update`` write, which cannot set them.
- **A row missing in Dataverse** is one ``FieldMismatch`` with ``column="(record)"``,
  ``expected`` the row's address (``accounts(<id>)``) and ``actual`` ``None``. A write whose
  decision is not in the log is one ``FieldMismatch`` with ``column="(decision)"``. A decided
  column the table does not have is a ``FieldMismatch`` with ``actual`` ``None``.
- **Not compared**: collection values (activity parties and other lists or objects in the
  payload) cannot be read with ``$select``; they are counted in
  :attr:`VerifySummary.uncompared`, never silently dropped.
- **Normalisation** (:func:`same_value`): see its docstring.

Idempotent: a verification event's id derives from the write event it verifies (its
``causation_id``), and writes that already have a ``RecordVerified`` or ``FieldMismatch`` are
skipped, so re-running appends nothing. Only the latest write of each record is verified, and
only a write of its decision's current generation (:mod:`consumers.writing.plan`): a write a
rollback undid, and every write before it, is never verified again; the record's next write
after the rollback (new event ids) is verified afresh.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

import httpx

from consumers.dataverse.client import DataverseClient, JsonObject
from consumers.dataverse.metadata import EntityInfo, MetadataApi
from consumers.dataverse.throttle import Throttle
from consumers.writing.plan import UNDO_EVENTS, Generations
from ledger.event_types import (
    DestinationWritten,
    FieldMismatch,
    RecordVerified,
    TransformDecided,
)
from ledger.events import Event, EventPayload, Topic
from ledger.log import EventLog
from producers.mapping.stage import CLEARED_BIND

__all__ = [
    "MAX_URL_LENGTH",
    "MISSING_DECISION",
    "MISSING_RECORD",
    "TableVerification",
    "VerifyError",
    "VerifySummary",
    "same_value",
    "verify_phase",
]

MISSING_RECORD = "(record)"
"""The ``FieldMismatch.column`` of a written row that Dataverse does not hold."""
MISSING_DECISION = "(decision)"
"""The ``FieldMismatch.column`` of a write whose ``TransformDecided`` is not in the log."""
MAX_URL_LENGTH = 32_768
"""Dataverse's limit on a GET URL (reference section 0); batches shrink to stay under it."""

Progress = Callable[[str, int], None]
"""``progress(target_table, records)``: called after each batch is compared."""

T = TypeVar("T")

# Dataverse stores the migrated creation time in createdon (reference 9.1, the documented swap).
_READ_FROM = {"overriddencreatedon": "createdon"}
_CREATE_ONLY = frozenset({"overriddencreatedon"})
_LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
_INTEGER_TYPES = frozenset({"Integer", "BigInt", "Picklist", "State", "Status"})
_NUMBER_TYPES = frozenset({"Money", "Decimal", "Double"})
_MONEY_PLACES = (2, 4)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_BIND = re.compile(r"^/?(?P<set>[A-Za-z_][A-Za-z0-9_]*)\((?P<key>.*)\)$")
_PAGE_SIZE = 5000


class VerifyError(RuntimeError):
    """Verification cannot run: a table Dataverse does not know, a query too long to send."""


@dataclass
class TableVerification:
    """What verification found for one target table."""

    checked: int = 0
    verified: int = 0
    mismatched: int = 0
    """records with at least one differing column (missing rows included)."""
    missing: int = 0
    """records Dataverse does not hold at all."""
    columns: Counter[str] = field(default_factory=Counter)
    """differing columns, by name."""


@dataclass
class VerifySummary:
    """The outcome of one :func:`verify_phase` call."""

    run_id: str
    phase: int
    tables: dict[str, TableVerification] = field(default_factory=dict)
    already_verified: int = 0
    """writes of the phase verified by an earlier call: skipped."""
    superseded: int = 0
    """earlier writes of a record written again later: only the latest is verified."""
    undone: int = 0
    """writes of closed generations (a rollback undid them): never verified again."""
    uncompared: Counter[str] = field(default_factory=Counter)
    """``table.column`` values that cannot be read back with ``$select`` (collections)."""
    appended: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def checked(self) -> int:
        """Records compared in this call."""
        return sum(table.checked for table in self.tables.values())

    @property
    def verified(self) -> int:
        """Records that matched their decision."""
        return sum(table.verified for table in self.tables.values())

    @property
    def mismatched(self) -> int:
        """Records with at least one ``FieldMismatch``."""
        return sum(table.mismatched for table in self.tables.values())


# --- the comparison ----------------------------------------------------------------------------


def same_value(expected: Any, actual: Any, attribute_type: str | None = None) -> bool:
    """Whether Dataverse's ``actual`` value stands for the decided ``expected`` value.

    ``attribute_type`` is the column's ``AttributeType`` from the metadata (``"Money"``,
    ``"DateTime"``, …) when known. What Dataverse normalises is normalised on both sides:

    - blanks: ``None``, ``""`` and whitespace-only text are all "no value";
    - text: surrounding whitespace is trimmed and line ends are ``\\n``; case counts;
    - ids and lookups: GUIDs compare case-insensitively;
    - booleans: ``True``/``False``, ``1``/``0`` and ``"true"``/``"false"`` are the same;
    - option sets, states, statuses and integers: compared as whole numbers (``"3"`` = ``3``);
    - money and decimals: compared as decimals (``12.3`` = ``12.30``); a value Dataverse rounded
      to the column's precision matches when the decided value rounded half-up or half-even to
      2 or 4 places equals it (``12.345`` → ``12.35``), never when more digits differ;
    - date-only values: the calendar day as written (``2024-06-30`` = ``2024-06-30T00:00:00Z``);
    - date and time: the same instant in UTC to the second; ``Z``, ``+00:00``, an offset,
      fractions of a second and no zone at all (read as UTC, as Dataverse does) all compare.
    """
    if _blank(expected) or _blank(actual):
        return _blank(expected) and _blank(actual)
    if attribute_type == "Boolean" or isinstance(expected, bool) or isinstance(actual, bool):
        return _as_bool(expected) is not None and _as_bool(expected) == _as_bool(actual)
    if attribute_type in _INTEGER_TYPES:
        return _as_decimal(expected) is not None and _as_decimal(expected) == _as_decimal(actual)
    if attribute_type in _NUMBER_TYPES or _is_number(expected) or _is_number(actual):
        return _same_number(expected, actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return _same_text(expected, actual, attribute_type)
    return bool(expected == actual)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        # str() of a float is its shortest round-trip text: 12.3, never 12.300000000000000711
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _same_number(expected: Any, actual: Any) -> bool:
    wanted, found = _as_decimal(expected), _as_decimal(actual)
    if wanted is None or found is None:
        return False
    if wanted == found:
        return True
    for places in _MONEY_PLACES:
        unit = Decimal(1).scaleb(-places)
        for rounding in (ROUND_HALF_UP, ROUND_HALF_EVEN):
            if wanted.quantize(unit, rounding=rounding) == found:
                return True
    return False


def _same_text(expected: str, actual: str, attribute_type: str | None) -> bool:
    wanted, found = _text(expected), _text(actual)
    if wanted == found:
        return True
    if _GUID.match(wanted) and _GUID.match(found):
        return wanted.lower() == found.lower()
    if attribute_type in (None, "DateTime") and (
        _DATE_TIME.match(wanted) or _DATE_ONLY.match(wanted)
    ):
        return _same_moment(wanted, found)
    return False


def _text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _same_moment(expected: str, actual: str) -> bool:
    if _DATE_ONLY.match(expected) or _DATE_ONLY.match(actual):
        return _day(expected) is not None and _day(expected) == _day(actual)
    wanted, found = _instant(expected), _instant(actual)
    return wanted is not None and wanted == found


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


# --- what to verify ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """One write to verify and the decision it carried out."""

    write: Event
    decision: Event | None

    @property
    def table(self) -> str:
        return str(self.write.payload["target_table"])

    @property
    def target_id(self) -> str:
        return str(self.write.payload["target_id"]).lower()


def _pending(log: EventLog, run_id: str, phase: str, summary: VerifySummary) -> list[_Pending]:
    writes: list[Event] = []
    verified: set[uuid.UUID] = set()
    generations = Generations()
    checks = (RecordVerified.event_type, FieldMismatch.event_type)
    for stored in log.read([Topic.WRITES]):
        event = stored.event
        if event.run_id != run_id:
            continue
        if event.phase == phase or event.type in UNDO_EVENTS:  # an undo may be of another phase
            generations.add(event)
        if event.phase != phase:
            continue
        if event.type == DestinationWritten.event_type:
            writes.append(event)
        elif event.type in checks and event.causation_id is not None:
            verified.add(event.causation_id)
    closed = {
        e.event_id
        for decision_id in {w.causation_id for w in writes if w.causation_id is not None}
        for e in generations.closed(decision_id)
    }
    latest: dict[str, Event] = {}
    for event in writes:  # one key stays in one partition: this is its order
        if event.event_id in closed:
            summary.undone += 1
            continue
        if event.key in latest and latest[event.key].event_id != event.event_id:
            summary.superseded += 1
        latest[event.key] = event
    todo = {key: write for key, write in latest.items() if write.event_id not in verified}
    summary.already_verified = len(latest) - len(todo)
    decisions: dict[str, Event] = {}
    for stored in log.read([Topic.DECISIONS]):
        event = stored.event
        if (
            event.run_id == run_id
            and event.key in todo
            and event.type == TransformDecided.event_type
            and (event.key not in decisions or _same_target(event, todo[event.key]))
        ):
            decisions[event.key] = event
    return [_Pending(write, decisions.get(key)) for key, write in todo.items()]


def _same_target(decision: Event, write: Event) -> bool:
    """Whether ``decision`` addresses the row ``write`` wrote (a later decision may not)."""
    return str(decision.payload["target_id"]).lower() == str(write.payload["target_id"]).lower()


# --- Dataverse's side --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """What verification needs to know about one Dataverse table."""

    info: EntityInfo
    attributes: Mapping[str, str]
    """column → AttributeType."""

    def lookup_of(self, navigation: str) -> str | None:
        """The lookup column a navigation property sets (``regardingobjectid_account_task``)."""
        parts = navigation.split("_")
        for end in range(len(parts), 0, -1):
            candidate = "_".join(parts[:end])
            if self.attributes.get(candidate) in _LOOKUP_TYPES:
                return candidate
        return None


class _Dataverse:
    """Reads from one environment, with table definitions and alternate-key binds cached."""

    def __init__(self, client: DataverseClient, throttle: Throttle | None) -> None:
        self.client = client
        self.requests = 0
        self._throttle = throttle
        self._metadata = MetadataApi(client)
        self._tables: dict[str, _Table] = {}
        self._sets: dict[str, EntityInfo] | None = None
        self._binds: dict[str, str | None] = {}

    def call(self, operation: Callable[[], T]) -> T:
        self.requests += 1
        return operation() if self._throttle is None else self._throttle.run(operation)

    def table(self, logical_name: str) -> _Table:
        known = self._tables.get(logical_name)
        if known is None:
            info = self.call(lambda: self._metadata.entity(logical_name))
            if info is None:
                raise VerifyError(f"Dataverse has no table {logical_name!r} to read back")
            attributes = self.call(lambda: self._metadata.attributes(logical_name))
            types = {name: column.attribute_type for name, column in attributes.items()}
            known = self._tables[logical_name] = _Table(info, types)
        return known

    def query(self, entity_set: str, params: Mapping[str, str]) -> list[JsonObject]:
        rows: list[JsonObject] = []
        page = self.call(lambda: self.client.get(entity_set, params, max_page_size=_PAGE_SIZE))
        rows.extend(page.get("value", []))
        while isinstance(link := page.get("@odata.nextLink"), str):
            page = self.call(lambda: self.client.get(link, max_page_size=_PAGE_SIZE))
            rows.extend(page.get("value", []))
        return rows

    def url_length(self, entity_set: str, params: Mapping[str, str]) -> int:
        return len(str(httpx.URL(self.client.base_url + entity_set, params=dict(params))))

    def bound_id(self, bind: str) -> str | None:
        """The id of the row a bind value points at, or None when no single row matches."""
        match = _BIND.match(bind.strip())
        if match is None:
            return None
        key = match["key"].strip()
        if _GUID.match(key):
            return key.lower()
        if bind not in self._binds:
            self._binds[bind] = self._resolve(match["set"], key)
        return self._binds[bind]

    def _resolve(self, entity_set: str, key: str) -> str | None:
        if self._sets is None:
            entities = self.call(self._metadata.entities)
            self._sets = {info.entity_set_name: info for info in entities}
        info = self._sets.get(entity_set)
        parts = _key_parts(key)
        if info is None or not parts:
            return None
        condition = " and ".join(f"{name} eq {value}" for name, value in parts)
        params = {"$select": info.primary_id, "$filter": condition}
        rows = self.query(entity_set, params)
        if len(rows) != 1:
            return None
        found = rows[0].get(info.primary_id)
        return str(found).lower() if found is not None else None


def _key_parts(key: str) -> list[tuple[str, str]]:
    """``a='x,y',b=2`` as ``[("a", "'x,y'"), ("b", "2")]``; empty if it is not of that shape."""
    parts: list[tuple[str, str]] = []
    for piece in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^,]+)\s*,?", key):
        parts.append((piece[0], piece[1].strip()))
    return parts


# --- the run -----------------------------------------------------------------------------------


def verify_phase(
    log: EventLog,
    client: DataverseClient,
    *,
    run_id: str,
    phase: int,
    batch_size: int = 50,
    throttle: Throttle | None = None,
    progress: Progress | None = None,
) -> VerifySummary:
    """Read back every row ``run_id`` wrote in ``phase`` and compare it with its decision.

    Appends one ``RecordVerified`` per matching record or one ``FieldMismatch`` per differing
    column (see the module docstring for the rules), keyed by the record's source key, with
    the write event as ``causation_id``. Writes verified before are skipped. ``batch_size``
    records are read per request (fewer when the URL would grow past :data:`MAX_URL_LENGTH`);
    ``throttle`` (shared with the writers, if given) paces the reads. Raises
    :class:`VerifyError` for a table Dataverse does not know, and the client's
    :class:`~consumers.dataverse.errors.DataverseClientError` when Dataverse cannot be read.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    summary = VerifySummary(run_id, phase)
    dataverse = _Dataverse(client, throttle)
    by_table: dict[str, list[_Pending]] = {}
    for item in _pending(log, run_id, str(phase), summary):
        by_table.setdefault(item.table, []).append(item)
    for table_name, items in sorted(by_table.items()):
        counts = summary.tables.setdefault(table_name, TableVerification())
        table = dataverse.table(table_name)
        position = 0
        while position < len(items):
            size = min(batch_size, len(items) - position)
            chunk, params = _fitting(dataverse, table, items[position : position + size])
            rows = dataverse.query(table.info.entity_set_name, params) if params else []
            found = {str(row.get(table.info.primary_id, "")).lower(): row for row in rows}
            events: list[Event] = []
            for item in chunk:
                outcome = _check(item, table, found.get(item.target_id), dataverse, summary)
                _count(counts, outcome)
                events.extend(outcome)
            log.append(events)
            summary.appended += len(events)
            position += len(chunk)
            if progress is not None:
                progress(table_name, len(chunk))
    summary.requests = dataverse.requests
    summary.seconds = time.perf_counter() - started
    return summary


def _fitting(
    dataverse: _Dataverse, table: _Table, items: Sequence[_Pending]
) -> tuple[Sequence[_Pending], dict[str, str]]:
    """The longest head of ``items`` whose query fits in a URL, and that query."""
    while True:
        params = _query(table, items)
        if not params or dataverse.url_length(table.info.entity_set_name, params) <= MAX_URL_LENGTH:
            return items, params
        if len(items) == 1:
            raise VerifyError(
                f"the read-back query of {table.info.logical_name} {items[0].target_id} is"
                f" longer than {MAX_URL_LENGTH:,} characters even for one record"
            )
        items = items[: len(items) // 2]


def _query(table: _Table, items: Iterable[_Pending]) -> dict[str, str]:
    primary = table.info.primary_id
    columns = {primary}
    ids: list[str] = []
    for item in items:
        if item.decision is None:
            continue
        if item.target_id not in ids:
            ids.append(item.target_id)
        columns.update(_compared_columns(item, table))
    if not ids:
        return {}
    return {
        "$select": ",".join(sorted(columns)),
        "$filter": " or ".join(f"{primary} eq {target}" for target in ids),
    }


def _compared_columns(item: _Pending, table: _Table) -> list[str]:
    """The columns read back for ``item``: payload columns (as read) and ``_x_value`` lookups.

    Columns the table does not have are left out of ``$select`` (which would refuse the whole
    batch); their comparison reports them.
    """
    assert item.decision is not None
    columns = [
        _READ_FROM.get(name, name)
        for name, value in item.decision.payload["payload"].items()
        if not isinstance(value, list | dict)
    ]
    columns = [column for column in columns if column in table.attributes]
    for navigation in item.decision.payload["binds"]:
        lookup = table.lookup_of(navigation)
        if lookup is not None:
            columns.append(f"_{lookup}_value")
    return columns


def _check(
    item: _Pending,
    table: _Table,
    row: JsonObject | None,
    dataverse: _Dataverse,
    summary: VerifySummary,
) -> list[Event]:
    if item.decision is None:
        wanted = f"a TransformDecided of {item.write.key} in run {item.write.run_id}"
        return [_mismatch(item, MISSING_DECISION, wanted, None)]
    if row is None:
        return [
            _mismatch(item, MISSING_RECORD, f"{table.info.entity_set_name}({item.target_id})", None)
        ]
    decided = item.decision.payload
    create_only = item.write.payload.get("op") == "update"
    events: list[Event] = []
    for name, expected in sorted(decided["payload"].items()):
        if isinstance(expected, list | dict):
            summary.uncompared[f"{table.info.logical_name}.{name}"] += 1
            continue
        if create_only and name in _CREATE_ONLY:
            continue
        column = _READ_FROM.get(name, name)
        kind = table.attributes.get(column)
        if kind is None:
            events.append(_mismatch(item, name, expected, None))
        elif not same_value(expected, row.get(column), kind):
            events.append(_mismatch(item, name, expected, row.get(column)))
    for navigation, bind in sorted(decided["binds"].items()):
        lookup = table.lookup_of(navigation)
        actual = row.get(f"_{lookup}_value") if lookup is not None else None
        if bind == CLEARED_BIND:
            if lookup is None or actual is not None:
                events.append(_mismatch(item, navigation, None, actual))
            continue
        expected_id = dataverse.bound_id(bind)
        if expected_id is None or actual is None or str(actual).lower() != expected_id:
            events.append(_mismatch(item, navigation, expected_id or bind, actual))
    return events or [_verified(item)]


def _verified(item: _Pending) -> Event:
    payload = RecordVerified(target_table=item.table, target_id=item.target_id)
    return _event(payload, item, f"verify|{item.write.event_id}")


def _mismatch(item: _Pending, column: str, expected: Any, actual: Any) -> Event:
    payload = FieldMismatch(
        target_table=item.table,
        target_id=item.target_id,
        column=column,
        expected=expected,
        actual=actual,
    )
    return _event(payload, item, f"verify|{item.write.event_id}|{column}")


def _event(payload: EventPayload, item: _Pending, cause: str) -> Event:
    return Event.create(
        payload,
        run_id=item.write.run_id,
        key=item.write.key,
        cause=cause,
        phase=item.write.phase,
        causation_id=item.write.event_id,
        correlation_id=item.write.correlation_id,
    )


def _count(counts: TableVerification, outcome: Sequence[Event]) -> None:
    counts.checked += 1
    if outcome[0].type == RecordVerified.event_type:
        counts.verified += 1
        return
    counts.mismatched += 1
    columns = [str(event.payload["column"]) for event in outcome]
    counts.columns.update(columns)
    if MISSING_RECORD in columns:
        counts.missing += 1
