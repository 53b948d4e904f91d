"""Alembic environment for the projection schema.

Programmatic use (``projections.db.upgrade``) passes an open connection; from the command line,
``alembic -x db_url=postgresql+psycopg://… upgrade head`` or the configured ``db_url`` is used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from projections.tables import metadata


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    from ledger.settings import Settings
    from projections.db import create_db_engine

    url = context.get_x_argument(as_dictionary=True).get("db_url") or Settings().db_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_db_engine(url)
    with engine.begin() as connection:
        _migrate(connection)
    engine.dispose()


_run()
