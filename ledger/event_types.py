"""The core event types of a migration run (ARCHITECTURE.md section 3).

Each class is the payload of one event type; the envelope is :class:`ledger.events.Event`.
Later stages extend these payloads by bumping ``schema_version`` and registering an upcaster.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ledger.events import EventPayload, Topic, event_type

JsonObject = dict[str, Any]


# --- control: runs, exports, mappings, phases ------------------------------------------------


@event_type
class RunStarted(EventPayload):
    """A migration run began."""

    event_type = "RunStarted"
    topic = Topic.CONTROL

    started_by: str
    description: str = ""
    settings: JsonObject = Field(default_factory=dict)


@event_type
class ExportRegistered(EventPayload):
    """A work4all export (database, CSV folder or workbook) was registered as a run's source."""

    event_type = "ExportRegistered"
    topic = Topic.CONTROL

    location: str
    format: Literal["sql", "csv", "xlsx"]
    tables: dict[str, int] = Field(default_factory=dict)


@event_type
class MappingProposed(EventPayload):
    """The tool proposed a map; nothing moves until it is confirmed."""

    event_type = "MappingProposed"
    topic = Topic.CONTROL

    map_hash: str
    map_version: str
    proposals: int = 0


@event_type
class MappingConfirmed(EventPayload):
    """A person confirmed the map with this content hash."""

    event_type = "MappingConfirmed"
    topic = Topic.CONTROL

    map_hash: str
    confirmed_by: str
    note: str = ""


@event_type
class SchemaChangeApplied(EventPayload):
    """A custom column, table or key was provisioned in Dataverse."""

    event_type = "SchemaChangeApplied"
    topic = Topic.CONTROL

    table: str
    change: str
    definition: JsonObject = Field(default_factory=dict)


@event_type
class PhaseStarted(EventPayload):
    """A phase of a run began."""

    event_type = "PhaseStarted"
    topic = Topic.CONTROL

    phase_number: int
    objects: list[str] = Field(default_factory=list)
    override_reason: str | None = None


@event_type
class PhaseReconciled(EventPayload):
    """A phase ended; its counts and the gate's verdict."""

    event_type = "PhaseReconciled"
    topic = Topic.CONTROL

    counts: dict[str, dict[str, int]]
    verdict: Literal["passed", "failed"]
    reasons: list[str] = Field(default_factory=list)


@event_type
class StageCompleted(EventPayload):
    """A worker finished a stage of a phase (Kafka mode: the next stage's cue)."""

    event_type = "StageCompleted"
    topic = Topic.CONTROL

    stage: Literal["write", "verify"]
    phase_number: int
    counts: dict[str, int] = Field(default_factory=dict)


@event_type
class WorkersStopRequested(EventPayload):
    """Every worker of the run (or of the named stages) is asked to finish and exit."""

    event_type = "WorkersStopRequested"
    topic = Topic.CONTROL

    stages: list[str] = Field(default_factory=list)
    """empty: every stage."""
    reason: str = ""


@event_type
class RollbackPlanned(EventPayload):
    """The exact list of actions a rollback will take."""

    event_type = "RollbackPlanned"
    topic = Topic.CONTROL

    scope: str
    actions: list[JsonObject]


# --- source: what the work4all export holds --------------------------------------------------


@event_type
class SourceRecordExtracted(EventPayload):
    """One work4all row, raw and normalised, with the hash of its normalised content.

    ``position`` is where a person finds the row (line, sheet row or ordinal, as the reader
    says); ``findings`` are the value problems met reading and normalising it.
    """

    event_type = "SourceRecordExtracted"
    topic = Topic.SOURCE

    table: str
    source_key: str
    raw: JsonObject
    normalised: JsonObject
    content_hash: str
    position: int | None = None
    findings: list[JsonObject] = Field(default_factory=list)


@event_type
class SourceRecordChanged(EventPayload):
    """A newer export holds a new or changed version of a record."""

    event_type = "SourceRecordChanged"
    topic = Topic.SOURCE

    table: str
    source_key: str
    raw: JsonObject
    normalised: JsonObject
    content_hash: str
    previous_hash: str | None = None
    position: int | None = None
    findings: list[JsonObject] = Field(default_factory=list)


@event_type
class SourceRecordDeleted(EventPayload):
    """A record present in the previous export is missing from the newer one."""

    event_type = "SourceRecordDeleted"
    topic = Topic.SOURCE

    table: str
    source_key: str
    previous_hash: str


# --- decisions: what the transform made of each record ---------------------------------------


@event_type
class TransformDecided(EventPayload):
    """A source record becomes this Dataverse row."""

    event_type = "TransformDecided"
    topic = Topic.DECISIONS

    target_table: str
    target_id: str
    payload: JsonObject
    binds: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


@event_type
class RecordRejected(EventPayload):
    """A source record will not be migrated; the reasons per field."""

    event_type = "RecordRejected"
    topic = Topic.DECISIONS

    reasons: dict[str, list[str]]


# --- writes: what happened in Dataverse ------------------------------------------------------


@event_type
class DestinationWritten(EventPayload):
    """A row was created or updated in Dataverse; updates carry the before-image."""

    event_type = "DestinationWritten"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    op: Literal["create", "update"]
    before_image: JsonObject | None = None


@event_type
class DestinationWriteIntended(EventPayload):
    """A writer is about to write this row; appended before the request is sent.

    After a crash, a row found in Dataverse with an intent ``op="create"`` is one the run created
    (recorded as a create, never as an update of someone else's row); an intent's
    ``before_image`` is the row as it was before the run touched it. ``steps`` name what follows
    the create or update in the same changeset (``SetState 1/5``, ``WinOpportunity``, ``Publish``).
    """

    event_type = "DestinationWriteIntended"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    op: Literal["create", "update"]
    before_image: JsonObject | None = None
    steps: list[str] = Field(default_factory=list)


@event_type
class DestinationWriteFailed(EventPayload):
    """Dataverse refused the write; its error as returned."""

    event_type = "DestinationWriteFailed"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    status: int
    error_code: str
    message: str


@event_type
class RecordVerified(EventPayload):
    """The row read back from Dataverse matches the decided payload."""

    event_type = "RecordVerified"
    topic = Topic.WRITES

    target_table: str
    target_id: str


@event_type
class FieldMismatch(EventPayload):
    """The row read back differs from the decided payload in one column."""

    event_type = "FieldMismatch"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    column: str
    expected: Any
    actual: Any


@event_type
class DestinationDeleted(EventPayload):
    """A rollback deleted a row the run had created."""

    event_type = "DestinationDeleted"
    topic = Topic.WRITES

    target_table: str
    target_id: str


@event_type
class DestinationRestored(EventPayload):
    """A rollback restored the before-image of a row the run had updated."""

    event_type = "DestinationRestored"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    restored: JsonObject


# --- delta: what a source deletion did in Dataverse ------------------------------------------


@event_type
class DestinationDeleteIntended(EventPayload):
    """A delta run is about to delete this row: its source record was deleted, or the delta now
    rejects the record (a withdrawal).

    Appended before the request is sent; ``before_image`` is the whole row as read (columns,
    ``_<lookup>_value`` ids and the target table of each lookup value, no other ``@``
    annotations), so a crash between the intent and the delete loses nothing a rollback needs.
    The key is the source key; ``causation_id`` the ``SourceRecordDeleted`` event, or the
    ``RecordRejected`` of a withdrawal.
    """

    event_type = "DestinationDeleteIntended"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    before_image: JsonObject


@event_type
class DestinationRowDeleted(EventPayload):
    """A delta run deleted this row because its source record was deleted (not a rollback).

    To undo it, re-create the row from ``before_image`` (same id); rollbacks record their own
    deletions as ``DestinationDeleted``. A deactivation instead is a ``DestinationWritten``
    ``op="update"`` whose ``before_image`` holds the previous ``statecode``/``statuscode``.
    """

    event_type = "DestinationRowDeleted"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    before_image: JsonObject
    reason: str = ""


@event_type
class DestinationRecreated(EventPayload):
    """A rollback re-created a row a delta run had deleted, from its recorded before-image.

    ``recreated`` is the create body sent (same id); ``causation_id`` the
    ``DestinationRowDeleted`` it undoes.
    """

    event_type = "DestinationRecreated"
    topic = Topic.WRITES

    target_table: str
    target_id: str
    recreated: JsonObject


@event_type
class SourceDeletionFlagged(EventPayload):
    """A source record was deleted (or the delta now rejects it) and its Dataverse row was left
    alone, flagged for the report.

    ``reason`` says why: the ``flag`` setting, a row another record shares (a merged supplier),
    a row that is already gone, or a table without a state to deactivate. ``target_id`` is None
    when the record was never written. ``causation_id``: the ``SourceRecordDeleted``, or the
    ``RecordRejected`` of a withdrawal.
    """

    event_type = "SourceDeletionFlagged"
    topic = Topic.WRITES

    target_table: str | None = None
    target_id: str | None = None
    reason: str
