"""Real emulators over https for the Dataverse client and schema tests, and settings for them.

Like tests/emulator/conftest.py, but the emulators here are started per test where a test changes
the schema, so that every test sees a fresh environment; one certificate serves them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.dataverse.client import DataverseClient, client_from_settings
from dataverse_emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator
from ledger.settings import Settings

StartEmulator = Callable[..., AbstractContextManager[RunningEmulator]]


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators' self-signed certificate is generated once for the session."""
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def start(tls_dir: Path) -> StartEmulator:
    """Start an emulator with TLS and limits off; keyword arguments go to EmulatorConfig."""

    @contextmanager
    def run(**options: Any) -> Iterator[RunningEmulator]:
        config = EmulatorConfig(
            **{"limits_enabled": False, "tls": True, "tls_dir": tls_dir, **options}
        )
        with start_emulator(config) as running:
            yield running

    return run


@pytest.fixture(scope="session")
def emulator(start: StartEmulator) -> Iterator[RunningEmulator]:
    """One emulator for tests that only read or add rows."""
    with start() as running:
        yield running


@pytest.fixture
def fresh_emulator(start: StartEmulator) -> Iterator[RunningEmulator]:
    """An emulator of this test's own, for tests that change the schema."""
    with start() as running:
        yield running


def settings_for(emulator: RunningEmulator, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings that point crmledger at ``emulator``, with the ledger under ``tmp_path``."""
    values: dict[str, Any] = {
        "dataverse_url": emulator.root_url.rstrip("/"),
        "authority_url": emulator.authority,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": SecretStr(DEFAULT_CLIENT_SECRET),
        "dataverse_ca_file": emulator.cert_path,
        "log_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        **overrides,
    }
    return Settings(**values)


def environment_for(emulator: RunningEmulator, tmp_path: Path) -> dict[str, str]:
    """CRMLEDGER_* variables that point the command line at ``emulator``."""
    assert emulator.cert_path is not None
    return {
        "CRMLEDGER_DATAVERSE_URL": emulator.root_url.rstrip("/"),
        "CRMLEDGER_AUTHORITY_URL": emulator.authority,
        "CRMLEDGER_CLIENT_ID": DEFAULT_CLIENT_ID,
        "CRMLEDGER_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "CRMLEDGER_DATAVERSE_CA_FILE": str(emulator.cert_path),
        "CRMLEDGER_LOG_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }


@pytest.fixture
def client(emulator: RunningEmulator, tmp_path: Path) -> Iterator[DataverseClient]:
    """A client of the shared emulator, authenticated by msal with the client secret."""
    with client_from_settings(settings_for(emulator, tmp_path)) as connected:
        yield connected
