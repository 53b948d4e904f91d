"""``crmledger worker extract|transform|write|verify|project|stop``: the stages as processes.

For the distributed deployment (``log_url = "kafka://…"``): start as many ``write``, ``verify``
and ``project`` workers as wanted (they share the work through consumer groups), then run
``crmledger migrate``, which appends ``PhaseStarted`` and waits for the workers' completions.
``extract`` and ``transform`` are one-shot (the orchestrator runs them itself too); ``stop``
asks every running worker to finish and exit. See :mod:`consumers.workers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import typer
from sqlalchemy.exc import SQLAlchemyError

from consumers.cli_support import (
    clean_errors,
    dataverse_client,
    err,
    event_log,
    fail,
    load_migration_map,
    load_settings,
)
from consumers.dataverse.client import DataverseClient, RetryPolicy
from consumers.dataverse.throttle import Throttle
from consumers.migrate import stage_counts
from consumers.workers import request_stop, run_phase_worker, run_until_stopped
from ledger.log import EventLog

worker_app = typer.Typer(
    help="Run a stage as a long-running worker (Kafka mode; several may run in parallel).",
    no_args_is_help=True,
)

RunOption = Annotated[
    str | None, typer.Option("--run", help="Only this run's events (default: every run).")
]
TargetOption = Annotated[
    str | None, typer.Option(help="A named Dataverse environment: \\[targets.NAME].")
]
# Retries are the throttle's: it paces them with every other request of the worker.
_NO_RETRY = RetryPolicy(max_retries=0)
OnceOption = Annotated[bool, typer.Option("--once", help="Handle one phase, then exit.")]


class _PhaseStage(Protocol):
    def __call__(
        self, log: EventLog, client: DataverseClient, *, run_id: str, phase: int, throttle: Throttle
    ) -> Any: ...


def _dataverse_worker(
    stage: Literal["write", "verify"],
    doing: str,
    run_stage: _PhaseStage,
    run_id: str | None,
    target: str | None,
    once: bool,
) -> None:
    """Handle the phases of ``stage`` with one client and one throttle for the whole worker."""
    settings = load_settings(target)
    with (
        clean_errors(),
        event_log(settings) as log,
        dataverse_client(settings, retry=_NO_RETRY) as client,
    ):
        throttle = Throttle()

        def handle(run: str, phase: int) -> Mapping[str, int]:
            err.print(f"{doing} phase {phase} of run {run!r}")
            return stage_counts(run_stage(log, client, run_id=run, phase=phase, throttle=throttle))

        report = run_phase_worker(log, stage, handle, run_id=run_id, once=once)
    err.print(f"{stage} worker exits after {len(report.phases)} phase(s)")


@worker_app.command("write")
def worker_write(
    run_id: RunOption = None, target: TargetOption = None, once: OnceOption = False
) -> None:
    """Write each phase a PhaseStarted event starts; append StageCompleted(write) after it."""
    from consumers.write import write_phase

    _dataverse_worker("write", "writing", write_phase, run_id, target, once)


@worker_app.command("verify")
def worker_verify(
    run_id: RunOption = None, target: TargetOption = None, once: OnceOption = False
) -> None:
    """Verify each phase whose writes completed; append StageCompleted(verify) after it."""
    from consumers.verify import verify_phase

    _dataverse_worker("verify", "verifying", verify_phase, run_id, target, once)


@worker_app.command("project")
def worker_project(
    once: Annotated[bool, typer.Option("--once", help="One pass to the end of the log.")] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between passes.")] = 1.0,
) -> None:
    """Keep the projections up to date with the log until a stop is requested."""
    from projections.db import create_db_engine, upgrade
    from projections.runner import ProjectionRunner

    settings = load_settings(None)
    try:
        engine = create_db_engine(settings.db_url)
        upgrade(engine)
    except (SQLAlchemyError, ValueError) as error:
        fail(f"projection database {settings.db_url}: {error}")
    with clean_errors(), event_log(settings) as log:
        runner = ProjectionRunner(log, engine)
        total = 0

        def step() -> int:
            nonlocal total
            applied = runner.run()
            total += applied
            return applied

        run_until_stopped(log, "project", step, once=once, interval_s=interval)
    engine.dispose()
    err.print(f"project worker exits after applying {total:,} events")


@worker_app.command("extract")
def worker_extract(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    run_id: Annotated[str, typer.Option("--run", help="Run the records belong to.")] = "main",
) -> None:
    """Extract an export into the run (one shot); nothing when the run already holds it."""
    from producers.extract import extract, registered_export

    settings = load_settings(None)
    with clean_errors(), event_log(settings) as log:
        if registered_export(log, run_id) is not None:
            err.print(f"run {run_id!r} already holds its extraction")
            return
        summary = extract(export, log, run_id=run_id)
    err.print(f"{summary.total:,} records extracted into run {run_id!r}")


@worker_app.command("transform")
def worker_transform(
    run_id: Annotated[str, typer.Option("--run", help="Run whose records are decided.")] = "main",
    map_file: Annotated[
        Path | None, typer.Option("--map", help="The confirmed map; default: the shipped one.")
    ] = None,
) -> None:
    """Decide every extracted record of the run under a confirmed map (one shot)."""
    from producers.extract import export_files
    from producers.mapping.stage import transform_run

    settings = load_settings(None)
    migration_map = load_migration_map(map_file)
    with clean_errors(), event_log(settings) as log:
        summary = transform_run(log, migration_map, run_id=run_id, files=export_files(log, run_id))
    err.print(f"{summary.records:,} records decided, {summary.appended:,} decisions appended")


@worker_app.command("stop")
def worker_stop(
    run_id: Annotated[str, typer.Option("--run", help="The run the request belongs to.")] = "main",
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Only these stages (repeatable).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the log.")] = "",
) -> None:
    """Ask running workers to finish what they hold and exit (WorkersStopRequested)."""
    settings = load_settings(None)
    with clean_errors(), event_log(settings) as log:
        request_stop(log, run_id, list(stage or []), reason)
    err.print("stop requested")
