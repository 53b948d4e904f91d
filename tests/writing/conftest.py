"""A migrated-so-far ledger (generated export → extract → confirmed default map → transform) and
emulators to write it into, over TLS with real msal and httpx.

The ledger is built once per session; every test writes into a copy of it and an emulator of
its own, seeded with the users the decisions name as owners, with the default map's schema
applied.
"""

from __future__ import annotations

import re
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.dataverse.client import DataverseClient, RetryPolicy, client_from_settings
from consumers.dataverse.metadata import MetadataApi
from dataverse_emulator.server import RunningEmulator
from ledger.events import Topic
from ledger.log import EventLog, open_log
from ledger.settings import Settings
from producers.extract import extract
from producers.mapping.default import default_map
from producers.mapping.gate import confirm
from producers.mapping.schema import apply, plan
from producers.mapping.stage import transform_run
from producers.work4all.cli import ExportForm, generate
from tests.dataverse.conftest import (  # noqa: F401  (fixtures)
    StartEmulator,
    settings_for,
    start,
    tls_dir,
)

RUN = "w"
CUSTOMERS = 100
SEED = 7
_USER_BIND = re.compile(r"^/systemusers\(internalemailaddress='((?:[^']|'')*)'\)$")


@dataclass(frozen=True)
class Migrated:
    """A ledger holding a run's decisions, and the owners they name."""

    ledger: Path
    export: Path
    owners: tuple[str, ...]


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Migrated:
    """Generate, extract and transform a 100-customer export under the default map, once."""
    root = tmp_path_factory.mktemp("migrated")
    export = root / "export"
    generate(out=str(export), customers=CUSTOMERS, form=ExportForm.SQL, seed=SEED, quiet=True)
    ledger = root / "ledger.db"
    migration_map = default_map()
    owners: set[str] = set()
    with open_log(f"sqlite:///{ledger}") as log:
        extract(export / "work4all.db", log, run_id=RUN)
        confirm(log, migration_map, by="test")
        transform_run(log, migration_map, run_id=RUN, files=export)
        for stored in log.read([Topic.DECISIONS]):
            for reference in stored.event.payload.get("binds", {}).values():
                match = _USER_BIND.match(reference)
                if match:
                    owners.add(match.group(1).replace("''", "'"))
    return Migrated(ledger, export, tuple(sorted(owners)))


@dataclass
class Target:
    """An emulator with the schema applied, a ledger copy, and a client of it."""

    emulator: RunningEmulator
    settings: Settings
    log: EventLog
    client: DataverseClient

    def inspect(self, what: str) -> Any:
        """A route of the emulator's inspection API."""
        assert self.emulator.cert_path is not None
        context = ssl.create_default_context(cafile=str(self.emulator.cert_path))
        return httpx.get(f"{self.emulator.root_url}_emulator/{what}", verify=context).json()

    def digest(self) -> str:
        """The content digest of everything the emulator holds."""
        return str(self.inspect("digest?content=true")["digest"])


OpenTarget = Callable[..., AbstractContextManager[Target]]


@contextmanager
def target(
    launch: StartEmulator, migrated: Migrated, directory: Path, name: str = "target", **options: Any
) -> Iterator[Target]:
    """An emulator seeded with the run's owners, a copy of the ledger, the schema applied."""
    ledger = directory / f"{name}.db"
    shutil.copyfile(migrated.ledger, ledger)
    users = tuple((email, f"User {email.split('@')[0]}", False) for email in migrated.owners)
    with launch(seed_users=users, **options) as emulator:
        settings = settings_for(emulator, directory, log_url=f"sqlite:///{ledger}")
        with (
            open_log(settings.log_url) as log,
            client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as client,
        ):
            metadata = MetadataApi(client)
            apply(plan(default_map(), metadata), metadata, log, RUN)
            yield Target(emulator, settings, log, client)


@pytest.fixture
def open_target(start: StartEmulator, migrated: Migrated, tmp_path: Path) -> OpenTarget:  # noqa: F811
    """Opens :func:`target` s for one test, under its tmp_path."""

    def run(name: str = "target", **options: Any) -> AbstractContextManager[Target]:
        return target(start, migrated, tmp_path, name, **options)

    return run
