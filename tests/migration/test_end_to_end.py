"""A whole migration of a generated export, on the embedded backend and on Kafka + PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.migrate import InProcessStages, MigrationRequest, MigrationSummary, migrate
from consumers.reconcile import GateThresholds
from consumers.workers import WorkerStages, request_stop
from ledger.log import open_log
from producers.mapping.default import default_map
from tests.migration.checks import check_migration
from tests.migration.conftest import Target, target_for

RUN = "e2e"


def _migrate_in_process(target: Target) -> MigrationSummary:
    settings = target.settings
    with (
        open_log(settings.log_url) as log,
        client_from_settings(settings) as client,
        client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as writer,
    ):
        return migrate(
            log, client, default_map(), MigrationRequest(export="", run_id=RUN,
                                                           thresholds=GateThresholds()),
            stages=InProcessStages(writer, Throttle()),
        )  # fmt: skip


def test_a_migration_on_the_embedded_backend_shows_everything_issue_6_asks_for(
    embedded: Target,
) -> None:
    started = time.perf_counter()
    summary = _migrate_in_process(embedded)
    print(f"embedded end-to-end migration: {time.perf_counter() - started:.1f} s")

    check_migration(embedded, summary, RUN)


def test_migrating_the_same_run_again_appends_nothing_and_changes_nothing(
    embedded: Target,
) -> None:
    _migrate_in_process(embedded)
    with open_log(embedded.settings.log_url) as log:
        before = log.end_position()
    digest = embedded.digest()

    again = _migrate_in_process(embedded)

    with open_log(embedded.settings.log_url) as log:
        assert log.end_position() == before
    assert embedded.digest() == digest
    assert all(outcome.resumed for outcome in again.phases)
    assert again.extract_skipped


@pytest.fixture
def distributed(
    export: Path, tls_dir: Path, kafka_bootstrap: str, postgres_db_url: str
) -> Iterator[Target]:
    """The distributed deployment: a Kafka log of its own prefix, a fresh PostgreSQL database."""
    log_url = f"kafka://{kafka_bootstrap}?prefix=e2e-{uuid.uuid4().hex[:12]}"
    with target_for(export, tls_dir, log_url=log_url, db_url=postgres_db_url, run_id=RUN) as target:
        yield target


def _worker(stage: str, target: Target, tmp_path: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **target.environment()}
    output = (tmp_path / f"worker-{stage}-{uuid.uuid4().hex[:6]}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "worker", stage, "--run", RUN] if stage != "project"
        else [sys.executable, "-m", "ledger", "worker", "project", "--interval", "0.2"],
        env=environment, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.kafka
@pytest.mark.postgres
def test_a_migration_on_kafka_and_postgresql_with_parallel_workers_shows_the_same(
    distributed: Target, tmp_path: Path
) -> None:
    # two writers and two verifiers share their stages through consumer groups
    workers = [_worker(stage, distributed, tmp_path)
               for stage in ("write", "write", "verify", "verify", "project")]  # fmt: skip
    try:
        started = time.perf_counter()
        settings = distributed.settings
        with open_log(settings.log_url) as log, client_from_settings(settings) as client:
            summary = migrate(
                log, client, default_map(),
                MigrationRequest(export="", run_id=RUN, thresholds=GateThresholds()),
                stages=WorkerStages(stall_timeout_s=120),
            )  # fmt: skip
            print(f"kafka end-to-end migration: {time.perf_counter() - started:.1f} s")
            request_stop(log, RUN, [], "the test is done")
        for worker in workers:
            assert worker.wait(timeout=60) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    check_migration(distributed, summary, RUN)
    _projections_hold_the_run(settings.db_url)


def _projections_hold_the_run(db_url: str) -> None:
    from sqlalchemy import func, select

    from projections.db import create_db_engine
    from projections.tables import event_counts

    engine = create_db_engine(db_url)
    with engine.connect() as connection:
        total = connection.execute(
            select(func.sum(event_counts.c.count)).where(event_counts.c.run_id == RUN)
        ).scalar_one()
    engine.dispose()
    assert total
