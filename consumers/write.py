"""The writers: one phase's decisions into Dataverse, one write event per record, crash safe.

``write_phase(log, client, run_id=..., phase=...)`` consumes the run's ``TransformDecided``
events of one phase, writes them in dependency order (:mod:`consumers.writing.plan`) and appends
per record exactly one ``DestinationWritten`` (``create``, or ``update`` with the before-image
of every column it writes or clears) or ``DestinationWriteFailed`` (Dataverse's status, code and
message). Every event is keyed by the record's source key and its id derives from the decision's
event id, so a retried append is a duplicate the log drops.

How a batch of up to ``batch_size`` records of one table is written:

1. **Binds** Dataverse needs but the transform cannot make are resolved: owners by e-mail, the
   units of products and lines (:mod:`consumers.writing.resolve`).
2. **Existing rows** are read by id. A row that exists without an intent of this run was there
   before the run (someone created it with the same id): the record becomes an ``update`` and
   its columns are read first for the before-image.
3. **Intents**: one ``DestinationWriteIntended`` per record (op, before-image, steps) is
   appended *before* anything is sent. After a crash, an existing row with an intent
   ``op="create"`` is one this run created: it is recorded as created, once, and only the state
   step is sent if it is missing; an intent ``op="update"`` keeps the before-image read before
   the first attempt, not the values the run itself wrote.
4. **Writes**: ``CreateMultiple``/``UpdateMultiple`` where the table supports them
   (:data:`consumers.writing.rows.BULK_TABLES` and custom tables), with
   :func:`~consumers.dataverse.split.isolate_failures` isolating a bad record so the others are
   written; ``$batch`` otherwise, one changeset per record holding its create (or update) and
   the state step that must follow it (SetState, WinOpportunity/LoseOpportunity, product
   publish), sent with ``odata.continue-on-error``: a record is written completely or not at
   all, and its failure names the step that failed. An update that empties lookups (a delta
   run's changed record, :data:`~producers.mapping.stage.CLEARED_BIND`) always goes by
   ``$batch``: its changeset holds the ``PATCH`` and one ``DELETE <set>(<id>)/<nav>/$ref`` per
   lookup that still has a value (reference 2.9), which UpdateMultiple cannot carry. An update
   of a published or retired product (only Draft and Under Revision products can be edited,
   reference 10.4) is a changeset of three: ``PATCH`` to Under Revision
   (:data:`~consumers.writing.rows.REVISE`), the update, and the state the decision wants (the
   state the row was in, when the decision names none); the first read tells the row's state,
   and the before-image holds the previous ``statecode``/``statuscode``. The
   throttle weighs each request as the service's request limit counts it: a ``$batch`` 1 + its
   inner requests (:func:`~consumers.writing.batch.service_requests`), a bulk message or a
   read 1.
5. **Outcomes** are appended, one per record.

Records already done (an outcome event in their current write generation, see
:mod:`consumers.writing.plan`) are counted as ``already_done`` and not touched: running a phase
again appends nothing and writes nothing. A record a rollback undid is written again, with
write events of new ids. A request that fails for a
reason no record explains (Dataverse unreachable, authentication, 5xx after retries) stops the
phase with :class:`WriteAbortedError`; the records it held have only an intent, and the next
run writes them. One writer per run and phase at a time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from consumers.dataverse.client import DataverseClient
from consumers.dataverse.errors import TRANSIENT_STATUSES, DataverseError
from consumers.dataverse.split import Rejected, Unsent, Written, isolate_failures
from consumers.dataverse.throttle import Throttle
from consumers.writing import batch, plan, rows
from consumers.writing.plan import Decision
from consumers.writing.resolve import Resolver, UnresolvedError
from ledger.event_types import DestinationWriteFailed, DestinationWriteIntended, DestinationWritten
from ledger.events import Event, EventPayload
from ledger.log import EventLog
from producers.mapping.rules import entity_set

__all__ = [
    "TableCounts",
    "WriteAbortedError",
    "WriteProgress",
    "WriteSummary",
    "write_phase",
]

T = TypeVar("T")

DEFAULT_WORKERS = 4
_ID_CHUNK = 100
_MAX_BATCH_BYTES = 8 * 1024 * 1024
_CHANGESET_ATTEMPTS = 5


@dataclass
class TableCounts:
    """What became of one target table's records in a phase."""

    created: int = 0
    updated: int = 0
    failed: int = 0
    already_done: int = 0
    """records whose outcome was in the log before this call: not touched again."""

    @property
    def written(self) -> int:
        """Records created or updated by this call."""
        return self.created + self.updated


@dataclass
class WriteSummary:
    """The outcome of one ``write_phase`` call."""

    run_id: str
    phase: int
    tables: dict[str, TableCounts] = field(default_factory=dict)
    throttled: int = 0
    """429 responses met (each waited out and retried)."""
    seconds: float = 0.0

    @property
    def written(self) -> int:
        """Records created or updated by this call."""
        return sum(counts.written for counts in self.tables.values())

    @property
    def failed(self) -> int:
        """Records Dataverse refused in this call."""
        return sum(counts.failed for counts in self.tables.values())

    @property
    def already_done(self) -> int:
        """Records done before this call."""
        return sum(counts.already_done for counts in self.tables.values())

    @property
    def rate(self) -> float:
        """Records written or failed per second."""
        return (self.written + self.failed) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class WriteProgress:
    """Where a phase's writing stands, after each batch."""

    phase: int
    table: str
    """the table of the batch just finished."""
    done: int
    """records with an outcome, of ``total`` (already done ones included)."""
    total: int
    written: int
    failed: int
    throttled: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Records written or failed per second so far in this call."""
        return (self.written + self.failed) / self.elapsed_s if self.elapsed_s else 0.0


class WriteAbortedError(RuntimeError):
    """A request failed for a reason no record explains; the phase stopped, a rerun resumes."""


class _AbortedError(Exception):
    """A batch stopped: what it did record, and why it stopped."""

    def __init__(self, message: str, outcomes: list[Event]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def write_phase(
    log: EventLog,
    client: DataverseClient,
    *,
    run_id: str,
    phase: int,
    throttle: Throttle | None = None,
    batch_size: int = 100,
    workers: int | None = None,
    progress: Callable[[WriteProgress], None] | None = None,
) -> WriteSummary:
    """Write the decisions of ``run_id``'s ``phase`` not written yet; one outcome event each.

    With a ``throttle`` every request goes through it (build ``client`` with
    ``RetryPolicy(max_retries=0)`` then, so retries are the throttle's); ``workers`` threads
    write batches of one dependency level in parallel. Raises :class:`WriteAbortedError` when
    Dataverse cannot be written at all; everything written until then is recorded.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    work = plan.load(log, run_id, phase)
    summary = WriteSummary(run_id, phase)
    for decision in work.decisions:
        counts = summary.tables.setdefault(decision.table, TableCounts())
        if decision.event.event_id in work.done:
            counts.already_done += 1
    throttled_before = client.stats.throttled
    writer = _PhaseWriter(
        log, client, throttle, work, summary, progress, started, len(work.decisions)
    )
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=workers or DEFAULT_WORKERS) as pool:
        for group in plan.groups(work.pending):
            futures: list[Future[None]] = [
                pool.submit(writer.write_batch, table, decisions[start : start + batch_size])
                for table, decisions in group.items()
                for start in range(0, len(decisions), batch_size)
            ]
            for future in futures:
                error = future.exception()
                if error is not None:
                    errors.append(error)
            if errors:
                break
    summary.throttled = client.stats.throttled - throttled_before
    summary.seconds = time.perf_counter() - started
    if errors:
        first = errors[0]
        if isinstance(first, WriteAbortedError):
            raise first
        raise WriteAbortedError(f"{type(first).__name__}: {first}") from first
    return summary


@dataclass
class _Item:
    """One record on its way through a batch."""

    decision: Decision
    op: str = "create"
    binds: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    before_image: dict[str, Any] | None = None
    step: rows.Step | None = None
    clears: list[str] = field(default_factory=list)
    """navigation properties an update disassociates (``DELETE …/$ref``)."""
    created_earlier: bool = False
    """the run created the row before a crash; only a missing step is left to send."""
    revise: bool = False
    """an update of a published or retired product: revised first (:data:`rows.REVISE`)."""

    @property
    def table(self) -> str:
        return self.decision.table

    @property
    def row_id(self) -> str:
        return self.decision.target_id


class _PhaseWriter:
    def __init__(
        self,
        log: EventLog,
        client: DataverseClient,
        throttle: Throttle | None,
        work: plan.PhaseWork,
        summary: WriteSummary,
        progress: Callable[[WriteProgress], None] | None,
        started: float,
        total: int,
    ) -> None:
        self._log = log
        self._client = client
        self._throttle = throttle
        self._intents = work.intents
        self._work = work
        self._summary = summary
        self._progress = progress
        self._started = started
        self._total = total
        self._done = len(work.done)
        self._lock = threading.Lock()
        self._resolver = Resolver(client, self._call)

    # -- one batch ---------------------------------------------------------------------------

    def write_batch(self, table: str, decisions: Sequence[Decision]) -> None:
        outcomes: list[Event] = []
        self._resolver.prepare(table, [d.binds for d in decisions])
        items: list[_Item] = []
        for decision in decisions:
            try:
                binds = self._resolver.resolve(table, decision.binds)
            except UnresolvedError as error:
                outcomes.append(self._failed(decision, error.status, error.code, error.message))
                continue
            items.append(_Item(decision, binds=binds))
        self._plan(table, items)
        aborted: _AbortedError | None = None
        try:
            outcomes.extend(self._send(table, items))
        except _AbortedError as error:
            aborted = error
            outcomes.extend(error.outcomes)
        self._record(table, outcomes)
        if aborted is not None:
            raise WriteAbortedError(str(aborted))

    def _plan(self, table: str, items: list[_Item]) -> None:
        """Decide each item's op, body and step; append the intents of those without one."""
        with_state = table == "product" or any(
            "statecode" in item.decision.payload for item in items
        )
        pk = rows.primary_id(table)
        existing = self._read(
            table,
            [item.row_id for item in items],
            [pk] + (["statecode", "statuscode"] if with_state else []),
        )
        new_intents: list[Event] = []
        to_image: list[_Item] = []
        for item in items:
            decision = item.decision
            intent = self._intents.get(decision.event.event_id)
            row = existing.get(item.row_id)
            payload = decision.payload
            if row is not None and (intent is None or intent.op == "update"):
                item.op = "update"
                item.body = rows.body_of(table, payload, item.binds, create=False)
                step = rows.step_of(table, payload, create=False)
                state = row.get("statecode")
                changes = [*item.body, *rows.cleared_lookups(item.binds)]
                item.revise = rows.needs_revision(table, changes, state)
                if item.revise and step is None:
                    # back to the state it was in; not read: Dataverse's refusal says why
                    step = (
                        rows.Step(int(state), row.get("statuscode")) if state is not None else None
                    )
                    item.revise = step is not None
                if step is not None and (item.revise or state != step.state):
                    item.step = step
                if intent is None:
                    to_image.append(item)  # its intent needs the before-image first
                    continue
                item.before_image = intent.before_image
                item.clears = _clears(item.binds, item.before_image)
            else:
                item.op = "create"
                item.body = rows.body_of(table, payload, item.binds, create=True)
                item.body[pk] = item.row_id
                step = rows.step_of(table, payload, create=True)
                item.created_earlier = row is not None
                if row is not None and step is not None and row.get("statecode") == step.state:
                    step = None
                item.step = step
            if intent is None:
                new_intents.append(self._intent(item))
        if to_image:
            imaged = {id(item): _imaged_body(item) for item in to_image}
            columns = sorted({c for body in imaged.values() for c in rows.read_columns(body)})
            if any(item.step is not None or "statecode" in item.body for item in to_image):
                columns += [c for c in ("statecode", "statuscode") if c not in columns]
            current = self._read(table, [item.row_id for item in to_image], [pk, *columns])
            for item in to_image:
                state = item.step is not None or "statecode" in item.body
                item.before_image = rows.before_image(
                    imaged[id(item)], current.get(item.row_id, {}), state=state
                )
                item.clears = _clears(item.binds, item.before_image)
                new_intents.append(self._intent(item))
        if new_intents:
            self._log.append(new_intents)

    def _send(self, table: str, items: list[_Item]) -> list[Event]:
        outcomes: list[Event] = []
        bulk = rows.supports_bulk(table)
        creates = [i for i in items if i.op == "create" and not i.created_earlier and not i.step]
        updates = [i for i in items if i.op == "update" and not i.step and not i.clears]
        finished = [i for i in items if i.created_earlier and i.step is None]
        if not bulk:
            creates, updates = [], []
        chosen = {id(i) for i in (*creates, *updates, *finished)}
        changesets = [i for i in items if id(i) not in chosen]
        outcomes.extend(self._written(i) for i in finished)
        unsent: list[str] = []
        for message, group in (("CreateMultiple", creates), ("UpdateMultiple", updates)):
            if not group:
                continue
            send = functools.partial(self._bulk, table, message)
            report = isolate_failures(group, send)
            for outcome in report.outcomes:
                if isinstance(outcome, Written):
                    outcomes.append(self._written(outcome.item))
                elif isinstance(outcome, Rejected):
                    outcomes.append(self._refused(outcome.item, outcome.error))
                elif isinstance(outcome, Unsent):
                    unsent.append(f"{outcome.item.decision.key}: {outcome.error}")
        if changesets:
            try:
                outcomes.extend(self._send_changesets(table, changesets))
            except DataverseError as error:
                unsent.append(f"$batch of {len(changesets)} {table} records: {error}")
        if unsent:
            raise _AbortedError(
                f"{len(unsent)} request(s) failed for a reason no record explains; first: "
                f"{unsent[0]}",
                outcomes,
            )
        return outcomes

    # -- requests ----------------------------------------------------------------------------

    def _bulk(self, table: str, message: str, chunk: Sequence[_Item]) -> list[None]:
        logical = f"Microsoft.Dynamics.CRM.{table}"
        targets = []
        for item in chunk:
            target = {"@odata.type": logical, **item.body}
            target[rows.primary_id(table)] = item.row_id
            targets.append(target)
        path = f"{entity_set(table)}/Microsoft.Dynamics.CRM.{message}"
        self._call(
            lambda: self._observe(
                self._client.request("POST", path, json_body={"Targets": targets})
            )
        )
        return [None] * len(chunk)

    def _send_changesets(self, table: str, items: list[_Item]) -> list[Event]:
        outcomes: list[Event] = []
        for chunk in _by_size(items, _changeset_size):
            pending = list(chunk)
            for attempt in range(1, _CHANGESET_ATTEMPTS + 1):
                parts = self._batch([self._changeset(table, item) for item in pending])
                retry: list[_Item] = []
                for item, part in zip(pending, parts, strict=True):
                    if part.ok:
                        outcomes.append(self._written(item))
                    elif part.status in TRANSIENT_STATUSES and attempt < _CHANGESET_ATTEMPTS:
                        retry.append(item)
                    else:
                        outcomes.append(self._part_failed(item, part))
                if not retry:
                    break
                pending = retry
                time.sleep(min(8.0, 0.25 * 2**attempt))
        return outcomes

    def _changeset(self, table: str, item: _Item) -> list[batch.Request]:
        requests: list[batch.Request] = []
        set_name = entity_set(table)
        if item.op == "create" and not item.created_earlier:
            requests.append(batch.Request("POST", set_name, item.body))
        elif item.op == "update":
            row_path = f"{set_name}({item.row_id})"
            if item.revise:
                method, _, revise = rows.step_request(table, item.row_id, {}, rows.REVISE)
                requests.append(batch.Request(method, row_path, revise, {"If-Match": "*"}))
            requests.append(batch.Request("PATCH", row_path, item.body, {"If-Match": "*"}))
            for navigation in item.clears:
                requests.append(batch.Request(*rows.clear_request(table, item.row_id, navigation)))
        if item.step is not None:
            method, path, body = rows.step_request(
                table, item.row_id, item.decision.payload, item.step
            )
            headers = {"If-Match": "*"} if method == "PATCH" else {}
            requests.append(batch.Request(method, path, body, headers))
        return requests

    def _batch(self, changesets: list[list[batch.Request]]) -> list[batch.Part]:
        content_type, body = batch.encode(changesets, self._client.base_url)

        def send() -> httpx.Response:
            return self._observe(
                self._client.request(
                    "POST",
                    "$batch",
                    content=body,
                    headers={"Content-Type": content_type, "Prefer": "odata.continue-on-error"},
                )
            )

        response = self._call(send, weight=batch.service_requests(changesets))
        sizes = [len(changeset) for changeset in changesets]
        parts = batch.decode(response.headers.get("content-type", ""), response.content, sizes)
        if len(parts) != len(changesets):
            raise DataverseError(
                response.status_code,
                "",
                f"$batch answered {len(parts)} parts for {len(changesets)} changesets",
            )
        return parts

    def _read(self, table: str, ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        pk = rows.primary_id(table)
        select = ",".join(dict.fromkeys(columns))
        headers = {"Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'}
        for start in range(0, len(ids), _ID_CHUNK):
            clauses = " or ".join(f"{pk} eq {row_id}" for row_id in ids[start : start + _ID_CHUNK])
            params = {"$select": select, "$filter": clauses}
            get = functools.partial(self._client.get, entity_set(table), params, headers=headers)
            result = self._call(get)
            for row in result.get("value", []):
                found[str(row[pk]).lower()] = row
        return found

    def _call(self, operation: Callable[[], T], weight: int = 1) -> T:
        """``operation`` through the throttle, if any; ``weight`` is what the request counts
        against the service's request limit (a read or a bulk message: 1)."""
        if self._throttle is None:
            return operation()
        return self._throttle.run(operation, weight=weight)

    def _observe(self, response: httpx.Response) -> httpx.Response:
        if self._throttle is not None:
            self._throttle.observe_response(response.status_code, response.headers)
        return response

    # -- events ------------------------------------------------------------------------------

    def _event(self, payload: EventPayload, decision: Decision) -> Event:
        return Event.create(
            payload,
            run_id=decision.event.run_id,
            key=decision.key,
            cause=self._work.cause(decision),  # new ids for a generation after a rollback
            phase=str(self._summary.phase),
            causation_id=decision.event.event_id,
            correlation_id=decision.event.correlation_id,
        )

    def _intent(self, item: _Item) -> Event:
        steps: list[str] = []
        if item.revise:
            steps.append(rows.REVISE.name)
        if item.step is not None:
            steps.append(item.step.name)
            if item.step.close:  # the activity a rollback deletes with the opportunity
                steps.append(f"opportunityclose {rows.close_activity_id(item.row_id)}")
        intent = DestinationWriteIntended(
            target_table=item.table,
            target_id=item.row_id,
            op="create" if item.op == "create" else "update",
            before_image=item.before_image,
            steps=steps,
        )
        self._intents[item.decision.event.event_id] = intent
        return self._event(intent, item.decision)

    def _written(self, item: _Item) -> Event:
        if item.table == "product":
            self._resolver.product_written(item.row_id, item.binds)
        written = DestinationWritten(
            target_table=item.table,
            target_id=item.row_id,
            op="create" if item.op == "create" else "update",
            before_image=item.before_image if item.op == "update" else None,
        )
        return self._event(written, item.decision)

    def _failed(self, decision: Decision, status: int, code: str, message: str) -> Event:
        failed = DestinationWriteFailed(
            target_table=decision.table,
            target_id=decision.target_id,
            status=status,
            error_code=code,
            message=message,
        )
        return self._event(failed, decision)

    def _refused(self, item: _Item, error: Exception) -> Event:
        if isinstance(error, DataverseError):
            return self._failed(item.decision, error.status, error.code, error.message)
        return self._failed(item.decision, 0, "", f"{type(error).__name__}: {error}")

    def _part_failed(self, item: _Item, part: batch.Part) -> Event:
        code, message = part.error
        requests = self._changeset(item.table, item)
        index = part.request_index
        if item.revise and index == 0:
            message = f"{rows.REVISE.name} (revision) failed, so the update was not sent: {message}"
        elif item.step is not None and index == len(requests) - 1 and len(requests) > 1:
            message = (
                f"{item.step.name} failed, so the {item.op} was rolled back with it: {message}"
            )
        elif item.step is not None and len(requests) == 1:
            message = f"{item.step.name} of the row created earlier failed: {message}"
        return self._failed(item.decision, part.status, code, message)

    def _record(self, table: str, outcomes: list[Event]) -> None:
        if outcomes:
            self._log.append(outcomes)
        with self._lock:
            counts = self._summary.tables.setdefault(table, TableCounts())
            for event in outcomes:
                if event.type == DestinationWritten.event_type:
                    if event.payload["op"] == "create":
                        counts.created += 1
                    else:
                        counts.updated += 1
                else:
                    counts.failed += 1
            self._done += len(outcomes)
            if self._progress is not None:
                self._progress(
                    WriteProgress(
                        phase=self._summary.phase,
                        table=table,
                        done=self._done,
                        total=self._total,
                        written=self._summary.written,
                        failed=self._summary.failed,
                        throttled=self._client.stats.throttled,
                        elapsed_s=time.perf_counter() - self._started,
                    )
                )


def _imaged_body(item: _Item) -> dict[str, Any]:
    """What an update changes: its body and, as ``None``, the lookups it clears."""
    cleared = {f"{nav}@odata.bind": None for nav in rows.cleared_lookups(item.decision.binds)}
    return {**item.body, **cleared}


def _clears(binds: dict[str, str], image: dict[str, Any] | None) -> list[str]:
    """The cleared lookups that hold a value, by the navigation the before-image names (a
    polymorphic lookup may point at another table than the decision's navigation says)."""
    wanted = {rows.lookup_column(nav) for nav in rows.cleared_lookups(binds)}
    return [
        name.removesuffix("@odata.bind")
        for name, value in (image or {}).items()
        if name.endswith("@odata.bind")
        and value is not None
        and rows.lookup_column(name.removesuffix("@odata.bind")) in wanted
    ]


def _changeset_size(item: _Item) -> int:
    return len(str(item.body)) + 512


def _by_size(items: list[_Item], size: Callable[[_Item], int]) -> list[list[_Item]]:
    chunks: list[list[_Item]] = [[]]
    total = 0
    for item in items:
        weight = size(item)
        if chunks[-1] and total + weight > _MAX_BATCH_BYTES:
            chunks.append([])
            total = 0
        chunks[-1].append(item)
        total += weight
    return [chunk for chunk in chunks if chunk]
