"""Rollback on the distributed backend: a Kafka log and PostgreSQL projections.

The same code rolls back on Kafka as on SQLite: a phase, then the whole run, with updated rows
restored; a second rollback appends nothing; the projections rebuilt from the Kafka log equal
the live ones in PostgreSQL.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.audit import verify_projections
from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.migrate import InProcessStages, MigrationRequest, migrate
from consumers.reconcile import GateThresholds
from consumers.rollback import rollback
from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationWritten,
    TransformDecided,
)
from ledger.events import Topic
from ledger.log import EventLog, open_log
from producers.mapping.default import default_map
from producers.mapping.stage import transform_run
from producers.work4all.cli import ExportForm, generate
from projections.db import create_db_engine, upgrade
from projections.runner import ProjectionRunner
from tests.migration.conftest import Target, target_for

RUN = "kafka-rb"
ACTIVITIES = ("phonecall", "task", "appointment", "email")
GATES = GateThresholds(max_rejected_share=0.5)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-customer export (the rollback tests' seed; Kafka round trips make bigger ones slow)."""
    folder = tmp_path_factory.mktemp("kafka-rollback-export")
    generate(out=str(folder), customers=40, form=ExportForm.SQL, seed=11, quiet=True)
    return folder / "work4all.db"


@pytest.fixture
def distributed(
    small_export: Path, tls_dir: Path, kafka_bootstrap: str, postgres_db_url: str
) -> Iterator[Target]:
    """A Kafka log of its own topic prefix, a fresh PostgreSQL database, a fresh emulator."""
    log_url = f"kafka://{kafka_bootstrap}?prefix=rb-{uuid.uuid4().hex[:12]}"
    with target_for(
        small_export, tls_dir, log_url=log_url, db_url=postgres_db_url, run_id=RUN
    ) as target:
        yield target


def _content_digest(target: Target) -> str:
    emulator = target.emulator
    assert emulator.cert_path is not None
    context = ssl.create_default_context(cafile=str(emulator.cert_path))
    url = emulator.root_url.rstrip("/") + "/_emulator/digest?content=true"
    return str(httpx.get(url, verify=context, timeout=30).json()["digest"])


def _pre_create(log: EventLog, target: Target) -> list[str]:
    """Two accounts exist before the run with the ids it decides: the run updates them."""
    decided = [
        stored.event.payload
        for stored in log.read([Topic.DECISIONS])
        if stored.event.run_id == RUN
        and stored.event.type == TransformDecided.event_type
        and stored.event.payload["target_table"] == "account"
    ][:2]
    with client_from_settings(target.settings) as client:
        for number, decision in enumerate(decided):
            client.post(
                "accounts",
                {"accountid": decision["target_id"], "name": f"Vorher AG {number}",
                 "description": "created before the migration"},
            )  # fmt: skip
    return [str(d["target_id"]) for d in decided]


def _run_events(log: EventLog, event_type: str) -> list[dict[str, Any]]:
    return [
        stored.event.payload
        for stored in log.read()
        if stored.event.run_id == RUN and stored.event.type == event_type
    ]


def _project(log: EventLog, db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine)
        ProjectionRunner(log, engine).run()
    finally:
        engine.dispose()


@pytest.mark.kafka
@pytest.mark.postgres
def test_rolling_back_a_phase_then_the_run_on_kafka_gives_back_the_digest(
    distributed: Target, small_export: Path
) -> None:
    settings = distributed.settings
    with open_log(settings.log_url) as log:
        transform_run(log, default_map(), run_id=RUN, files=small_export.parent)
        updated = _pre_create(log, distributed)
        before_run = _content_digest(distributed)
        with (
            client_from_settings(settings) as client,
            client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as writer,
        ):
            summary = migrate(
                log, client, default_map(),
                MigrationRequest(export="", run_id=RUN, thresholds=GATES),
                stages=InProcessStages(writer, Throttle()),
            )  # fmt: skip
            assert summary.passed, summary.stopped
            updates = [
                w for w in _run_events(log, DestinationWritten.event_type) if w["op"] == "update"
            ]
            assert {w["target_id"] for w in updates} >= set(updated)
            counts = distributed.counts()
            assert all(counts.get(table, 0) for table in ("phonecall", "task"))

            # the activities phase (and the notes attached to them) go; the rest stays
            phase = rollback(log, client, run_id=RUN, phase=6, cascade=True)
            assert phase.failed == []
            after_phase = distributed.counts()
            assert all(after_phase.get(table, 0) == 0 for table in ACTIVITIES)
            kept = set(counts) - {*ACTIVITIES, "annotation", "activityparty"}
            assert {t: after_phase.get(t, 0) for t in kept} == {t: counts[t] for t in kept}
            end = log.end_position()
            assert rollback(log, client, run_id=RUN, phase=6, cascade=True).appended == 0
            assert log.end_position() == end

            # then the whole run: created rows deleted, updated rows restored
            run = rollback(log, client, run_id=RUN)
            assert run.failed == []
            assert _content_digest(distributed) == before_run
            restored = {r["target_id"] for r in _run_events(log, DestinationRestored.event_type)}
            assert restored >= set(updated)
            deleted = _run_events(log, DestinationDeleted.event_type)
            creates = [
                w for w in _run_events(log, DestinationWritten.event_type) if w["op"] == "create"
            ]
            # every row the run created is deleted (opportunityclose rows come on top)
            assert len(deleted) >= len(creates)
            assert rollback(log, client, run_id=RUN).appended == 0

        # the projections in PostgreSQL, rebuilt from the Kafka log, are the live ones
        _project(log, settings.db_url)
        verification = verify_projections(log, settings.db_url)
        print(f"audit verify on Kafka + PostgreSQL after rollback: {verification.tables}")
        assert verification.identical, verification.differences
        assert verification.events_applied > 0
