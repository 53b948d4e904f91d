"""The projection database: engines for SQLite and PostgreSQL, schema upgrades through Alembic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

import migrations


def create_db_engine(url: str) -> Engine:
    """An engine for the projection database at ``url`` (SQLite file or PostgreSQL).

    SQLite gets WAL mode and ``BEGIN IMMEDIATE`` transactions, so a projection's read of its
    position and its writes are one serialised transaction, as they are on PostgreSQL.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so BEGIN IMMEDIATE is what opens one.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for crmledger's migrations, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the projection schema to ``revision``."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the projection schema to ``revision``."""
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    add: Sequence[str] = (),
) -> None:
    """Insert ``rows``; where ``keys`` conflict, update the other columns.

    Columns named in ``add`` are counters: the inserted value is added to the stored one.
    """
    if not rows:
        return
    dialect = connection.dialect.name
    statement: sqlite.Insert | postgresql.Insert
    if dialect == "sqlite":
        statement = sqlite.insert(table)
    elif dialect == "postgresql":
        statement = postgresql.insert(table)
    else:
        raise ValueError(f"projections support SQLite and PostgreSQL, not {dialect}")
    updates = {
        column.name: (
            column + statement.excluded[column.name]
            if column.name in add
            else statement.excluded[column.name]
        )
        for column in table.columns
        if column.name not in keys
    }
    connection.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=updates), list(rows)
    )
