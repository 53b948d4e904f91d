"""The ``crmledger`` command line."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from consumers.audit_cli import audit_app
from consumers.delta_cli import delta_command
from consumers.migrate_cli import migrate_command, worker_app
from consumers.rollback_cli import rollback_command
from consumers.verify_cli import verify_command
from consumers.write_cli import write_command
from dataverse_emulator.cli import emulator_app
from ledger import __version__
from ledger.events import EventDecodeError, Topic
from ledger.log import EventLog, LogError, advance, open_log
from ledger.settings import Settings
from ledger.synthetic import synthetic_run
from producers.inventory_cli import inventory_command
from producers.mapping.cli import map_app
from producers.mapping.schema_cli import schema_app
from producers.mapping.transform_cli import transform_command
from producers.work4all.cli import generate
from projections.reconcile_cli import reconcile_command

app = typer.Typer(
    name="crmledger",
    help="An event-sourced migration ledger from work4all to Microsoft Dynamics 365 Sales.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
log_app = typer.Typer(help="Read the event log.", no_args_is_help=True)
projections_app = typer.Typer(help="Build the read models from the log.", no_args_is_help=True)
config_app = typer.Typer(help="Show the settings in effect.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(projections_app, name="projections")
app.add_typer(config_app, name="config")
app.add_typer(emulator_app, name="emulator")
app.add_typer(map_app, name="map")
app.add_typer(schema_app, name="schema")
app.command("generate")(generate)
app.command("transform")(transform_command)
app.command("write")(write_command)
app.command("verify")(verify_command)
app.command("reconcile")(reconcile_command)
app.command("migrate")(migrate_command)
app.command("rollback")(rollback_command)
app.command("delta")(delta_command)
app.add_typer(audit_app, name="audit")
app.command("inventory")(inventory_command)
app.add_typer(worker_app, name="worker")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        _fail(f"invalid settings (crmledger.toml or CRMLEDGER_* variables): {problems}")
    except ValueError as error:  # an unreadable crmledger.toml
        _fail(f"cannot read crmledger.toml: {error}")


@contextmanager
def _open_log(settings: Settings) -> Iterator[EventLog]:
    try:
        with open_log(settings.log_url, partitions=settings.partitions) as log:
            yield log
    except (LogError, EventDecodeError) as error:
        _fail(f"event log {settings.log_url}: {error}")


def _engine(settings: Settings) -> Engine:
    from projections.db import create_db_engine, upgrade

    try:
        engine = create_db_engine(settings.db_url)
        upgrade(engine)
    except (SQLAlchemyError, ValueError) as error:
        _fail(f"projection database {settings.db_url}: {error}")
    return engine


def _version(value: bool) -> None:
    if value:
        _out.print(f"crmledger {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Every extracted record, transform decision and Dataverse write is an immutable event.

    Settings come from crmledger.toml in the working directory and CRMLEDGER_* variables
    (see `crmledger config show`).
    """


@config_app.command("show")
def config_show() -> None:
    """Print the settings in effect, secrets masked."""
    for name, value in _settings().redacted().items():
        _out.print(f"{name} = {value!r}")


TopicOption = Annotated[
    list[Topic] | None,
    typer.Option("--topic", "-t", help="Only these topics (repeatable); default all."),
]


@log_app.command("tail")
def log_tail(
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="Print the last N events; 0 prints all.")
    ] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events as they arrive.")
    ] = False,
    topic: TopicOption = None,
    interval: Annotated[
        float, typer.Option(help="Seconds between checks for new events with --follow.")
    ] = 0.5,
) -> None:
    """Print events as one JSON line each (the last 10 by default)."""
    settings = _settings()
    topics = topic or list(Topic)
    with _open_log(settings) as log:
        position = log.end_position(topics)
        events = log.read(topics, {})
        shown = deque(events, maxlen=lines) if lines else events
        for stored in shown:
            print(stored.event.to_json())
        if not follow:
            return
        sys.stdout.flush()
        try:
            while True:
                new = list(log.read(topics, position))
                for stored in new:
                    print(stored.event.to_json(), flush=True)
                position = advance(position, new)
                if not new:
                    time.sleep(interval)
        except KeyboardInterrupt:
            return


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )


def _run_projections(rebuild: bool) -> None:
    from projections.runner import ProjectionRunner
    from projections.tables import event_counts

    settings = _settings()
    engine = _engine(settings)
    with _open_log(settings) as log:
        runner = ProjectionRunner(log, engine)
        with _progress() as progress:
            task = progress.add_task("projecting", total=None)

            def advance_bar(count: int) -> None:
                progress.advance(task, count)

            started = time.perf_counter()
            applied = runner.rebuild(advance_bar) if rebuild else runner.run(advance_bar)
            seconds = time.perf_counter() - started
    with engine.connect() as connection:
        rows = connection.execute(
            select(event_counts).order_by(
                event_counts.c.run_id, event_counts.c.type, event_counts.c.key_prefix
            )
        ).all()
    engine.dispose()
    table = Table("run", "type", "key prefix", "events", title="event counts")
    for run_id, type_, prefix, count in rows:
        table.add_row(run_id, type_, prefix, f"{count:,}")
    _out.print(table)
    rate = applied / seconds if seconds else 0.0
    _out.print(
        f"applied {applied:,} events in {seconds:.1f} s ({rate:,.0f} events/s);"
        f" {sum(row[3] for row in rows):,} events counted"
    )


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Drop every projection's rows and rebuild them from the log; print the counts."""
    _run_projections(rebuild=True)


@projections_app.command("run")
def projections_run() -> None:
    """Apply the events the projections have not seen yet; print the counts."""
    _run_projections(rebuild=False)


@log_app.command("synthetic")
def log_synthetic(
    events: Annotated[
        int, typer.Option(min=10, help="About how many events the synthetic run records.")
    ] = 2000,
    run_id: Annotated[str, typer.Option("--run", help="Run id of the synthetic run.")] = "demo",
) -> None:
    """Append a synthetic run (events shaped like a migration) and project it.

    For trying the log and the projections at any size: no export is read and no Dataverse
    is written.
    """
    settings = _settings()
    with _open_log(settings) as log, _progress() as progress:
        task = progress.add_task("appending", total=events)
        stream = synthetic_run(run_id, events)
        while batch := list(islice(stream, 1000)):
            log.append(batch)
            progress.advance(task, len(batch))
    _err.print(f"appended a synthetic run {run_id!r} to {settings.log_url}")
    _run_projections(rebuild=False)


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option(min=1, help="Size of the synthetic work4all Mandant.")
    ] = 200,
    workdir: Annotated[Path, typer.Option(help="Where the demo export is written.")] = Path(
        ".crmledger/demo-export"
    ),
) -> None:
    """Migrate a synthetic work4all Mandant into a local Dataverse emulator, end to end.

    Generates a seeded export (with data-quality defects) into WORKDIR, extracts it, starts the
    bundled Dataverse emulator in this process over TLS (certificate and database in
    .crmledger/, users seeded from the export's Mitarbeiter), confirms the default map as
    "crmledger demo", then transforms, applies the schema and writes, verifies and reconciles
    every phase behind its gate. Prints the reconciliation summary and the emulator's row counts,
    and stops the emulator. Running it again resumes the same run ("demo"); delete .crmledger/
    to start over.
    """
    from consumers.migrate_cli import demo_run

    demo_run(customers, workdir, Path(".crmledger"), _settings())


@app.command()
def extract(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    run_id: Annotated[str, typer.Option("--run", help="Run the records belong to.")] = "main",
) -> None:
    """Append one SourceRecordExtracted event per work4all record to the event log.

    Extracting the same export again in the same run appends nothing new.
    """
    from producers.extract import extract as extract_export
    from producers.work4all.errors import ExportError

    settings = _settings()
    with _open_log(settings) as log, _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def advance_table(table: str, count: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=None)
            progress.advance(tasks[table], count)

        try:
            summary = extract_export(export, log, run_id=run_id, progress=advance_table)
        except ExportError as error:
            _fail(str(error))
    table = Table("table", "records", "findings", title=f"extracted from {export}")
    for name, count in summary.records.items():
        table.add_row(name, f"{count:,}", f"{summary.findings.get(name, 0):,}")
    _out.print(table)
    _out.print(f"{summary.total:,} records extracted into run {run_id!r} of {settings.log_url}")


@app.command("export-spec")
def export_spec(
    out: Annotated[
        str | None,
        typer.Option("--out", help="Write to FILE (JSON when it ends in .json); default stdout."),
    ] = None,
) -> None:
    """Print the export specification to send the work4all vendor (Markdown or JSON).

    Every table and column crmledger needs, with type, key, required flag, the custom-field
    tables, and the accepted forms (SQL database, CSV, Excel).
    """
    from producers.export_spec import write_spec

    target = Path(out) if out is not None else None
    try:
        text = write_spec(target)
    except OSError as error:
        _fail(f"{out}: {error.strerror}")
    if target is None:
        sys.stdout.write(text)
    else:
        _err.print(f"wrote the export specification to {target}")


@app.command("sample-check")
def sample_check(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="Records sampled per table.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same sample.")] = 0,
) -> None:
    """Accept or reject an export from a random sample of each table; a verdict per table.

    A table fails when it is missing, unreadable, lacks a required column, or a sampled
    record has an error (a value that was lost); warnings do not fail it. Exit code 0 when
    every table passes, 1 when any fails, 2 when the export cannot be read at all.
    """
    from producers.sample_check import sample_check as check_export
    from producers.work4all.errors import ExportError

    try:
        report = check_export(export, n=n, seed=seed)
    except ExportError as error:
        _fail(str(error))
    table = Table("table", "rows", "sampled", "verdict", "reason", title=f"sample of {export}")
    for verdict in report.verdicts:
        mark = "[green]pass[/]" if verdict.passed else "[bold red]FAIL[/]"
        rows, sampled = f"{verdict.rows:,}", f"{verdict.sampled:,}"
        table.add_row(verdict.table, rows, sampled, mark, verdict.reason)
    _out.print(table)
    failed = [verdict.table for verdict in report.verdicts if not verdict.passed]
    for verdict in report.verdicts:
        # A missing table's reason already says so; list what failed inside present tables.
        for finding in verdict.errors[:5] if verdict.present else []:
            _out.print(f"  {verdict.table}: {finding}", markup=False)
    if failed:
        _out.print(f"FAIL: {len(failed)} of {len(report.verdicts)} tables: {', '.join(failed)}")
        raise typer.Exit(1)
    _out.print(f"PASS: all {len(report.verdicts)} tables (sample of {n}, seed {seed})")


@app.command()
def discover(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Write report.md/.html/.json by suffix, or all three into a directory."),
    ] = None,
) -> None:
    """Report what an export holds and what must be fixed before migrating it."""
    from producers.discover import discover as discover_export
    from producers.report import to_json, to_markdown, write
    from producers.work4all.errors import ExportError

    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def advance_table(table: str, count: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=None)
            progress.advance(tasks[table], count)

        try:
            report = discover_export(export, progress=advance_table)
        except ExportError as error:
            _fail(str(error))
    if out is not None:
        try:
            written = write(report, out)
        except (OSError, ValueError) as error:
            _fail(str(error))
        for path in written:
            _err.print(f"wrote {path}")
    if as_json:
        print(to_json(report))
    elif out is None:
        print(to_markdown(report), end="")
