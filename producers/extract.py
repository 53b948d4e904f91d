"""The extraction producer: every work4all row becomes one ``SourceRecordExtracted`` event.

Rows are streamed table by table and appended in batches, so memory does not grow with the
export. Event ids derive from the run, the record key and the record's content hash: extracting
the same export again in the same run produces the same ids, which the log skips.

After the last table, an ``ExportRegistered`` event records where the export was (a database
URL without its password), its form and the records per table: later stages find the export's
attachment files through it (:func:`export_files`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ledger.event_types import ExportRegistered, SourceRecordExtracted
from ledger.events import Event, Topic, content_hash
from ledger.log import EventLog
from producers.work4all.normalise import Normaliser, SourceRecord
from producers.work4all.readers import open_export
from producers.work4all.tables import TABLES

EXTRACT_PHASE = "extract"

Progress = Callable[[str, int], None]


@dataclass
class ExtractionSummary:
    """How many records each table gave, and how many problems were found on the way."""

    records: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Records extracted from all tables."""
        return sum(self.records.values())


def record_key(record: SourceRecord) -> str:
    """The ledger key of a record: ``Kunden:1739201``, or its position where it has no Code."""
    if record.key is not None:
        return f"{record.table}:{record.key}"
    return f"{record.table}:@{record.position}"


def extracted_event(record: SourceRecord, raw: dict[str, Any], run_id: str) -> Event:
    """The ``SourceRecordExtracted`` event of one canonical record."""
    normalised: dict[str, Any] = dict(record.values)
    normalised.update({column: custom.value for column, custom in record.custom.items()})
    payload = SourceRecordExtracted(
        table=record.table,
        source_key=str(record.key) if record.key is not None else f"@{record.position}",
        raw=raw,
        normalised=normalised,
        content_hash=content_hash(normalised),
        position=record.position,
        findings=[asdict(finding) for finding in record.findings],
    )
    return Event.create(
        payload, run_id=run_id, key=record_key(record), cause=payload.content_hash,
        phase=EXTRACT_PHASE,
    )  # fmt: skip


def extract(
    location: str | Path,
    log: EventLog,
    *,
    run_id: str,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ExtractionSummary:
    """Append one event per record of every known table in the export at ``location``."""
    summary = ExtractionSummary()
    export = open_export(location)
    try:
        normaliser = Normaliser.for_export(export)
        for name in TABLES:
            table = export.find_table(name)
            if table is None:
                continue
            events = _events(export, normaliser, table, run_id, summary)
            while batch := list(islice(events, batch_size)):
                log.append(batch)
                if progress is not None:
                    progress(name, len(batch))
        log.append([_registered(export, summary, run_id)])
    finally:
        export.close()
    return summary


def _location(export: Any) -> str:
    """Where the export is, for people and later stages; a URL's password is never shown."""
    text = str(export.location)
    if "://" in text:
        url = make_url(text)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return str(Path(str(url.database)).resolve())  # a SQLite export is a file
        return url.render_as_string(hide_password=True)
    return str(Path(text).resolve())


def _registered(export: Any, summary: ExtractionSummary, run_id: str) -> Event:
    payload = ExportRegistered(
        location=_location(export), format=export.form, tables=dict(summary.records)
    )
    return Event.create(
        payload, run_id=run_id, key=f"export:{run_id}", phase=EXTRACT_PHASE,
        cause=f"{payload.location}|{content_hash(payload.tables)}",
    )  # fmt: skip


def registered_export(log: EventLog, run_id: str) -> ExportRegistered | None:
    """The latest export registered for ``run_id``, if any."""
    found: ExportRegistered | None = None
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.type == ExportRegistered.event_type and event.run_id == run_id:
            found = ExportRegistered.model_validate(event.payload)
    return found


def export_files(log: EventLog, run_id: str) -> Path | None:
    """The folder holding the attachment files of the run's export (None for a database URL).

    The generator and work4all keep attachments below the export's folder: the CSV folder
    itself, or the folder of the database file or workbook.
    """
    registered = registered_export(log, run_id)
    if registered is None or "://" in registered.location:
        return None
    path = Path(registered.location)
    return path if registered.format == "csv" and path.is_dir() else path.parent


def _events(
    export: Any, normaliser: Normaliser, table: str, run_id: str, summary: ExtractionSummary
) -> Iterator[Event]:
    source = export.source(table)
    for row in export.rows(table):
        record = normaliser.record(row, source)
        summary.records[record.table] = summary.records.get(record.table, 0) + 1
        if record.findings:
            summary.findings[record.table] = summary.findings.get(record.table, 0) + len(
                record.findings
            )
        yield extracted_event(record, dict(row.raw), run_id)
