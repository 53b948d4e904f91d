"""One counting rule for reconciliation: per-record tallies, their sums, and deletion counts.

Adds ``record_state.tally_json``, the ``reconciliation_tallies`` table and the deletion columns
of ``reconciliation_counts`` (see projections/tables.py and projections/counting.py). The
``record_state`` projection is emptied and its positions dropped, so the next projection run
applies the whole log again under the new rule: its counts cannot be derived from the old rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELETION_COLUMNS = ("source_deleted", "deleted", "deactivated", "flagged", "deletion_failed")
_RECORD_STATE_TABLES = ("record_state", "id_map", "reconciliation_counts", "phase_gates")


def upgrade() -> None:
    """Create the tallies table, add the new columns, and have ``record_state`` rebuilt."""
    op.create_table(
        "reconciliation_tallies",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("source_table", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "phase", "source_table", "name"),
    )
    op.add_column("record_state", sa.Column("tally_json", sa.Text(), nullable=True))
    for name in _DELETION_COLUMNS:
        op.add_column(
            "reconciliation_counts",
            sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"),
        )
    _rebuild_record_state()


def downgrade() -> None:
    """Drop what :func:`upgrade` added; ``record_state`` is rebuilt under the old rule."""
    with op.batch_alter_table("reconciliation_counts") as batch:
        for name in _DELETION_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("record_state") as batch:
        batch.drop_column("tally_json")
    op.drop_table("reconciliation_tallies")
    _rebuild_record_state()


def _rebuild_record_state() -> None:
    for table in _RECORD_STATE_TABLES:
        op.execute(sa.text(f"DELETE FROM {table}"))
    op.execute(sa.text("DELETE FROM projection_positions WHERE projection = 'record_state'"))
