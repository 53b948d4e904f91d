"""What the ``migrate``, ``demo`` and ``worker`` commands share: settings, errors, connections.

Every expected failure becomes one line on stderr and an exit code (1, or 2 for bad settings),
never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from consumers.dataverse.client import DataverseClient, RetryPolicy, client_from_settings
from consumers.dataverse.errors import DataverseClientError
from ledger.events import EventDecodeError
from ledger.log import EventLog, LogError, open_log
from ledger.settings import Settings, UnknownTargetError
from producers.mapping.model import MapError, MigrationMap, load_map
from producers.work4all.errors import ExportError

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
