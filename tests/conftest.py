"""Fixtures that give tests real services: Apache Kafka, PostgreSQL, and fresh SQLite files.

Each service comes, in this order, from an URL in the environment (CRMLEDGER_TEST_KAFKA,
CRMLEDGER_TEST_DB_URL), from testcontainers where a Docker engine answers, or from a local process
started for the test session (see tests/services.py and scripts/).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker for the whole session."""
    with services.kafka_bootstrap() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """SQLAlchemy URL of a real PostgreSQL server for the whole session."""
    with services.postgres_url() as url:
        yield url


@pytest.fixture
def postgres_db_url(postgres_server: str) -> str:
    """SQLAlchemy URL of a new, empty PostgreSQL database for one test."""
    return services.fresh_postgres_database(postgres_server, f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a new SQLite projection database for one test."""
    return f"sqlite:///{tmp_path / 'projections.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh projection database, once on SQLite and once on a real PostgreSQL."""
    name = "sqlite_db_url" if request.param == "sqlite" else "postgres_db_url"
    return str(request.getfixturevalue(name))
