"""``crmledger rollback``: undo what a run or a phase wrote to Dataverse (see consumers.rollback).

Exit codes: 0 when everything planned was done (conflicts reported and left alone included),
1 when Dataverse refused some actions or the rollback was refused (dependents without
``--cascade``), 2 for bad settings.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers.cli_support import (
    DemoOption,
    clean_errors,
    dataverse_client,
    demo_target,
    err,
    event_log,
    fail,
)
from consumers.rollback import (
    RollbackError,
    RollbackPlan,
    execute_rollback,
    plan_rollback,
    record_plan,
)
from ledger.event_types import DestinationWritten
from ledger.events import Topic
from ledger.log import EventLog
from ledger.settings import Settings

_out = Console(highlight=False, soft_wrap=True)
_SHOWN_CONFLICTS = 20


def rollback_command(
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="The run to roll back (default: the run of the last write)."),
    ] = None,
    phase: Annotated[
        int | None, typer.Option("--phase", min=1, help="Only this phase of the run.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and conflicts; change nothing.")
    ] = False,
    cascade: Annotated[
        bool,
        typer.Option("--cascade", help="Also roll back later records that depend on the phase."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also undo rows someone changed in Dataverse since the run."),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(help="A named Dataverse environment: \\[targets.NAME] of crmledger.toml."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=1000, help="Rows per $batch request.")
    ] = 100,
    demo: DemoOption = False,
) -> None:
    """Delete what a run (or one phase of it) created and restore what it updated.

    Appends RollbackPlanned (the exact actions), then deletes created rows children first,
    restores the before-images of updated rows, and appends DestinationDeleted or
    DestinationRestored for each. Rows someone changed in Dataverse since the run are reported
    and left alone unless --force. Rolling back a phase that later records depend on is refused
    unless --cascade. Safe to run again: what is done is not done again. With --demo, prints
    the demo emulator's content digest afterwards.
    """
    if run_id is None and phase is None:
        fail("say what to roll back: --run R, --phase P, or both", 2)
    with demo_target(target, demo) as (settings, emulator):
        _roll_back(settings, run_id, phase, dry_run, cascade, force, batch_size)
        if emulator is not None:
            _out.print(f"demo emulator content digest: {emulator.digest()}")


def _roll_back(
    settings: Settings,
    run_id: str | None,
    phase: int | None,
    dry_run: bool,
    cascade: bool,
    force: bool,
    batch_size: int,
) -> None:
    with clean_errors(), event_log(settings) as log:
        run = run_id or _last_run(log)
        with dataverse_client(settings) as client:
            try:
                plan = plan_rollback(
                    log, client, run_id=run, phase=phase, cascade=cascade, force=force
                )
            except RollbackError as error:
                fail(str(error))
            _print_plan(plan)
            if dry_run:
                _out.print("dry run: nothing was changed and nothing was appended")
                return
            if plan.empty:
                _out.print(f"{plan.scope}: nothing left to roll back")
                _exit_for_conflicts(plan)
                return
            planned = record_plan(log, plan)
            with _progress() as bar:
                task = bar.add_task("rolling back", total=len(plan.actions))
                summary = execute_rollback(
                    log,
                    client,
                    plan,
                    batch_size=batch_size,
                    correlation_id=planned.event_id if planned is not None else None,
                    progress=lambda _table, count: bar.advance(task, count),
                )
    deleted, restored = sum(summary.deleted.values()), sum(summary.restored.values())
    recreated = sum(summary.recreated.values())
    _out.print(
        f"{plan.scope}: {deleted:,} deleted ({summary.already_gone:,} already gone),"
        f" {restored:,} restored, {recreated:,} re-created, {len(summary.failed):,} failed;"
        f" {summary.appended:,} events"
    )
    for line in summary.failed[:_SHOWN_CONFLICTS]:
        _out.print(f"  failed: {line}", markup=False)
    if summary.failed:
        fail(f"{len(summary.failed):,} action(s) failed; run the rollback again to retry them")
    _exit_for_conflicts(plan)


def _last_run(log: EventLog) -> str:
    run: str | None = None
    for stored in log.read([Topic.WRITES]):
        if stored.event.type == DestinationWritten.event_type:
            run = stored.event.run_id
    if run is None:
        fail("the log holds no writes to roll back")
    err.print(f"rolling back run {run!r} (the run of the last write)")
    return run


def _print_plan(plan: RollbackPlan) -> None:
    table = Table("phase", "table", "action", "rows", title=f"rollback plan: {plan.scope}")
    counts: dict[tuple[int, str, str], int] = {}
    for action in plan.actions:
        group = (action.phase, action.table, action.action)
        counts[group] = counts.get(group, 0) + 1
    for (phase, name, kind), count in counts.items():
        table.add_row(str(phase), name, kind, f"{count:,}")
    _out.print(table)
    if plan.dependents:
        listed = ", ".join(f"phase {p}: {n}" for p, n in sorted(plan.dependents.items()))
        _out.print(f"with dependent records of later phases (--cascade): {listed}")
    if plan.recorded:
        _out.print(f"{plan.recorded:,} action(s) done by an earlier rollback")
    if plan.already:
        _out.print(f"{len(plan.already):,} action(s) already done in Dataverse: only recorded")
    verb = "undone anyway (--force)" if plan.forced else "left alone (use --force to undo them)"
    if plan.conflicts:
        _out.print(f"{len(plan.conflicts):,} row(s) changed in Dataverse since the run, {verb}:")
        for conflict in plan.conflicts[:_SHOWN_CONFLICTS]:
            _out.print(f"  {conflict.describe()}", markup=False)
    for held in plan.held[:_SHOWN_CONFLICTS]:
        _out.print(f"  {held.describe()}", markup=False)


def _exit_for_conflicts(plan: RollbackPlan) -> None:
    if (plan.conflicts or plan.held) and not plan.forced:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
