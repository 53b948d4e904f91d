"""Migrating again after a rollback: write generations.

A rollback closes the write generation of every record it undoes; ``migrate`` for the same run
then writes, verifies and gates those records anew (a phase that passed before is run again
because its records are pending), and a rollback after that undoes the new generation. Row ids
are deterministic, so the emulator's content digest after a re-migration is the one after the
first migration, and after a rollback of the run again the one from before it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from consumers.dataverse.client import client_from_settings
from consumers.migrate import InProcessStages, MigrationRequest, MigrationSummary, migrate
from consumers.reconcile import GateThresholds
from consumers.rollback import rollback
from consumers.workers import WorkerStages, request_stop
from consumers.writing.plan import Generations, load
from ledger.cli import app
from ledger.event_types import (
    DestinationDeleted,
    DestinationRestored,
    DestinationWriteIntended,
    DestinationWritten,
    FieldMismatch,
    PhaseReconciled,
    RecordVerified,
    TransformDecided,
)
from ledger.events import Event, EventPayload, Topic
from ledger.log import EventLog, open_log
from producers.mapping.default import default_map
from producers.mapping.stage import transform_run
from producers.work4all.cli import ExportForm, generate
from tests.migration.conftest import Target, target_for
from tests.rollback.conftest import CUSTOMERS, RUN, Migrated

OPEN_ITEMS = 8
"""The last phase (w4a_openitem): nothing depends on it, so it rolls back on its own."""


def _events(migrated: Migrated) -> list[Event]:
    return [stored.event for stored in migrated.log.read() if stored.event.run_id == RUN]


def _migrate_again(migrated: Migrated) -> MigrationSummary:
    """``migrate`` for the same run, as the session's migration ran it (export extracted)."""
    thresholds = replace(GateThresholds(), max_rejected_share=0.5)
    request = MigrationRequest(export="", run_id=RUN, thresholds=thresholds)
    return migrate(
        migrated.log, migrated.client, default_map(), request,
        stages=InProcessStages(migrated.client),
    )  # fmt: skip


def _undone(migrated: Migrated) -> set[uuid.UUID]:
    """The write events a rollback event names as undone."""
    kinds = (DestinationDeleted.event_type, DestinationRestored.event_type)
    return {e.causation_id for e in _events(migrated) if e.type in kinds and e.causation_id}


def _current_writes(migrated: Migrated, phase: int) -> dict[uuid.UUID, list[Event]]:
    """Decision id → the ``DestinationWritten`` events of its current generation."""
    return _current_in(migrated.log, phase)


def _current_in(log: EventLog, phase: int) -> dict[uuid.UUID, list[Event]]:
    generations = Generations()
    for stored in log.read([Topic.WRITES]):
        if stored.event.run_id == RUN:
            generations.add(stored.event)
    decisions = [
        stored.event.event_id
        for stored in log.read([Topic.DECISIONS])
        if stored.event.run_id == RUN
        and stored.event.type == TransformDecided.event_type
        and stored.event.phase == str(phase)
    ]
    return {
        d: [e for e in generations.current(d) if e.type == DestinationWritten.event_type]
        for d in decisions
    }


def _reconciled(migrated: Migrated, phase: int) -> list[Event]:
    return [
        e
        for e in _events(migrated)
        if e.type == PhaseReconciled.event_type and e.phase == str(phase)
    ]


def test_a_rolled_back_phase_is_migrated_again_and_a_new_rollback_undoes_the_new_writes(
    migrated: Migrated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated_digest = migrated.digest()
    first_writes = _current_writes(migrated, OPEN_ITEMS)
    gates_before = len(_reconciled(migrated, OPEN_ITEMS))
    first = rollback(migrated.log, migrated.client, run_id=RUN, phase=OPEN_ITEMS)
    rolled_back_digest = migrated.digest()
    assert first.failed == []
    assert first.deleted["w4a_openitem"] == len(first_writes) > 0
    assert rolled_back_digest != migrated_digest
    assert len(load(migrated.log, RUN, OPEN_ITEMS).pending) == len(first_writes)

    summary = _migrate_again(migrated)

    assert summary.passed, summary.stopped
    outcomes = {outcome.phase: outcome for outcome in summary.phases}
    assert not outcomes[OPEN_ITEMS].resumed
    assert outcomes[OPEN_ITEMS].verdict == "passed"
    assert all(o.resumed for p, o in outcomes.items() if p != OPEN_ITEMS)
    assert len(_reconciled(migrated, OPEN_ITEMS)) == gates_before + 1
    assert migrated.digest() == migrated_digest
    again = _current_writes(migrated, OPEN_ITEMS)
    assert again.keys() == first_writes.keys()
    assert all(len(writes) == 1 for writes in again.values())
    new_ids = {writes[0].event_id for writes in again.values()}
    old_ids = {writes[0].event_id for writes in first_writes.values()}
    assert new_ids.isdisjoint(old_ids)
    checks = Counter(
        e.type
        for e in _events(migrated)
        if e.type in (RecordVerified.event_type, FieldMismatch.event_type)
        and e.causation_id in new_ids
    )
    assert checks == {RecordVerified.event_type: len(new_ids)}
    assert _migrate_again(migrated).phases[-1].resumed  # nothing pending: nothing run again

    second = rollback(migrated.log, migrated.client, run_id=RUN, phase=OPEN_ITEMS)

    assert second.failed == []
    assert {a.undoes for a in second.plan.actions} == {str(i) for i in new_ids}
    assert not second.plan.planned_before
    assert migrated.digest() == rolled_back_digest
    assert new_ids <= _undone(migrated)

    monkeypatch.chdir(tmp_path)
    for name, value in migrated.environment().items():
        monkeypatch.setenv(name, value)
    whole = CliRunner().invoke(app, ["rollback", "--run", RUN])
    assert whole.exit_code == 0, whole.output
    assert migrated.digest() == migrated.baseline.digest_before
    end = migrated.log.end_position()

    nothing = CliRunner().invoke(app, ["rollback", "--run", RUN])

    assert nothing.exit_code == 0, nothing.output
    assert "nothing left to roll back" in nothing.output
    assert migrated.log.end_position() == end
    assert migrated.digest() == migrated.baseline.digest_before


def test_migrating_a_rolled_back_run_again_gives_back_the_first_migration(
    migrated: Migrated,
) -> None:
    migrated_digest = migrated.digest()
    undone = rollback(migrated.log, migrated.client, run_id=RUN)
    assert undone.failed == []
    assert migrated.digest() == migrated.baseline.digest_before

    summary = _migrate_again(migrated)

    assert summary.passed, summary.stopped
    with_records = [outcome for outcome in summary.phases if outcome.counts]
    assert with_records
    assert not any(outcome.resumed for outcome in with_records)
    assert migrated.digest() == migrated_digest
    for outcome in summary.phases:
        writes = _current_writes(migrated, outcome.phase)
        assert all(len(w) <= 1 for w in writes.values()), outcome.phase

    again = rollback(migrated.log, migrated.client, run_id=RUN)

    assert again.failed == []
    assert again.done > 0
    assert migrated.digest() == migrated.baseline.digest_before
    assert rollback(migrated.log, migrated.client, run_id=RUN).appended == 0


# --- the distributed deployment: workers write and verify the phase again -----------------------


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rollback tests' export (same size and seed)."""
    folder = tmp_path_factory.mktemp("remigrate-kafka-export")
    generate(out=str(folder), customers=CUSTOMERS, form=ExportForm.SQL, seed=11, quiet=True)
    return folder / "work4all.db"


def _content_digest(target: Target) -> str:
    assert target.emulator.cert_path is not None
    context = ssl.create_default_context(cafile=str(target.emulator.cert_path))
    url = target.emulator.root_url.rstrip("/") + "/_emulator/digest?content=true"
    return str(httpx.get(url, verify=context, timeout=30).json()["digest"])


def _worker(stage: str, target: Target, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "worker", stage, "--run", RUN],
        env={**os.environ, **target.environment()}, cwd=folder,
        stdout=(folder / f"worker-{stage}.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.kafka
def test_on_kafka_the_workers_write_and_verify_a_rolled_back_phase_again(
    small_export: Path, rollback_tls_dir: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    log_url = f"kafka://{kafka_bootstrap}?prefix=remigrate-{uuid.uuid4().hex[:12]}"
    db_url = f"sqlite:///{tmp_path / 'projections.db'}"
    target_of = target_for(small_export, rollback_tls_dir, log_url=log_url, db_url=db_url,
                           run_id=RUN)  # fmt: skip
    request = MigrationRequest(
        export="", run_id=RUN, thresholds=replace(GateThresholds(), max_rejected_share=0.5)
    )
    with target_of as target, open_log(log_url) as log:
        transform_run(log, default_map(), run_id=RUN, files=small_export.parent)
        workers = [_worker(stage, target, tmp_path) for stage in ("write", "verify")]
        try:
            with client_from_settings(target.settings) as client:
                first = migrate(log, client, default_map(), request,
                                stages=WorkerStages(stall_timeout_s=120))  # fmt: skip
                assert first.passed, first.stopped
                migrated_digest = _content_digest(target)
                undone = rollback(log, client, run_id=RUN, phase=OPEN_ITEMS)
                assert undone.failed == []
                assert undone.done > 0
                assert _content_digest(target) != migrated_digest

                again = migrate(log, client, default_map(), request,
                                stages=WorkerStages(stall_timeout_s=120))  # fmt: skip

            request_stop(log, RUN, [], "the test is done")
            for worker in workers:
                assert worker.wait(timeout=60) == 0
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        assert again.passed, again.stopped
        assert not next(o for o in again.phases if o.phase == OPEN_ITEMS).resumed
        assert _content_digest(target) == migrated_digest
        writes = _current_in(log, OPEN_ITEMS)
        assert writes
        assert all(len(w) == 1 for w in writes.values())


# --- the rule, on a log of its own (no services) -----------------------------------------------


def _caused(payload: EventPayload, cause: Event, name: str, key: str = "RA:1") -> Event:
    return Event.create(
        payload, run_id=RUN, key=key, cause=name, phase="8", causation_id=cause.event_id
    )


def test_a_rolled_back_decision_is_pending_and_its_old_intent_is_not_taken_for_a_crash(
    tmp_path: Path,
) -> None:
    row_id = str(uuid.uuid4())
    row = {"target_table": "w4a_openitem", "target_id": row_id}
    decided = Event.create(
        TransformDecided.model_validate({**row, "payload": {"w4a_name": "RE 1"}}),
        run_id=RUN, key="RA:1", cause="decided", phase="8",
    )  # fmt: skip
    create = DestinationWriteIntended.model_validate({**row, "op": "create"})
    intent = _caused(create, decided, "intent")
    written = _caused(DestinationWritten.model_validate({**row, "op": "create"}), decided, "w")
    other_row = DestinationDeleted(target_table="opportunityclose", target_id=row_id)
    elsewhere = _caused(other_row, written, "close")
    deleted = _caused(DestinationDeleted.model_validate(row), written, "deleted")
    with open_log(f"sqlite:///{tmp_path / 'ledger.db'}") as log:
        log.append([decided, intent, written, elsewhere])
        assert load(log, RUN, 8).pending == []  # a row deleted along with it closes nothing

        log.append([deleted])
        work = load(log, RUN, 8)

        assert [d.event.event_id for d in work.pending] == [decided.event_id]
        assert work.intents == {}
        assert work.cause(work.pending[0]) == f"{decided.event_id}|after {written.event_id}"
        cause = work.cause(work.pending[0])
        log.append([_caused(create, decided, cause)])
        resumed = load(log, RUN, 8)
        assert [d.event.event_id for d in resumed.pending] == [decided.event_id]
        assert resumed.intents[decided.event_id].op == "create"
        assert resumed.cause(resumed.pending[0]) == cause  # a retry keeps the generation's ids
