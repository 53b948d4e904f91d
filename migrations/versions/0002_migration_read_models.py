"""The migration's read models: id map, record state, reconciliation counts, phase gates,
rollback plan, delta state and event throughput (see projections/tables.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the read-model tables and their indexes."""
    op.create_table(
        "delta_state",
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("source_table", sa.String(length=100), nullable=False),
        sa.Column("source_code", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("seen_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("source_key"),
    )
    op.create_index("delta_state_by_table", "delta_state", ["source_table"], unique=False)
    op.create_table(
        "event_throughput",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("second", sa.String(length=20), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "type", "second"),
    )
    op.create_table(
        "id_map",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("source_table", sa.String(length=100), nullable=False),
        sa.Column("source_code", sa.String(length=200), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=True),
        sa.Column("target_table", sa.String(length=100), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "source_key"),
    )
    op.create_index("id_map_by_target", "id_map", ["target_table", "target_id"], unique=False)
    op.create_table(
        "phase_gates",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("objects_json", sa.Text(), nullable=False),
        sa.Column("started_at", sa.String(length=32), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column("reasons_json", sa.Text(), nullable=True),
        sa.Column("counts_json", sa.Text(), nullable=True),
        sa.Column("reconciled_at", sa.String(length=32), nullable=True),
        sa.Column("reconciled_event_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "phase"),
    )
    op.create_table(
        "reconciliation_counts",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("source_table", sa.String(length=100), nullable=False),
        sa.Column("extracted", sa.BigInteger(), nullable=False),
        sa.Column("decided", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("excluded", sa.BigInteger(), nullable=False),
        sa.Column("written", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("verified", sa.BigInteger(), nullable=False),
        sa.Column("mismatched", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "phase", "source_table"),
    )
    op.create_table(
        "record_state",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("source_table", sa.String(length=100), nullable=False),
        sa.Column("source_code", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("source_position", sa.BigInteger(), nullable=True),
        sa.Column("source_deleted", sa.Boolean(), nullable=False),
        sa.Column("extracted_at", sa.String(length=32), nullable=True),
        sa.Column("changed_at", sa.String(length=32), nullable=True),
        sa.Column("decision_phase", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=True),
        sa.Column("notes_json", sa.Text(), nullable=True),
        sa.Column("target_table", sa.String(length=100), nullable=True),
        sa.Column("target_id", sa.String(length=36), nullable=True),
        sa.Column("decided_at", sa.String(length=32), nullable=True),
        sa.Column("write_phase", sa.Integer(), nullable=True),
        sa.Column("write_status", sa.String(length=20), nullable=True),
        sa.Column("write_op", sa.String(length=20), nullable=True),
        sa.Column("write_event_id", sa.String(length=36), nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("written_at", sa.String(length=32), nullable=True),
        sa.Column("check_status", sa.String(length=20), nullable=True),
        sa.Column("mismatched_columns_json", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.String(length=32), nullable=True),
        sa.Column("rollback_status", sa.String(length=20), nullable=True),
        sa.Column("rolled_back_at", sa.String(length=32), nullable=True),
        sa.Column("last_event_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "source_key"),
    )
    op.create_index(
        "record_state_by_decision", "record_state", ["run_id", "decision_phase"], unique=False
    )
    op.create_index(
        "record_state_by_target", "record_state", ["target_table", "target_id"], unique=False
    )
    op.create_index(
        "record_state_by_write", "record_state", ["run_id", "write_phase"], unique=False
    )
    op.create_table(
        "rollback_plan",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("target_table", sa.String(length=100), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("table_rank", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("before_image_json", sa.Text(), nullable=True),
        sa.Column("before_image_at", sa.String(length=32), nullable=True),
        sa.Column("before_image_event_id", sa.String(length=36), nullable=True),
        sa.Column("first_write_at", sa.String(length=32), nullable=False),
        sa.Column("written", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "target_table", "target_id"),
    )
    op.create_index(
        "rollback_plan_by_order", "rollback_plan", ["run_id", "phase", "table_rank"], unique=False
    )


def downgrade() -> None:
    """Drop the read-model tables."""
    op.drop_index("rollback_plan_by_order", table_name="rollback_plan")
    op.drop_table("rollback_plan")
    op.drop_index("record_state_by_write", table_name="record_state")
    op.drop_index("record_state_by_target", table_name="record_state")
    op.drop_index("record_state_by_decision", table_name="record_state")
    op.drop_table("record_state")
    op.drop_table("reconciliation_counts")
    op.drop_table("phase_gates")
    op.drop_index("id_map_by_target", table_name="id_map")
    op.drop_table("id_map")
    op.drop_table("event_throughput")
    op.drop_index("delta_state_by_table", table_name="delta_state")
    op.drop_table("delta_state")
