"""The read models after a real migration: rebuilt from the log alone, identical every time."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from ledger.event_types import RecordRejected, SourceRecordExtracted, TransformDecided
from ledger.events import Event
from ledger.log import open_log
from projections.db import create_db_engine, upgrade
from projections.runner import ProjectionRunner, default_projections
from projections.tables import (
    delta_state,
    id_map,
    record_state,
    rollback_plan,
)
from tests.projections.conftest import Migrated

Dump = dict[str, list[tuple[Any, ...]]]


def _dump(engine: Engine) -> Dump:
    """Every projection table's rows, sorted: what must be identical after a rebuild."""
    tables = [table for projection in default_projections() for table in projection.tables]
    with engine.connect() as connection:
        return {
            table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
            for table in tables
        }


def _engine(url: str) -> Engine:
    engine = create_db_engine(url)
    upgrade(engine)
    return engine


def _events(migrated: Migrated) -> list[Event]:
    with open_log(migrated.log_url) as log:
        return [stored.event for stored in log.read() if stored.event.run_id == migrated.run_id]


def test_projections_rebuilt_twice_from_the_log_are_identical(
    migrated: Migrated, db_url: str
) -> None:
    engine = _engine(db_url)
    with open_log(migrated.log_url) as log:
        runner = ProjectionRunner(log, engine)
        assert runner.rebuild() > 0
        first = _dump(engine)
        runner.rebuild()
        second = _dump(engine)
        # Other batch boundaries, and every batch delivered twice: still the same tables.
        small = ProjectionRunner(log, engine, batch_size=97)
        with engine.begin() as connection:
            for projection in default_projections():
                for table in projection.tables:
                    connection.execute(table.delete())
        small.rebuild()
        for stored in log.read():
            small.apply_batch([stored])
        third = _dump(engine)
    engine.dispose()
    assert first["record_state"]
    assert first["rollback_plan"]
    assert first["reconciliation_counts"]
    assert first == second
    assert first == third


def test_id_map_and_record_state_say_what_became_of_every_record(
    migrated: Migrated, sqlite_db_url: str
) -> None:
    engine = _engine(sqlite_db_url)
    with open_log(migrated.log_url) as log:
        ProjectionRunner(log, engine).run()
    events = _events(migrated)
    decided = {e.key: e for e in events if e.type == TransformDecided.event_type}
    rejected = {e.key: e for e in events if e.type == RecordRejected.event_type}
    extracted = {e.key for e in events if e.type == SourceRecordExtracted.event_type}
    with engine.connect() as connection:
        ids = {row.source_key: row for row in connection.execute(select(id_map))}
        states = {row.source_key: row for row in connection.execute(select(record_state))}
        plan = list(connection.execute(select(rollback_plan)))
        delta = {row.source_key: row for row in connection.execute(select(delta_state))}
    engine.dispose()

    assert ids.keys() == decided.keys()
    for key, event in decided.items():
        row = ids[key]
        assert (row.target_table, row.target_id) == (
            event.payload["target_table"],
            str(event.payload["target_id"]).lower(),
        )
        assert f"{row.source_table}:{row.source_code}" == key
        state = states[key]
        assert (state.decision, state.write_status, state.write_op) == (
            "decided",
            "written",
            "create",
        )
        assert state.check_status == "verified"
        assert state.target_id == row.target_id
    assert rejected, "the generated export plants defects that are rejected"
    for key, event in rejected.items():
        state = states[key]
        assert state.decision == "rejected"
        assert state.write_status is None
        assert json.loads(state.reasons_json) == event.payload["reasons"]
    assert states.keys() == extracted
    assert all(states[key].content_hash for key in extracted)

    written_rows = {(s.target_table, s.target_id) for s in states.values() if s.write_status}
    assert {(row.target_table, row.target_id) for row in plan} == written_rows
    assert Counter((row.action, row.status, bool(row.written)) for row in plan) == {
        ("delete", "pending", True): len(plan)
    }
    assert delta.keys() == extracted
    assert not any(row.deleted for row in delta.values())
