"""``crmledger verify``: read a phase's written rows back from Dataverse and compare them.

Also :data:`OverrideGateOption`, the ``--override-gate "REASON"`` option the commands that start
phases share. Bad input (settings that do not reach Dataverse, an unreadable log, a table
Dataverse does not know) ends with one line on stderr and exit code 1 (2 for unreadable
settings), never a traceback.
Mismatches are findings, not errors: they are listed and the phase's gate judges them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers.cli_support import (
    DemoOption,
    clean_errors,
    dataverse_client,
    demo_target,
    event_log,
    fail,
)
from consumers.dataverse.client import DataverseClient
from consumers.verify import VerifyError, VerifySummary, verify_phase
from ledger.log import EventLog

OverrideGateOption = Annotated[
    str | None,
    typer.Option(
        "--override-gate",
        metavar="REASON",
        help="Start the phase although the previous phase's gate failed; the reason is recorded.",
    ),
]
"""``--override-gate "REASON"``: pass it to :func:`consumers.reconcile.start_phase`."""

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def verify_command(
    phase: Annotated[int, typer.Option("--phase", min=1, help="Phase whose writes are checked.")],
    run_id: Annotated[str, typer.Option("--run", help="Run whose writes are checked.")] = "main",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=5000, help="Records read per request.")
    ] = 50,
    target: Annotated[
        str | None,
        typer.Option("--target", help="A named Dataverse environment ([targets.NAME])."),
    ] = None,
    demo: DemoOption = False,
) -> None:
    """Read back every row a phase wrote and compare it field by field with its decision.

    Appends RecordVerified per matching record and FieldMismatch per differing column;
    re-running checks only writes not verified yet.
    """
    with (
        demo_target(target, demo) as (settings, _emulator),
        clean_errors(),
        event_log(settings) as log,
        dataverse_client(settings) as client,
    ):
        summary = _run(log, client, run_id, phase, batch_size)
    _print(summary, settings.log_url)


def _run(
    log: EventLog, client: DataverseClient, run_id: str, phase: int, batch_size: int
) -> VerifySummary:
    progress = Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed:>10,} records"),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def advance(table: str, count: int) -> None:
        if table not in tasks:
            tasks[table] = progress.add_task(table, total=None)
        progress.advance(tasks[table], count)

    with progress:
        try:
            return verify_phase(
                log, client, run_id=run_id, phase=phase, batch_size=batch_size, progress=advance
            )
        except VerifyError as error:
            fail(str(error))


def _print(summary: VerifySummary, log_url: str) -> None:
    table = Table(
        "table", "checked", "verified", "mismatched", "missing", "differing columns",
        title=f"verification of run {summary.run_id!r}, phase {summary.phase}",
    )  # fmt: skip
    for name, counts in sorted(summary.tables.items()):
        columns = ", ".join(f"{column} {count:,}" for column, count in counts.columns.most_common())
        table.add_row(
            name, f"{counts.checked:,}", f"{counts.verified:,}", f"{counts.mismatched:,}",
            f"{counts.missing:,}", columns or "-",
        )  # fmt: skip
    if summary.tables:
        _out.print(table)
    else:
        _out.print(f"run {summary.run_id!r} has no unverified writes in phase {summary.phase}")
    if summary.uncompared:
        listed = ", ".join(
            f"{name} ({count:,})" for name, count in sorted(summary.uncompared.items())
        )
        _out.print(f"not comparable with $select, not verified: {listed}")
    _out.print(
        f"{summary.checked:,} records checked in {summary.seconds:.1f} s with"
        f" {summary.requests:,} requests: {summary.verified:,} verified,"
        f" {summary.mismatched:,} mismatched; {summary.appended:,} events appended to {log_url};"
        f" {summary.already_verified:,} verified before"
        + (f"; {summary.undone:,} undone by a rollback, not verified" if summary.undone else "")
    )
