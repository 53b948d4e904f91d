"""A migrated emulator to roll back: the real emulator over TLS, real msal and httpx.

The migration runs once per session into an emulator whose database is a file: before it, a
few accounts and a contact are created in the emulator with the ids the migration decides for
them, so the migration *updates* them (with before-images) rather than creating them. The
content digest taken just before the migration is what a rollback of the whole run must give
back. Every test gets copies of the ledger and the emulator database and an emulator of its own.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from consumers.dataverse.client import DataverseClient, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.migrate import InProcessStages, MigrationRequest, migrate
from consumers.reconcile import GateThresholds
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator
from ledger.event_types import TransformDecided
from ledger.events import Topic
from ledger.log import EventLog, open_log
from ledger.settings import Settings
from producers.mapping.default import default_map
from producers.mapping.stage import transform_run
from producers.work4all.cli import ExportForm, generate
from tests.migration.conftest import CLIENT_ID, prepare

RUN = "rb"
CUSTOMERS = 40
PRE_EXISTING_ACCOUNTS = 3


@dataclass(frozen=True)
class Baseline:
    """The migrated state every test starts from (files to copy) and what came before it."""

    folder: Path
    users: tuple[tuple[str, str, bool], ...]
    digest_before: str
    """the emulator's content digest just before the migration (pre-existing rows included)."""
    updated_accounts: tuple[str, ...]
    updated_contact: str


@dataclass
class Migrated:
    """One test's copy of the migrated state: a running emulator, settings, log and client."""

    emulator: RunningEmulator
    settings: Settings
    secret: str
    log: EventLog
    client: DataverseClient
    baseline: Baseline

    def inspect(self, what: str) -> Any:
        """A route of the emulator's inspection API."""
        assert self.emulator.cert_path is not None
        context = ssl.create_default_context(cafile=str(self.emulator.cert_path))
        url = self.emulator.root_url.rstrip("/") + "/_emulator/" + what
        response = httpx.get(url, verify=context, timeout=30)
        response.raise_for_status()
        return response.json()

    def digest(self) -> str:
        """The content digest (what rows hold, not when they were written)."""
        return str(self.inspect("digest?content=true")["digest"])

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {str(name): int(count) for name, count in self.inspect("counts").items()}

    def environment(self) -> dict[str, str]:
        """CRMLEDGER_* variables pointing a crmledger process at this emulator and ledger."""
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


def _emulator(db: Path, tls_dir: Path, users: tuple[tuple[str, str, bool], ...], secret: str) -> (
    RunningEmulator
):  # fmt: skip
    config = EmulatorConfig(
        db_path=db, tls=True, tls_dir=tls_dir, clients={CLIENT_ID: secret}, seed_users=users
    )
    return start_emulator(config)


def _settings(emulator: RunningEmulator, folder: Path, secret: str) -> Settings:
    return Settings(
        log_url=f"sqlite:///{folder / 'ledger.db'}",
        db_url=f"sqlite:///{folder / 'projections.db'}",
        dataverse_url=emulator.root_url.rstrip("/"),
        authority_url=emulator.authority,
        client_id=CLIENT_ID,
        client_secret=SecretStr(secret),
        dataverse_ca_file=emulator.cert_path,
    )


def _decided(log: EventLog, table: str) -> list[dict[str, Any]]:
    return [
        stored.event.payload
        for stored in log.read([Topic.DECISIONS])
        if stored.event.run_id == RUN
        and stored.event.type == TransformDecided.event_type
        and stored.event.payload["target_table"] == table
    ]


def _pre_create(client: DataverseClient, log: EventLog) -> tuple[tuple[str, ...], str]:
    """Rows that exist before the run with the ids it decides: it updates them."""
    accounts = _decided(log, "account")[:PRE_EXISTING_ACCOUNTS]
    for number, decided in enumerate(accounts):
        client.post(
            "accounts",
            {
                "accountid": decided["target_id"],
                "name": f"Vorher GmbH {number}",
                "telephone1": f"+49 30 {number:04d}",
                "description": "created before the migration",
            },
        )
    contact = next(c for c in _decided(log, "contact") if "parentcustomerid_account" in c["binds"])
    # no parent account: restoring it clears the lookup the migration sets
    client.post(
        "contacts",
        {"contactid": contact["target_id"], "lastname": "Vorher", "firstname": "Erika"},
    )
    return tuple(a["target_id"] for a in accounts), str(contact["target_id"])


@pytest.fixture(scope="session")
def rollback_tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the emulators' self-signed certificate is generated once."""
    return tmp_path_factory.mktemp("rollback-tls")


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory, rollback_tls_dir: Path) -> Baseline:
    """Generate, extract, transform; pre-create rows; migrate every phase; keep the files."""
    folder = tmp_path_factory.mktemp("rollback-baseline")
    export = folder / "export"
    generate(out=str(export), customers=CUSTOMERS, form=ExportForm.SQL, seed=11, quiet=True)
    with open_log(f"sqlite:///{folder / 'ledger.db'}") as log:
        users = prepare(log, export / "work4all.db", RUN)
        transform_run(log, default_map(), run_id=RUN, files=export)
    secret = secrets.token_urlsafe(24)
    with _emulator(folder / "emulator.db", rollback_tls_dir, users, secret) as emulator:
        settings = _settings(emulator, folder, secret)
        with (
            open_log(settings.log_url) as log,
            client_from_settings(settings) as client,
            client_from_settings(settings) as writer,
        ):
            accounts, contact = _pre_create(client, log)
            digest = _digest(emulator)
            # the synthetic export's planted orphan contacts are a large share of few contacts
            thresholds = replace(GateThresholds(), max_rejected_share=0.5)
            summary = migrate(
                log, client, default_map(),
                MigrationRequest(export="", run_id=RUN, thresholds=thresholds),
                stages=InProcessStages(writer, Throttle()),
            )  # fmt: skip
    assert summary.passed, summary.stopped
    return Baseline(folder, users, digest, accounts, contact)


def _digest(emulator: RunningEmulator) -> str:
    assert emulator.cert_path is not None
    context = ssl.create_default_context(cafile=str(emulator.cert_path))
    url = emulator.root_url.rstrip("/") + "/_emulator/digest?content=true"
    return str(httpx.get(url, verify=context, timeout=30).json()["digest"])


@pytest.fixture
def migrated(baseline: Baseline, rollback_tls_dir: Path, tmp_path: Path) -> Iterator[Migrated]:
    """A copy of the migrated ledger and emulator database, served by an emulator of its own."""
    for name in ("ledger.db", "emulator.db"):
        for suffix in ("", "-wal", "-shm"):
            source = baseline.folder / (name + suffix)
            if source.exists():
                shutil.copyfile(source, tmp_path / (name + suffix))
    secret = secrets.token_urlsafe(24)
    with _emulator(tmp_path / "emulator.db", rollback_tls_dir, baseline.users, secret) as emulator:
        settings = _settings(emulator, tmp_path, secret)
        with open_log(settings.log_url) as log, client_from_settings(settings) as client:
            yield Migrated(emulator, settings, secret, log, client, baseline)
