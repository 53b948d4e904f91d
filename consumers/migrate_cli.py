"""``crmledger migrate`` and ``crmledger demo``: a whole migration with progress and a summary.

Every expected failure (an unconfirmed map, a failed gate, an unreadable export, Dataverse
refusing the credentials, an unknown ``--target``) ends with one line on stderr and exit code 1
(2 for bad settings), never a traceback. Secrets are never printed: the settings carry them as
``SecretStr`` and the demo's emulator secret lives only in memory.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from consumers.cli_support import (
    clean_errors,
    dataverse_client,
    demo_emulator,
    err,
    event_log,
    fail,
    load_migration_map,
    load_settings,
)
from consumers.dataverse.client import RetryPolicy
from consumers.dataverse.throttle import Throttle
from consumers.migrate import (
    InProcessStages,
    MigrationRequest,
    MigrationSummary,
    PhaseStages,
    migrate,
    phase_numbers,
)
from consumers.reconcile import COUNT_NAMES, GateThresholds
from consumers.verify import VerifyError
from consumers.worker_cli import worker_app
from consumers.workers import WorkersStalledError, WorkerStages
from consumers.write import WriteAbortedError
from ledger.log import EventLog
from ledger.settings import Settings
from producers.mapping.gate import MapNotConfirmedError, confirm, confirmations
from producers.mapping.model import MigrationMap

__all__ = ["DEMO_BY", "demo_run", "migrate_command", "worker_app"]

DEMO_BY = "crmledger demo"
"""Who the demo records as having confirmed the default map."""
DEMO_RUN = "demo"
DEMO_MAX_REJECTED_SHARE = 0.25
"""The demo gate's largest share of rejected records per table (see :func:`demo_thresholds`)."""

# The summary table has ten columns: never narrower than that needs, even in a pipe.
_out = Console(highlight=False, width=max(Console().width, 132))
_progress_console = Console(stderr=True, highlight=False, width=max(err.width, 120))


def migrate_command(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    phase: Annotated[
        str, typer.Option("--phase", help="A phase number, or 'all' (in dependency order).")
    ] = "all",
    target: Annotated[
        str | None,
        typer.Option(help="A named Dataverse environment: \\[targets.NAME] of crmledger.toml."),
    ] = None,
    run_id: Annotated[
        str, typer.Option("--run", help="Run the migration is recorded in.")
    ] = "main",
    map_file: Annotated[
        Path | None,
        typer.Option("--map", help="The confirmed map (YAML); default: the shipped default map."),
    ] = None,
    override_gate: Annotated[
        str | None,
        typer.Option(
            "--override-gate",
            help="Start a phase although the gate before it failed; the reason is recorded.",
        ),
    ] = None,
    files: Annotated[
        Path | None,
        typer.Option(help="The export's file store for attachments (default: next to it)."),
    ] = None,
) -> None:
    """Migrate an export: extract, transform, schema, then write, verify and reconcile each phase.

    The map must be confirmed (`crmledger map confirm`). Each phase starts only when the gate
    of the phase before it passed, unless --override-gate gives a reason. Re-running the same
    run resumes: what is done is not done again. Exit code 1 when a gate fails.
    """
    settings = load_settings(target)
    migration_map = load_migration_map(map_file)
    phases = _phases(phase, migration_map)
    if override_gate is not None and not override_gate.strip():
        fail("--override-gate needs a reason")
    request = MigrationRequest(
        export=export, run_id=run_id, phases=phases, override_reason=override_gate, files=files,
        thresholds=GateThresholds.from_settings(settings),
    )  # fmt: skip
    summary = run_migration(settings, migration_map, request)
    print_summary(summary)
    if not summary.passed:
        fail(summary.stopped or "a phase failed its gate")


def run_migration(
    settings: Settings, migration_map: MigrationMap, request: MigrationRequest
) -> MigrationSummary:
    """Run ``request`` with a progress display, then bring the projections up to date.

    On a ``kafka://`` log the phases are written and verified by ``crmledger worker``
    processes (:class:`~consumers.workers.WorkerStages`); otherwise in this process, every
    request paced by one :class:`~consumers.dataverse.throttle.Throttle`.
    """
    with clean_errors(), event_log(settings) as log:
        if migration_map.content_hash not in confirmations(log):
            raise MapNotConfirmedError(
                f"the map (hash {migration_map.content_hash[:12]}) has not been confirmed;"
                " review it, then run 'crmledger map confirm MAP --by NAME'"
            )
        with (
            dataverse_client(settings) as client,
            # retries are the throttle's: it paces them with every other request
            dataverse_client(settings, retry=RetryPolicy(max_retries=0)) as writer,
            _RichDisplay() as display,
        ):
            stages: PhaseStages = (
                WorkerStages()
                if settings.log_url.startswith("kafka://")
                else InProcessStages(writer, Throttle())
            )
            try:
                summary = migrate(
                    log, client, migration_map, request, display=display, stages=stages
                )
            except (VerifyError, WriteAbortedError, WorkersStalledError) as error:
                fail(str(error))
        _project(log, settings)
    return summary


def print_summary(summary: MigrationSummary) -> None:
    """The table of counts per phase and work4all table, with each phase's gate verdict."""
    table = Table(
        "phase", "table", *COUNT_NAMES, "gate",
        title=f"run {summary.run_id!r} (map {summary.map_hash[:12]})",
    )  # fmt: skip
    for outcome in summary.phases:
        verdict = _verdict(outcome.verdict)
        rows = sorted(outcome.counts.items()) or [("", {})]
        for index, (name, counts) in enumerate(rows):
            cells = [f"{counts[c]:,}" if c in counts else "" for c in COUNT_NAMES]
            first = index == 0
            table.add_row(
                str(outcome.phase) if first else "", name, *cells, verdict if first else ""
            )
        table.add_section()
    _out.print(table)
    for outcome in summary.phases:
        if outcome.overridden:
            _out.print(
                f"phase {outcome.phase} started by operator override: {outcome.overridden}",
                markup=False,
            )
        if outcome.resumed:
            _out.print(f"phase {outcome.phase} passed its gate in an earlier invocation")
        for reason in outcome.reasons:
            _out.print(f"phase {outcome.phase}: {reason}", markup=False)
    _out.print(
        f"{summary.extracted:,} records extracted, {len(summary.phases)} phase(s) in"
        f" {summary.seconds:.1f} s; {summary.throttled:,} requests throttled (429)"
    )


def _verdict(verdict: str) -> str:
    if verdict == "passed":
        return "[green]passed[/]"
    if verdict == "failed":
        return "[bold red]FAILED[/]"
    return f"[yellow]{verdict}[/]"


# --- the demo ---------------------------------------------------------------------------------


def demo_run(customers: int, export_dir: Path, state_dir: Path, settings: Settings) -> None:
    """``crmledger demo``: generate, emulate, confirm, migrate, project, summarise; see there."""
    from producers.extract import extract
    from producers.mapping.default import default_map
    from producers.work4all.cli import ExportForm, generate

    started = time.perf_counter()
    export_dir.mkdir(parents=True, exist_ok=True)
    export = export_dir / "work4all.db"
    export.unlink(missing_ok=True)
    generate(out=str(export_dir), customers=customers, form=ExportForm.SQL, quiet=True)
    migration_map = default_map()
    with clean_errors(), event_log(settings) as log:
        with _RichDisplay() as display:
            display.stage_started("extract", None)
            summary = extract(
                export, log, run_id=DEMO_RUN,
                progress=lambda _table, count: display.advanced("extract", count, 0),
            )  # fmt: skip
            display.stage_finished("extract", f"{summary.total:,} records")
        users = demo_users(log, DEMO_RUN, migration_map.settings.fallback_owner)
        if migration_map.content_hash not in confirmations(log):
            confirm(log, migration_map, by=DEMO_BY, note="the default map, for the demo")
    with demo_emulator(settings, state_dir, seed_users=users) as emulator:
        before = emulator.digest()
        _out.print(f"emulator content digest before the migration: {before}")
        request = MigrationRequest(
            export=str(export), run_id=DEMO_RUN, thresholds=demo_thresholds(settings)
        )
        result = run_migration(emulator.settings, migration_map, request)
        print_summary(result)
        assert emulator.running.cert_path is not None
        counts = emulator_counts(emulator.running.root_url, emulator.running.cert_path)
        after = emulator.digest()
    table = Table("table", "rows", title="the emulator holds")
    for name, count in sorted(counts.items()):
        if count:
            table.add_row(name, f"{count:,}")
    _out.print(table)
    _out.print(
        f"demo finished in {time.perf_counter() - started:.1f} s: export in {export_dir},"
        f" ledger {settings.log_url}, projections {settings.db_url},"
        f" emulator database {state_dir / 'emulator.db'}"
    )
    _out.print(f"emulator content digest after the migration: {after}")
    _out.print(f"to undo: crmledger rollback --run {DEMO_RUN} --demo")
    if not result.passed:
        fail(result.stopped or "a phase failed its gate")


def demo_thresholds(settings: Settings) -> GateThresholds:
    """The configured gate thresholds, with a rejected share fit for the synthetic export.

    The generator injects orphan contacts at 3% of the *customers*, which is about 17% of the
    much smaller contact table at demo size: the default 10% would stop the demo at phase 2 for
    defects it planted on purpose (each rejected with its reason). A configured
    ``gate_max_rejected_share`` is kept as it is.
    """
    thresholds = GateThresholds.from_settings(settings)
    if "gate_max_rejected_share" in settings.model_fields_set:
        return thresholds
    return replace(thresholds, max_rejected_share=DEMO_MAX_REJECTED_SHARE)


def demo_users(
    log: EventLog, run_id: str, fallback_owner: str | None
) -> tuple[tuple[str, str, bool], ...]:
    """The systemusers a tenant would have: every Mitarbeiter with an e-mail, and the fallback.

    A Mitarbeiter who left (``Ausgeschieden``) is seeded disabled, as their account would be.
    """
    from ledger.event_types import SourceRecordExtracted
    from ledger.events import Topic

    users: dict[str, tuple[str, str, bool]] = {}
    for stored in log.read([Topic.SOURCE]):
        event = stored.event
        if event.run_id != run_id or event.type != SourceRecordExtracted.event_type:
            continue
        if event.payload.get("table") != "Mitarbeiter":
            continue
        values = event.payload.get("normalised", {})
        email = values.get("eMail")
        if not isinstance(email, str) or not email.strip():
            continue
        name = " ".join(str(values[c]) for c in ("Vorname", "Name") if values.get(c)) or email
        users[email.strip().lower()] = (email.strip(), name, bool(values.get("Ausgeschieden")))
    if fallback_owner:
        users.setdefault(fallback_owner.lower(), (fallback_owner, "crmledger Migration", False))
    return tuple(users.values())


def emulator_counts(root_url: str, ca_file: Path) -> dict[str, int]:
    """Rows per table, from the emulator's inspection API."""
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    response = httpx.get(root_url.rstrip("/") + "/_emulator/counts", verify=context, timeout=30)
    response.raise_for_status()
    return {str(name): int(count) for name, count in response.json().items()}


# --- plumbing ---------------------------------------------------------------------------------


class _Speed(ProgressColumn):
    """Records per second of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "", style="cyan")


class _RichDisplay:
    """A ``rich`` progress line per stage: records, records/s, 429s so far, ETA."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(width=16, no_wrap=True)),
            BarColumn(bar_width=16),
            MofNCompleteColumn(table_column=Column(width=11, no_wrap=True)),
            _Speed(table_column=Column(width=12, no_wrap=True)),
            TextColumn("{task.fields[throttled]} x 429", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True)),
            console=_progress_console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _RichDisplay:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def stage_started(self, stage: str, total: int | None) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total, throttled=0, detail="")
        else:
            self._progress.update(self._tasks[stage], total=total)

    def advanced(self, stage: str, records: int, throttled: int) -> None:
        if stage not in self._tasks:
            self.stage_started(stage, None)
        self._progress.update(self._tasks[stage], advance=records, throttled=throttled)

    def stage_finished(self, stage: str, detail: str) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=0, throttled=0, detail=detail)
        task = self._tasks[stage]
        completed = self._progress.tasks[task].completed
        self._progress.update(task, total=completed, detail=detail)
        self._progress.stop_task(task)


def _phases(text: str, migration_map: MigrationMap) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    known = phase_numbers(migration_map)
    try:
        number = int(text)
    except ValueError:
        fail(f"--phase must be a phase number or 'all', not {text!r}")
    if number not in known:
        fail(f"the map has no phase {number}; its phases are {', '.join(map(str, known))}")
    return (number,)


def _project(log: EventLog, settings: Settings) -> None:
    from projections.db import create_db_engine, upgrade
    from projections.runner import ProjectionRunner

    try:
        engine = create_db_engine(settings.db_url)
        upgrade(engine)
        applied = ProjectionRunner(log, engine).run()
    except (SQLAlchemyError, ValueError) as error:
        fail(f"projection database {settings.db_url}: {error}")
    engine.dispose()
    err.print(f"projections: {applied:,} events applied to {settings.db_url}")
