"""A generated work4all export, an emulator seeded with its users, and a way to migrate it.

One 100-customer export serves the session; every test gets its own ledger and a fresh
emulator (over TLS, with a client secret of its own), so tests never see each other's rows.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from consumers.migrate_cli import demo_users
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator
from ledger.log import EventLog, open_log
from ledger.settings import Settings
from producers.extract import extract
from producers.mapping.default import default_map
from producers.mapping.gate import confirm
from producers.work4all.cli import ExportForm, generate

CUSTOMERS = 100
CLIENT_ID = "crmledger-tests"


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded 100-customer export with the default defects (SQLite form)."""
    folder = tmp_path_factory.mktemp("export")
    generate(out=str(folder), customers=CUSTOMERS, form=ExportForm.SQL, quiet=True)
    return folder / "work4all.db"


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators' self-signed certificate is generated once."""
    return tmp_path_factory.mktemp("tls")


@dataclass
class Target:
    """A running emulator and the settings that reach it."""

    emulator: RunningEmulator
    settings: Settings
    secret: str

    def counts(self) -> dict[str, int]:
        """Rows per table, from the emulator's inspection API."""
        return {name: int(count) for name, count in self._get("/_emulator/counts").items()}

    def digest(self) -> str:
        """The emulator's content digest."""
        return str(self._get("/_emulator/digest")["digest"])

    def _get(self, path: str) -> Any:
        assert self.emulator.cert_path is not None
        context = ssl.create_default_context(cafile=str(self.emulator.cert_path))
        response = httpx.get(self.emulator.root_url.rstrip("/") + path, verify=context)
        response.raise_for_status()
        return response.json()

    def environment(self) -> dict[str, str]:
        """CRMLEDGER_* variables that point a crmledger process at this emulator."""
        values = self.settings
        return {
            "CRMLEDGER_LOG_URL": values.log_url,
            "CRMLEDGER_DB_URL": values.db_url,
            "CRMLEDGER_DATAVERSE_URL": str(values.dataverse_url),
            "CRMLEDGER_AUTHORITY_URL": str(values.authority_url),
            "CRMLEDGER_CLIENT_ID": CLIENT_ID,
            "CRMLEDGER_CLIENT_SECRET": self.secret,
            "CRMLEDGER_DATAVERSE_CA_FILE": str(values.dataverse_ca_file),
        }


def prepare(log: EventLog, export: Path, run_id: str) -> tuple[tuple[str, str, bool], ...]:
    """Extract the export into ``run_id``, confirm the default map; the users to seed."""
    extract(export, log, run_id=run_id)
    migration_map = default_map()
    confirm(log, migration_map, by="tests")
    return demo_users(log, run_id, migration_map.settings.fallback_owner)


@contextmanager
def target_for(
    export: Path, tls_dir: Path, *, log_url: str, db_url: str, run_id: str
) -> Iterator[Target]:
    """Extract ``export`` into ``run_id`` of ``log_url``, confirm the default map, and serve an
    emulator seeded with the export's users; settings point at both."""
    with open_log(log_url) as log:
        users = prepare(log, export, run_id)
    secret = secrets.token_urlsafe(24)
    config = EmulatorConfig(
        tls=True, tls_dir=tls_dir, clients={CLIENT_ID: secret}, seed_users=users
    )
    with start_emulator(config) as emulator:
        settings = Settings(
            log_url=log_url,
            db_url=db_url,
            dataverse_url=emulator.root_url.rstrip("/"),
            authority_url=emulator.authority,
            client_id=CLIENT_ID,
            client_secret=SecretStr(secret),
            dataverse_ca_file=emulator.cert_path,
        )
        yield Target(emulator, settings, secret)


@pytest.fixture
def embedded(export: Path, tls_dir: Path, tmp_path: Path) -> Iterator[Target]:
    """The embedded deployment: SQLite log and projections under tmp_path, a fresh emulator."""
    with target_for(
        export, tls_dir, log_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        db_url=f"sqlite:///{tmp_path / 'projections.db'}", run_id="e2e",
    ) as target:  # fmt: skip
        yield target
