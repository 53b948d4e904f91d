"""A synthetic run's events, for the demo log, the benchmark and tests of the log itself.

The events have the shape of a real run (a customer becomes an account, its contacts become
contacts; each is extracted, decided, written and verified), but no work4all export is read and
no Dataverse is written: they exercise the ledger, not the migration.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from ledger.event_types import (
    DestinationWritten,
    PhaseReconciled,
    PhaseStarted,
    RecordVerified,
    RunStarted,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event, EventPayload, content_hash, deterministic_id

_EVENTS_PER_RECORD = 4
_TABLES = (("Kunden", "account", "1"), ("KAnsprechp", "contact", "2"))


def synthetic_run(run_id: str, events: int, *, started: datetime | None = None) -> Iterator[Event]:
    """About ``events`` events of a run migrating synthetic customers and contacts."""
    clock = started or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    run = Event.create(
        RunStarted(started_by="crmledger demo", description="synthetic run"),
        run_id=run_id,
        key=f"run:{run_id}",
        cause="start",
        occurred_at=clock,
    )
    yield run
    records = max(0, (events - 1 - 2 * len(_TABLES)) // _EVENTS_PER_RECORD)
    for number, (table, target, phase) in enumerate(_TABLES):
        share = records // len(_TABLES) + (1 if number < records % len(_TABLES) else 0)
        yield Event.create(
            PhaseStarted(phase_number=int(phase), objects=[table]),
            run_id=run_id,
            key=f"phase:{phase}",
            cause="start",
            phase=phase,
            correlation_id=run.event_id,
            occurred_at=clock,
        )
        for code in range(1, share + 1):
            clock += timedelta(milliseconds=5)
            yield from _record(run_id, run.event_id, phase, table, target, code, clock)
        yield Event.create(
            PhaseReconciled(
                counts={table: {"extracted": share, "decided": share, "written": share}},
                verdict="passed",
            ),
            run_id=run_id,
            key=f"phase:{phase}",
            cause="end",
            phase=phase,
            correlation_id=run.event_id,
            occurred_at=clock,
        )


def _record(
    run_id: str,
    correlation: uuid.UUID,
    phase: str,
    table: str,
    target: str,
    code: int,
    clock: datetime,
) -> Iterator[Event]:
    values = {"Code": code, "Name": f"{table} {code}", "Ort": "Berlin", "Staat": "D"}
    digest = content_hash(values)
    target_id = str(deterministic_id(target, table, str(code)))
    steps: list[EventPayload] = [
        SourceRecordExtracted(
            table=table, source_key=str(code), raw=values, normalised=values, content_hash=digest
        ),
        TransformDecided(
            target_table=target, target_id=target_id, payload={"name": values["Name"]}
        ),
        DestinationWritten(target_table=target, target_id=target_id, op="create"),
        RecordVerified(target_table=target, target_id=target_id),
    ]
    cause: uuid.UUID | None = None
    for payload in steps:
        event = Event.create(
            payload,
            run_id=run_id,
            key=f"{table}:{code}",
            cause=str(cause) if cause else digest,
            phase=phase,
            causation_id=cause,
            correlation_id=correlation,
            occurred_at=clock,
        )
        cause = event.event_id
        yield event
