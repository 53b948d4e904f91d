"""``crmledger write --run R --phase P``: write one phase's decisions into Dataverse."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.errors import DataverseClientError
from consumers.dataverse.throttle import Throttle
from consumers.write import WriteAbortedError, WriteProgress, write_phase
from ledger.events import EventDecodeError
from ledger.log import LogError, open_log
from ledger.settings import Settings

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", markup=True)
    raise typer.Exit(code)


def write_command(
    run_id: Annotated[str, typer.Option("--run", help="The run whose decisions are written.")],
    phase: Annotated[int, typer.Option("--phase", min=1, help="The phase to write (1-8).")],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=1000, help="Records per request.")
    ] = 100,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=52, help="Batches written in parallel.")
    ] = 4,
) -> None:
    """Write a phase's decisions into Dataverse: one write event per record, crash safe.

    Records already written (or refused) in the run are not touched again, so the command can
    be run again after a crash or an interruption: it finishes what is left, duplicating
    nothing. Exit code 0 when every record was written, 1 when Dataverse refused some (each
    refusal is a DestinationWriteFailed event with its error), 2 when the phase could not be
    written at all.
    """
    try:
        settings = Settings()
    except (ValidationError, ValueError) as error:
        _fail(f"invalid settings (crmledger.toml or CRMLEDGER_* variables): {error}")
    try:
        client = client_from_settings(settings, retry=RetryPolicy(max_retries=0))
    except DataverseClientError as error:
        _fail(str(error))
    throttle = Throttle()
    try:
        with (
            client,
            open_log(settings.log_url, partitions=settings.partitions) as log,
            _progress() as bar,
        ):
            task = bar.add_task(f"phase {phase}", total=None)

            def show(step: WriteProgress) -> None:
                bar.update(task, total=step.total, completed=step.done)

            summary = write_phase(
                log,
                client,
                run_id=run_id,
                phase=phase,
                throttle=throttle,
                batch_size=batch_size,
                workers=workers,
                progress=show,
            )
    except (LogError, EventDecodeError) as error:
        _fail(f"event log {settings.log_url}: {error}")
    except (WriteAbortedError, DataverseClientError) as error:
        _fail(f"phase {phase} stopped; run the command again to resume: {error}")
    table = Table(
        "table",
        "created",
        "updated",
        "failed",
        "already done",
        title=f"run {run_id}, phase {phase}",
    )
    for name, counts in summary.tables.items():
        table.add_row(
            name,
            f"{counts.created:,}",
            f"{counts.updated:,}",
            f"{counts.failed:,}",
            f"{counts.already_done:,}",
        )
    _out.print(table)
    _out.print(
        f"{summary.written:,} written, {summary.failed:,} failed, {summary.already_done:,} already"
        f" done in {summary.seconds:.1f} s ({summary.rate:,.0f} records/s, {summary.throttled:,}"
        " throttled)"
    )
    if summary.failed:
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )
