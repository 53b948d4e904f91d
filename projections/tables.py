"""The projection schema as SQLAlchemy tables; Alembic migrations create and upgrade it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("topic", String(50), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)
"""Per projection and partition, the offset of the next event it has not yet applied."""

event_counts = Table(
    "event_counts",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("type", String(100), primary_key=True),
    Column("key_prefix", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""How many events of each type a run recorded, per key prefix (``Kunden``, ``account`` …)."""

# --- the migration's read models (Alembic revision 0002) ---------------------------------------
#
# Conventions every reader can rely on:
# - ``run_id`` is the run an event was recorded in; ``source_key`` the ledger key of a work4all
#   record (``Kunden:1739201``), ``source_table`` the part before the colon (``Kunden``) and
#   ``source_code`` the part after it (the work4all ``Code``, or ``@position`` without one).
# - ``phase`` is the map's phase number (1-8), taken from the events' ``phase``.
# - Every ``*_json`` column holds canonical JSON (sorted keys, ``ledger.events.canonical_json``).
# - Every ``*_at`` column is an event's ``occurred_at`` as fixed-width ISO-8601 UTC text
#   (``2026-11-26T13:50:40.293947Z``), so it sorts as text; no wall-clock value is ever stored.

id_map = Table(
    "id_map",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("source_key", String(300), primary_key=True),
    Column("source_table", String(100), nullable=False),
    Column("source_code", String(200), nullable=False),
    Column("phase", Integer, nullable=True),
    Column("target_table", String(100), nullable=False),
    Column("target_id", String(36), nullable=False),
    Index("id_map_by_target", "target_table", "target_id"),
)
"""Which Dataverse row each work4all record became, per run (from ``TransformDecided``).

``target_id`` is lower-case. Several source records may map to one row (a supplier that is
also a customer shares the customer's ``account``); whether the row was written is in
``record_state``.
"""

record_state = Table(
    "record_state",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("source_key", String(300), primary_key=True),
    Column("source_table", String(100), nullable=False),
    Column("source_code", String(200), nullable=False),
    # extraction (SourceRecordExtracted / SourceRecordChanged / SourceRecordDeleted)
    Column("content_hash", String(64), nullable=True),
    Column("source_position", BigInteger, nullable=True),
    Column("source_deleted", Boolean, nullable=False, default=False),
    Column("extracted_at", String(32), nullable=True),
    Column("changed_at", String(32), nullable=True),
    # transform (TransformDecided / RecordRejected)
    Column("decision_phase", Integer, nullable=True),
    Column("decision", String(20), nullable=True),
    Column("excluded", Boolean, nullable=False, default=False),
    Column("reasons_json", Text, nullable=True),
    Column("notes_json", Text, nullable=True),
    Column("target_table", String(100), nullable=True),
    Column("target_id", String(36), nullable=True),
    Column("decided_at", String(32), nullable=True),
    # write (DestinationWritten / DestinationWriteFailed)
    Column("write_phase", Integer, nullable=True),
    Column("write_status", String(20), nullable=True),
    Column("write_op", String(20), nullable=True),
    Column("write_event_id", String(36), nullable=True),
    Column("error_status", Integer, nullable=True),
    Column("error_code", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("written_at", String(32), nullable=True),
    # verification of the latest write (RecordVerified / FieldMismatch)
    Column("check_status", String(20), nullable=True),
    Column("mismatched_columns_json", Text, nullable=True),
    Column("checked_at", String(32), nullable=True),
    # rollback (DestinationDeleted / DestinationRestored)
    Column("rollback_status", String(20), nullable=True),
    Column("rolled_back_at", String(32), nullable=True),
    Column("last_event_at", String(32), nullable=False),
    # reconciliation (revision 0003): projections.counting.RecordTally as canonical JSON
    Column("tally_json", Text, nullable=True),
    Index("record_state_by_decision", "run_id", "decision_phase"),
    Index("record_state_by_write", "run_id", "write_phase"),
    Index("record_state_by_target", "target_table", "target_id"),
)
"""One row per record and run: its latest state in every stage.

- ``content_hash``/``source_position``: the latest extracted or changed version;
  ``extracted_at`` is set by ``SourceRecordExtracted``, ``changed_at`` by
  ``SourceRecordChanged`` (reconciliation counts either as extracted), ``source_deleted`` by
  ``SourceRecordDeleted``.
- ``decision``: ``decided`` | ``rejected``; ``excluded`` is true for a rejection only because
  no map object's filter takes the record (``filtered_out``, a scope decision).
  ``reasons_json``: the rejection's reasons per field; ``notes_json``: the decision's notes.
- ``write_status``: ``written`` (``write_op`` ``create`` | ``update``) | ``failed`` (with
  ``error_status``, ``error_code``, ``error_message`` as Dataverse returned them).
- ``check_status``: ``verified`` | ``mismatched`` (``mismatched_columns_json``: a sorted list of
  column names) for the latest write; null until that write is verified.
- ``rollback_status``: ``deleted`` | ``restored`` once a rollback of the run acted on the row.
- ``tally_json``: what the record's events say for reconciliation
  (:class:`projections.counting.RecordTally`), from which its share of
  ``reconciliation_tallies`` is computed.
"""

reconciliation_counts = Table(
    "reconciliation_counts",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("phase", Integer, primary_key=True),
    Column("source_table", String(100), primary_key=True),
    Column("extracted", BigInteger, nullable=False),
    Column("decided", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("excluded", BigInteger, nullable=False),
    Column("written", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("verified", BigInteger, nullable=False),
    Column("mismatched", BigInteger, nullable=False),
    # deletions of delta runs (revision 0003)
    Column("source_deleted", BigInteger, nullable=False, server_default="0"),
    Column("deleted", BigInteger, nullable=False, server_default="0"),
    Column("deactivated", BigInteger, nullable=False, server_default="0"),
    Column("flagged", BigInteger, nullable=False, server_default="0"),
    Column("deletion_failed", BigInteger, nullable=False, server_default="0"),
)
"""Per run, phase and work4all table, every count of :data:`projections.counting.ALL_NAMES`.

Counted by the one rule of :mod:`projections.counting` (which ``consumers.reconcile.phase_counts``
uses too), always for the log applied so far, so ``extracted`` … ``mismatched`` equal what the
next ``PhaseReconciled`` would record; ``excluded`` is part of ``rejected``. ``source_deleted``
… ``deletion_failed`` are a delta run's deletions (and withdrawals), in the lowest phase that
lists their table.
"""

reconciliation_tallies = Table(
    "reconciliation_tallies",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("phase", Integer, primary_key=True),
    Column("source_table", String(100), primary_key=True),
    Column("name", String(30), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""Per run, phase and work4all table, the records' contributions to each count, summed.

What :func:`projections.counting.assemble` turns into ``reconciliation_counts``; kept by adding
each changed record's new contribution and subtracting its old one, so a batch costs what it
changed, not what the run holds. ``phase`` -1: records without a phase of their own (extracted
but undecided; deletions). Rows whose count falls to zero are removed.
"""

phase_gates = Table(
    "phase_gates",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("phase", Integer, primary_key=True),
    Column("objects_json", Text, nullable=False),
    Column("started_at", String(32), nullable=True),
    Column("override_reason", Text, nullable=True),
    Column("verdict", String(20), nullable=True),
    Column("reasons_json", Text, nullable=True),
    Column("counts_json", Text, nullable=True),
    Column("reconciled_at", String(32), nullable=True),
    Column("reconciled_event_id", String(36), nullable=True),
)
"""Per run and phase: what its ``PhaseStarted`` events listed and the latest ``PhaseReconciled``.

``objects_json``: the sorted source tables the phase's starts listed; ``verdict``: ``passed`` |
``failed`` (null: never reconciled), with the gate's ``reasons_json`` and the ``counts_json``
it judged; ``override_reason``: an operator's recorded reason to start despite a failed gate.
"""

rollback_plan = Table(
    "rollback_plan",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("target_table", String(100), primary_key=True),
    Column("target_id", String(36), primary_key=True),
    Column("phase", Integer, nullable=False),
    Column("table_rank", Integer, nullable=False),
    Column("source_key", String(300), nullable=False),
    Column("action", String(20), nullable=False),
    Column("before_image_json", Text, nullable=True),
    Column("before_image_at", String(32), nullable=True),
    Column("before_image_event_id", String(36), nullable=True),
    Column("first_write_at", String(32), nullable=False),
    Column("written", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_at", String(32), nullable=True),
    Index("rollback_plan_by_order", "run_id", "phase", "table_rank"),
)
"""What undoing a run takes: one row per Dataverse row the run wrote or meant to write.

- ``action``: ``delete`` when any write of the run created the row (``DestinationWritten`` or
  ``DestinationWriteIntended`` with ``op="create"``), else ``restore`` with
  ``before_image_json``, the before-image of the run's earliest update of the row (by
  ``occurred_at``, then event id, named by ``before_image_at`` and ``before_image_event_id``):
  the row as it was before the run touched it.
- ``written``: a ``DestinationWritten`` was recorded; false when only an intent was (a writer
  stopped mid-request: the row may or may not exist).
- Execution order (reverse dependency order): ``ORDER BY phase DESC, table_rank DESC,
  target_id``; ``table_rank`` is the table's position in the write order of
  :data:`projections.tables.TABLE_ORDER` (unknown tables rank last, so they go first).
- ``status``: ``pending`` | ``deleted`` | ``restored`` — a ``DestinationDeleted`` or
  ``DestinationRestored`` of the same ``run_id`` and row sets it (at ``status_at``); a later
  write of the row by the run sets it back to ``pending``. ``source_key``: the first (lowest)
  source key that addressed the row.
"""

TABLE_ORDER = (
    "account",
    "contact",
    "uomschedule",
    "uom",
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
    "w4a_openitem",
)
"""Dataverse tables in the order writes create them (consumers.writing.plan.STATIC_ORDER plus
units and open items); ``rollback_plan.table_rank`` is the index here."""

delta_state = Table(
    "delta_state",
    metadata,
    Column("source_key", String(300), primary_key=True),
    Column("source_table", String(100), nullable=False),
    Column("source_code", String(200), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("run_id", String(100), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("seen_at", String(32), nullable=False),
    Index("delta_state_by_table", "source_table"),
)
"""Per work4all record (across runs), its content hash at the last extraction of any run.

Set by the latest ``SourceRecordExtracted`` or ``SourceRecordChanged`` of the key (``deleted``
false) or ``SourceRecordDeleted`` (``deleted`` true, ``content_hash`` the deleted version's);
``run_id``, ``event_id`` and ``seen_at`` name that event. A delta compares a newer export's
hashes with ``content_hash`` of the rows not ``deleted``.
"""

event_throughput = Table(
    "event_throughput",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("type", String(100), primary_key=True),
    Column("second", String(20), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""Events per run, type and second of ``occurred_at`` (``2026-11-26T13:50:40``, UTC)."""
