"""A delta run on the distributed backend (Kafka log, PostgreSQL projections) ends where a fresh
migration of the newer export ends, and rolls back like one on SQLite."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from consumers.dataverse.client import client_from_settings
from consumers.rollback import rollback
from ledger.event_types import SourceRecordChanged, SourceRecordDeleted
from ledger.log import open_log
from tests.delta.conftest import Generations
from tests.delta.test_delta import BASE, DELTA, FRESH, _delta, _migrate, _rows
from tests.migration.conftest import target_for


@pytest.mark.kafka
@pytest.mark.postgres
def test_a_delta_on_kafka_and_postgresql_matches_a_fresh_migration_and_rolls_back(
    generations: Generations,
    tls_dir: Path,
    tmp_path: Path,
    kafka_bootstrap: str,
    postgres_db_url: str,
) -> None:
    edits = generations.edits
    log_url = f"kafka://{kafka_bootstrap}?prefix=delta-{uuid.uuid4().hex[:12]}"
    with target_for(
        generations.first, tls_dir, log_url=log_url, db_url=postgres_db_url, run_id=BASE
    ) as target:
        _migrate(target, BASE)
        base_rows = _rows(target)
        summary = _delta(target, generations.newer, "delete")
        assert summary.passed, (summary.stopped, summary.failures)
        delta_rows = _rows(target)
        with open_log(log_url) as log:
            events = [stored.event for stored in log.read() if stored.event.run_id == DELTA]
            with client_from_settings(target.settings) as client:
                rolled_back = rollback(log, client, run_id=DELTA)
                again = rollback(log, client, run_id=DELTA)
        restored_rows = _rows(target)

    changed = {e.key for e in events if e.type == SourceRecordChanged.event_type}
    deleted = {e.key for e in events if e.type == SourceRecordDeleted.event_type}
    print(
        f"delta on Kafka: {len(changed)} new or changed, {len(deleted)} deleted;"
        f" rollback restored {sum(rolled_back.restored.values())},"
        f" deleted {sum(rolled_back.deleted.values())},"
        f" re-created {sum(rolled_back.recreated.values())}"
    )
    expected_changed = {
        f"{table}:{code}"
        for what in ("changed", "added")
        for table, codes in getattr(edits, what).items()
        for code in codes
    }
    assert changed == expected_changed
    assert deleted == {f"{t}:{c}" for t, codes in edits.deleted.items() for c in codes}
    assert rolled_back.failed == []
    assert again.appended == 0
    # the rows the delta changed are back as the base migration left them
    touched = {row for row in set(base_rows) | set(delta_rows)
               if base_rows.get(row) != delta_rows.get(row)}  # fmt: skip
    assert touched
    added = {row for row in touched if row not in base_rows}
    assert not added & set(restored_rows), "rows the delta created survive its rollback"
    kept = touched - added
    assert {row: _comparable(restored_rows[row]) for row in kept} == {
        row: _comparable(base_rows[row]) for row in kept
    }

    with target_for(
        generations.newer, tls_dir, log_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        db_url=f"sqlite:///{tmp_path / 'fresh-projections.db'}", run_id=FRESH,
    ) as fresh:  # fmt: skip
        _migrate(fresh, FRESH)
        fresh_rows = _rows(fresh)
    assert set(delta_rows) == set(fresh_rows)
    differing = {row for row in delta_rows if delta_rows[row] != fresh_rows[row]}
    assert not differing, sorted(differing)[:5]


def _comparable(row: dict[str, object]) -> dict[str, object]:
    """A row without what a re-created row cannot have as before: when it was created and by
    whom (Dataverse sets them on create)."""
    return {k: v for k, v in row.items() if k not in {"createdon", "createdby", "ownerid"}}
