"""The projection runner on SQLite and a real PostgreSQL: positions and effects are atomic."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, Table, inspect, select

from ledger.events import Topic
from ledger.log import EventLog, StoredEvent
from ledger.sqlite_log import SqliteEventLog
from ledger.synthetic import synthetic_run
from projections.db import create_db_engine, downgrade, upgrade
from projections.event_counts import EventCounts
from projections.runner import ProjectionRunner
from projections.tables import event_counts, metadata


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with SqliteEventLog(f"sqlite:///{tmp_path / 'ledger.db'}", partitions=4) as log:
        log.append(list(synthetic_run("r1", 3000)))
        log.append(list(synthetic_run("r2", 1000)))
        yield log


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def counts(engine: Engine) -> dict[tuple[str, str, str], int]:
    with engine.connect() as connection:
        rows = connection.execute(select(event_counts)).all()
    return {(run, type_, prefix): n for run, type_, prefix, n in rows}


def expected_counts(log: EventLog) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for stored in log.read():
        key = (stored.event.run_id, stored.event.type, stored.event.key.split(":")[0])
        found[key] = found.get(key, 0) + 1
    return found


def test_event_counts_per_run_type_and_key_prefix(log: EventLog, engine: Engine) -> None:
    applied = ProjectionRunner(log, engine).run()

    assert applied == sum(expected_counts(log).values())
    assert counts(engine) == expected_counts(log)
    assert counts(engine)[("r1", "SourceRecordExtracted", "Kunden")] == 374


def test_a_redelivered_batch_changes_nothing(log: EventLog, engine: Engine) -> None:
    runner = ProjectionRunner(log, engine)
    runner.run()
    before = counts(engine)

    batch = list(log.read())[:500]
    assert runner.apply_batch(batch) == 0
    assert runner.run() == 0
    assert counts(engine) == before


class _FailsMidway(EventCounts):
    """Counts like EventCounts, then fails: the transaction must leave no trace."""

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        super().apply(connection, events)
        raise RuntimeError("crash after the effect, before the position")


def test_a_crash_inside_a_batch_leaves_neither_effect_nor_position(
    log: EventLog, engine: Engine
) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        ProjectionRunner(log, engine, [_FailsMidway()]).run()
    assert counts(engine) == {}

    ProjectionRunner(log, engine).run()
    assert counts(engine) == expected_counts(log)


def test_a_runner_catches_up_with_events_appended_later(log: EventLog, engine: Engine) -> None:
    runner = ProjectionRunner(log, engine, batch_size=333)
    runner.run()
    log.append(list(synthetic_run("r3", 500)))

    assert runner.run() == sum(n for (run, _, _), n in expected_counts(log).items() if run == "r3")
    assert counts(engine) == expected_counts(log)


def test_rebuilding_from_the_log_gives_identical_tables(log: EventLog, engine: Engine) -> None:
    runner = ProjectionRunner(log, engine)
    runner.run()
    first = counts(engine)

    runner.rebuild()

    assert counts(engine) == first == expected_counts(log)


def test_only_the_projections_topics_are_read(log: EventLog, engine: Engine) -> None:
    class ControlOnly(EventCounts):
        name = "control_counts"
        topics = (Topic.CONTROL,)

    ProjectionRunner(log, engine, [ControlOnly()]).run()

    assert {type_ for (_, type_, _) in counts(engine)} == {
        "RunStarted",
        "PhaseStarted",
        "PhaseReconciled",
    }


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.mark.postgres
def test_alembic_upgrades_an_empty_postgresql_database_down_to_base_and_up_again(
    postgres_db_url: str,
) -> None:
    engine = create_db_engine(postgres_db_url)
    assert _tables(engine) == set()

    upgrade(engine)
    assert _tables(engine) == set(metadata.tables)
    downgrade(engine, "base")
    assert _tables(engine) == set()
    upgrade(engine)
    assert _tables(engine) == set(metadata.tables)
    engine.dispose()


def test_the_migrations_create_exactly_the_tables_the_code_declares(sqlite_db_url: str) -> None:

    engine = create_db_engine(sqlite_db_url)
    upgrade(engine)
    declared: dict[str, Table] = dict(metadata.tables)
    inspector = inspect(engine)
    for name, table in declared.items():
        assert {c["name"] for c in inspector.get_columns(name)} == set(table.columns.keys())
    assert _tables(engine) == set(declared)
    engine.dispose()
