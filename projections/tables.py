"""The projection schema as SQLAlchemy tables; Alembic migrations create and upgrade it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table

metadata = MetaData()

projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("topic", String(50), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)
"""Per projection and partition, the offset of the next event it has not yet applied."""

event_counts = Table(
    "event_counts",
    metadata,
    Column("run_id", String(100), primary_key=True),
    Column("type", String(100), primary_key=True),
    Column("key_prefix", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""How many events of each type a run recorded, per key prefix (``Kunden``, ``account`` …)."""
