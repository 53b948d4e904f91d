"""Alembic environment and versions for the projection schema."""
