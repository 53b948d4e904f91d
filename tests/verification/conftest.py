"""An emulator over https with one owner to bind, and helpers that build a run's events by hand.

The emulator is this folder's own (session-wide, limits off, one seeded user), started with the
settings helper of tests/dataverse/conftest.py, so the client authenticates through msal exactly
as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from consumers.dataverse.client import DataverseClient, client_from_settings
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator
from ledger.event_types import (
    DestinationWriteFailed,
    DestinationWritten,
    RecordRejected,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event, EventPayload
from ledger.log import EventLog, open_log
from tests.dataverse.conftest import settings_for

OWNER_EMAIL = "verify.owner@example.com"
RUN = "verify-test"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    """One emulator for the folder: TLS, limits off, one enabled user to own records."""
    config = EmulatorConfig(
        limits_enabled=False,
        tls=True,
        tls_dir=tmp_path_factory.mktemp("verify-tls"),
        seed_users=((OWNER_EMAIL, "Vera Owner", False),),
    )
    with start_emulator(config) as running:
        yield running


@pytest.fixture
def client(emulator: RunningEmulator, tmp_path: Path) -> Iterator[DataverseClient]:
    """A client of the folder's emulator, authenticated by msal with the client secret."""
    with client_from_settings(settings_for(emulator, tmp_path)) as connected:
        yield connected


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    """A fresh embedded event log."""
    with open_log(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def event(payload: EventPayload, key: str, *, phase: str | None, cause: str = "1") -> Event:
    """An event of the test run, as a stage would append it."""
    return Event.create(payload, run_id=RUN, key=key, cause=cause, phase=phase)


def extracted(key: str) -> Event:
    """The SourceRecordExtracted of ``key`` (``Kunden:1``)."""
    table, code = key.split(":", 1)
    payload = SourceRecordExtracted(
        table=table, source_key=code, raw={}, normalised={}, content_hash=key
    )
    return event(payload, key, phase="extract")


def decided(
    key: str,
    phase: int,
    table: str,
    target_id: str,
    payload: dict[str, Any],
    binds: dict[str, str] | None = None,
) -> Event:
    """A TransformDecided of ``key`` in ``phase``."""
    decision = TransformDecided(
        target_table=table, target_id=target_id, payload=payload, binds=binds or {}
    )
    return event(decision, key, phase=str(phase))


def rejected(key: str, phase: int, *reasons: str) -> Event:
    """A RecordRejected of ``key``; ``reasons`` are reason texts (``"code: message"``)."""
    return event(RecordRejected(reasons={"(record)": list(reasons)}), key, phase=str(phase))


def written(
    key: str,
    phase: int,
    table: str,
    target_id: str,
    op: Literal["create", "update"] = "create",
    cause: str = "1",
) -> Event:
    """A DestinationWritten of ``key``."""
    payload = DestinationWritten(target_table=table, target_id=target_id, op=op)
    return event(payload, key, phase=str(phase), cause=cause)


def failed(key: str, phase: int, table: str, target_id: str) -> Event:
    """A DestinationWriteFailed of ``key``."""
    payload = DestinationWriteFailed(
        target_table=table, target_id=target_id, status=400, error_code="0x0", message="bad"
    )
    return event(payload, key, phase=str(phase))
