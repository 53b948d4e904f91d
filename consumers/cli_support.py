"""What the ``migrate``, ``demo`` and ``worker`` commands share: settings, errors, connections.

Also :func:`demo_emulator`, the demo's Dataverse emulator, which ``demo`` and the ``--demo``
option of ``rollback``, ``reconcile`` and ``verify`` start in-process on the demo's database.

Every expected failure becomes one line on stderr and an exit code (1, or 2 for bad settings),
never a traceback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console

from consumers.dataverse.client import DataverseClient, RetryPolicy, client_from_settings
from consumers.dataverse.errors import DataverseClientError
from ledger.events import EventDecodeError
from ledger.log import EventLog, LogError, open_log
from ledger.settings import Settings, UnknownTargetError
from producers.mapping.model import MapError, MigrationMap, load_map
from producers.work4all.errors import ExportError

if TYPE_CHECKING:
    from dataverse_emulator.server import RunningEmulator

DEMO_STATE_DIR = Path(".crmledger")
"""Where ``crmledger demo`` keeps its emulator database and TLS certificate."""
DEMO_CLIENT_ID = "crmledger-demo"

DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        help="Use the Dataverse emulator of `crmledger demo` (.crmledger/emulator.db),"
        " started in this process for the command.",
    ),
]
"""``--demo``: pass it to :func:`demo_target`."""

err = Console(stderr=True, highlight=False, soft_wrap=True)
"""Progress, notes and errors go to stderr; results to stdout."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {message.replace('[', chr(92) + '[')}")
    raise typer.Exit(code)


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn the errors the stages raise for bad input or a refusing service into :func:`fail`."""
    try:
        yield
    except (MapError, DataverseClientError, ExportError) as error:
        fail(str(error))
    except (LogError, EventDecodeError) as error:
        fail(f"event log: {error}")


def load_settings(target: str | None) -> Settings:
    """The settings in effect, with the Dataverse settings of ``[targets.TARGET]`` if named."""
    try:
        return Settings().for_target(target)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        fail(f"invalid settings (crmledger.toml or CRMLEDGER_* variables): {problems}", 2)
    except UnknownTargetError as error:
        fail(str(error), 2)
    except ValueError as error:
        fail(f"cannot read crmledger.toml: {error}", 2)


def load_migration_map(path: Path | None) -> MigrationMap:
    """The map in ``path``, or the default map crmledger ships."""
    from producers.mapping.default import default_map

    try:
        return load_map(path) if path is not None else default_map()
    except MapError as error:
        fail(str(error))


@contextmanager
def event_log(settings: Settings) -> Iterator[EventLog]:
    """The event log the settings name, closed afterwards."""
    with open_log(settings.log_url, partitions=settings.partitions) as log:
        yield log


@contextmanager
def dataverse_client(
    settings: Settings, *, retry: RetryPolicy | None = None
) -> Iterator[DataverseClient]:
    """A Dataverse client for the settings' environment, closed afterwards."""
    with client_from_settings(settings, retry=retry) as client:
        yield client


@dataclass(frozen=True)
class DemoEmulator:
    """The demo's emulator while it runs, and settings whose Dataverse client reaches it."""

    running: RunningEmulator
    settings: Settings

    def digest(self) -> str:
        """The content digest of every row: equal data gives an equal digest, whenever written."""
        return self.running.emulator.store.digest(content=True)


@contextmanager
def demo_emulator(
    settings: Settings,
    state_dir: Path = DEMO_STATE_DIR,
    *,
    seed_users: tuple[tuple[str, str, bool], ...] = (),
) -> Iterator[DemoEmulator]:
    """Start the bundled emulator in this process over TLS on ``state_dir/emulator.db``.

    A fresh client secret each time, held only in memory: the emulator and the client settings
    are the only ones who know it. The emulator stops afterwards; its database keeps the data.
    """
    from dataverse_emulator.config import EmulatorConfig
    from dataverse_emulator.server import start_emulator

    secret = secrets.token_urlsafe(32)
    config = EmulatorConfig(
        db_path=state_dir / "emulator.db",
        tls=True,
        tls_dir=state_dir / "tls",
        clients={DEMO_CLIENT_ID: secret},
        seed_users=seed_users,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    with start_emulator(config) as running:
        assert running.cert_path is not None  # tls=True always makes one
        err.print(
            f"Dataverse emulator at {running.root_url} (TLS, certificate {running.cert_path})"
        )
        target = settings.model_copy(
            update={
                "dataverse_url": running.root_url.rstrip("/"),
                "tenant_id": None,
                "authority_url": running.authority,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": SecretStr(secret),
                "certificate_path": None,
                "certificate_password": None,
                "dataverse_ca_file": running.cert_path,
            }
        )
        yield DemoEmulator(running, target)


@contextmanager
def demo_target(target: str | None, demo: bool) -> Iterator[tuple[Settings, DemoEmulator | None]]:
    """The settings of ``--target``; with ``--demo``, those reaching the demo's emulator, and it.

    With ``--demo`` the emulator runs while the context is open; its database must exist.
    """
    if demo and target is not None:
        fail("--demo and --target exclude each other", 2)
    settings = load_settings(target)
    if not demo:
        yield settings, None
        return
    database = DEMO_STATE_DIR / "emulator.db"
    if not database.is_file():
        fail(f"no demo emulator database {database}: run crmledger demo first")
    with demo_emulator(settings) as emulator:
        yield emulator.settings, emulator
