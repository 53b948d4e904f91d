"""``crmledger schema plan`` and ``crmledger schema apply``: provision what the map needs.

Both read the Dataverse settings (``dataverse_url``, ``tenant_id`` or ``authority_url``,
``client_id``, ``client_secret`` or ``certificate_path``, optionally ``dataverse_ca_file``) from
crmledger.toml or CRMLEDGER_* variables. Every failure ends with one clear line and exit code 1,
never a traceback; secrets are never printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from consumers.dataverse.client import DataverseClient, client_from_settings
from consumers.dataverse.errors import DataverseClientError
from consumers.dataverse.metadata import MetadataApi
from ledger.events import EventDecodeError
from ledger.log import EventLog, LogError, open_log
from ledger.settings import Settings
from producers.mapping.gate import confirmations, require_confirmed
from producers.mapping.model import MapError, MigrationMap, load_map
from producers.mapping.schema import SchemaPlan, apply, plan

schema_app = typer.Typer(
    help="Provision the custom tables, columns and alternate keys the map needs in Dataverse.",
    no_args_is_help=True,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

MapOption = Annotated[
    Path | None,
    typer.Option("--map", help="The map file (YAML); default: the map crmledger ships."),
]


@schema_app.command("plan")
def plan_command(map_file: MapOption = None) -> None:
    """Print the changes the map needs that Dataverse does not have yet (changes nothing).

    Works on an unconfirmed map too, and says so; exit code 1 when the plan has problems.
    """
    with _clean_errors():
        settings = _settings()
        migration_map = _load(map_file)
        with _open_log(settings) as log:
            confirmed = migration_map.content_hash in confirmations(log)
        with _client(settings) as client:
            schema_plan = plan(migration_map, MetadataApi(client))
    _print_plan(schema_plan, settings)
    if not confirmed:
        _out.print(
            f"note: the map (hash {migration_map.content_hash[:12]}) is not confirmed; "
            "'crmledger schema apply' refuses it until 'crmledger map confirm MAP --by NAME'."
        )
    if schema_plan.problems:
        raise typer.Exit(1)


@schema_app.command("apply")
def apply_command(
    map_file: MapOption = None,
    run_id: Annotated[str, typer.Option("--run", help="Run the changes are recorded in.")] = "main",
    key_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for each alternate key's index.")
    ] = 600.0,
) -> None:
    """Create the planned tables, columns and keys; record each as SchemaChangeApplied.

    The map must be confirmed. Running it again changes nothing.
    """
    with _clean_errors():
        settings = _settings()
        migration_map = _load(map_file)
        with _open_log(settings) as log:
            require_confirmed(log, migration_map)
            with _client(settings) as client:
                metadata = MetadataApi(client)
                schema_plan = plan(migration_map, metadata)
                _print_plan(schema_plan, settings)
                if schema_plan.empty:
                    _out.print("nothing to change: Dataverse already has what the map needs")
                    return
                events = apply(schema_plan, metadata, log, run_id, key_timeout_s=key_timeout)
    _out.print(
        f"applied {len(events)} schema change(s); recorded as SchemaChangeApplied in run "
        f"{run_id!r} of {settings.log_url}"
    )


def _print_plan(schema_plan: SchemaPlan, settings: Settings) -> None:
    title = f"schema plan for {settings.dataverse_url} (map {schema_plan.map_hash[:12]})"
    table = Table("change", "table", "name", "detail", "why", title=title)
    for change in schema_plan.changes:
        table.add_row(change.kind, change.table, change.name, change.detail, change.reason)
    if schema_plan.changes:
        _out.print(table)
    else:
        _out.print(f"{title}: no changes")
    if schema_plan.licence == "professional":
        _out.print(
            f"custom tables: {schema_plan.custom_tables_existing} in the environment, "
            f"{len(schema_plan.new_tables)} planned (Professional licence: at most 15)"
        )
    for note in schema_plan.notes:
        _out.print(f"note: {note}", markup=False)
    for problem in schema_plan.problems:
        _out.print(f"[bold red]problem:[/] {problem}")


def _load(map_file: Path | None) -> MigrationMap:
    if map_file is not None:
        return load_map(map_file)
    try:
        from producers.mapping.default import default_map
    except ImportError:
        raise MapError("crmledger has no default map yet; pass --map FILE") from None
    shipped: MigrationMap = default_map()
    return shipped


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(1)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Turn every expected failure into one line on stderr and exit code 1."""
    try:
        yield
    except (DataverseClientError, MapError) as error:
        _fail(_escape(str(error)))
    except (LogError, EventDecodeError) as error:
        _fail(_escape(f"event log: {error}"))


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        _fail(_escape(f"invalid settings (crmledger.toml or CRMLEDGER_* variables): {problems}"))
    except ValueError as error:
        _fail(_escape(f"cannot read crmledger.toml: {error}"))


@contextmanager
def _open_log(settings: Settings) -> Iterator[EventLog]:
    with open_log(settings.log_url, partitions=settings.partitions) as log:
        yield log


@contextmanager
def _client(settings: Settings) -> Iterator[DataverseClient]:
    with client_from_settings(settings) as client:
        yield client
