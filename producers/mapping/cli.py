"""``crmledger map``: propose a map for an export, confirm it, compare two maps, show one.

- ``map propose EXPORT --out map.yaml`` writes the proposed map and its review
  (``map.review.md``, ``map.review.html``) and appends ``MappingProposed`` to the log.
- ``map confirm MAP --by NAME [--note TEXT]`` appends ``MappingConfirmed`` with the map's hash.
- ``map diff A B`` prints what changed from A to B; the exit code is 0 whether or not the maps
  differ (a diff is a report, not a check), 1 when a map cannot be read.
- ``map show MAP`` prints the hash, the objects and whether the hash is confirmed.

Bad input (a missing export, a map that is not valid YAML or not a valid map, an unreadable log)
ends with one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.event_types import MappingProposed
from ledger.events import Event, EventDecodeError
from ledger.log import EventLog, LogError, open_log
from ledger.settings import Settings
from producers.mapping.diff import diff_maps
from producers.mapping.gate import CONFIRM_RUN, confirm, confirmations
from producers.mapping.model import MapError, MigrationMap, load_map, save_map
from producers.mapping.propose import propose
from producers.mapping.review import write_review
from producers.work4all.errors import ExportError

map_app = typer.Typer(
    help="The map: propose it for an export, review and confirm it, compare versions.",
    no_args_is_help=True,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        _fail(f"invalid settings (crmledger.toml or CRMLEDGER_* variables): {problems}")
    except ValueError as error:
        _fail(f"cannot read crmledger.toml: {error}")


@contextmanager
def _open_log(settings: Settings) -> Iterator[EventLog]:
    try:
        with open_log(settings.log_url, partitions=settings.partitions) as log:
            yield log
    except (LogError, EventDecodeError) as error:
        _fail(f"event log {settings.log_url}: {error}")


def _load(path: Path) -> MigrationMap:
    try:
        return load_map(path)
    except MapError as error:
        _fail(str(error))


@map_app.command("propose")
def propose_command(
    export: Annotated[
        str, typer.Argument(help="The work4all export: a CSV directory, .xlsx, SQLite file or URL.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the proposed map (YAML) goes.")],
    base: Annotated[
        Path | None,
        typer.Option("--base", help="Start from this map instead of the default map."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Propose a map for EXPORT: the default map plus targets for every column it does not know.

    Writes the map to --out, a review next to it (.review.md, .review.html) and appends
    MappingProposed to the event log. Nothing moves until the map is confirmed.
    """
    settings = _settings()
    start = _load(base) if base is not None else None
    if out.exists() and out.is_dir():
        _fail(f"--out {out}: is a directory; give the map file's name (map.yaml)")
    if not out.parent.exists():
        _fail(f"--out {out}: the directory {out.parent} does not exist")
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("sampling tables", total=None)

        def advance(table: str) -> None:
            progress.update(task, advance=1, description=f"sampled {table}")

        try:
            migration_map, proposals = propose(export, base=start, progress=advance)
        except ExportError as error:
            _fail(str(error))
        except MapError as error:
            _fail(str(error))
        except OSError as error:
            _fail(f"{error.filename or export}: {error.strerror}")
    try:
        save_map(migration_map, out)
        markdown, page = write_review(out, migration_map, proposals, export)
    except OSError as error:
        _fail(f"{error.filename or out}: {error.strerror}")
    digest = migration_map.content_hash
    payload = MappingProposed(
        map_hash=digest, map_version=migration_map.map_version, proposals=len(proposals)
    )
    event = Event.create(payload, run_id=CONFIRM_RUN, key=f"map:{digest}", cause=digest)
    with _open_log(settings) as log:
        log.append([event])
    kinds: dict[str, int] = {}
    for proposal in proposals:
        kinds[proposal.kind] = kinds.get(proposal.kind, 0) + 1
    summary = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in kinds.items())
    _out.print(f"map {out} (hash {digest}); {len(proposals)} proposals ({summary or 'none'})")
    _out.print(f"review {markdown} and {page}; then: crmledger map confirm {out} --by NAME")
    missing = kinds.get("missing", 0)
    if missing:
        _out.print(f"warning: {missing} column(s) the map reads are not in the export; see review")


@map_app.command("confirm")
def confirm_command(
    map_file: Annotated[Path, typer.Argument(help="The map (YAML) a person has reviewed.")],
    by: Annotated[str, typer.Option("--by", help="Who confirms the map.")],
    note: Annotated[str, typer.Option("--note", help="Why, or what was checked.")] = "",
) -> None:
    """Confirm MAP: append MappingConfirmed with its content hash; prints the hash."""
    migration_map = _load(map_file)
    settings = _settings()
    with _open_log(settings) as log:
        try:
            confirm(log, migration_map, by=by, note=note)
        except MapError as error:
            _fail(str(error))
    _out.print(f"confirmed {map_file}: hash {migration_map.content_hash} by {by.strip()}")


@map_app.command("diff")
def diff_command(
    before: Annotated[Path, typer.Argument(help="The older map.")],
    after: Annotated[Path, typer.Argument(help="The newer map.")],
) -> None:
    """Show what changed from map A to map B (objects, columns, fields).

    Exit code 0 whether or not they differ; 1 when a map cannot be read.
    """
    old, new = _load(before), _load(after)
    changes = diff_maps(old, new)
    if not changes:
        _out.print(f"no differences (hash {new.content_hash})")
        return
    _out.print(f"{len(changes)} difference(s): {old.content_hash[:12]} → {new.content_hash[:12]}")
    for change in changes:
        _out.print(str(change))


@map_app.command("show")
def show_command(
    map_file: Annotated[Path, typer.Argument(help="The map (YAML).")],
) -> None:
    """Print a map's hash, objects and whether it is confirmed."""
    migration_map = _load(map_file)
    digest = migration_map.content_hash
    with _open_log(_settings()) as log:
        found = confirmations(log).get(digest)
    _out.print(
        f"{map_file}: {migration_map.name or '(unnamed)'} version {migration_map.map_version}"
    )
    _out.print(f"hash {digest}")
    if found is None:
        _out.print("not confirmed: run 'crmledger map confirm MAP --by NAME' after review")
    else:
        confirmation, when = found
        _out.print(f"confirmed by {confirmation.confirmed_by} at {when.isoformat()}")
    table = Table("object", "phase", "target", "sources", "columns", "custom")
    for obj in migration_map.objects:
        table.add_row(
            obj.name,
            str(obj.phase),
            obj.target,
            ", ".join(obj.sources),
            str(len(obj.columns)),
            str(sum(column.custom for column in obj.columns)),
        )
    _out.print(table)
