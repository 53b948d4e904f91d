"""``crmledger transform``: decide every extracted record of a run under a confirmed map.

Embedded or Kafka, whatever ``log_url`` says. Bad input (an unconfirmed or edited map, a map
file that cannot be read, an unreadable log) ends with one line on stderr and exit code 1, never
a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.log import EventLog
from producers.extract import export_files
from producers.mapping.cli import _fail, _open_log, _settings
from producers.mapping.gate import MapNotConfirmedError
from producers.mapping.model import MapError, MigrationMap, load_map
from producers.mapping.stage import TransformSummary, transform_run

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _map(path: Path | None) -> MigrationMap:
    try:
        if path is not None:
            return load_map(path)
        from producers.mapping.default import default_map

        shipped: MigrationMap = default_map()
        return shipped
    except MapError as error:
        _fail(str(error))
    except ImportError:
        _fail("this crmledger has no default map; pass --map FILE")


def transform_command(
    map_file: Annotated[
        Path | None,
        typer.Option("--map", help="The confirmed map (YAML); default: the shipped default map."),
    ] = None,
    run_id: Annotated[str, typer.Option("--run", help="Run whose records are decided.")] = "main",
    files: Annotated[
        Path | None,
        typer.Option(
            help="The export's file store, for attachments (default: the folder of the export"
            " the run extracted)."
        ),
    ] = None,
) -> None:
    """Decide every extracted record of a run: one TransformDecided or RecordRejected each.

    Runs only under a map whose hash has been confirmed (`crmledger map confirm`). Re-running
    appends nothing new.
    """
    migration_map = _map(map_file)
    settings = _settings()
    with _open_log(settings) as log:
        if files is None:
            files = export_files(log, run_id)
        summary = _run(log, migration_map, run_id, files)
    _print(summary, settings.log_url)


def _run(
    log: EventLog, migration_map: MigrationMap, run_id: str, files: Path | None
) -> TransformSummary:
    progress = Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed:>10,} records"),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def advance(step: str, count: int) -> None:
        if step not in tasks:
            label = "reading the run" if step == "index" else step
            tasks[step] = progress.add_task(label, total=None)
        progress.advance(tasks[step], count)

    with progress:
        try:
            return transform_run(log, migration_map, run_id=run_id, progress=advance, files=files)
        except MapNotConfirmedError as error:
            _fail(str(error))
        except MapError as error:
            _fail(str(error))


def _print(summary: TransformSummary, log_url: str) -> None:
    table = Table(
        "phase", "object", "target", "extracted", "decided", "rejected",
        title=f"transform of run {summary.run_id!r} (map {summary.map_hash[:12]})",
    )  # fmt: skip
    reasons = Table("object", "outcome", "reason", "count", title="rejection reasons and notes")
    for name, counts in sorted(summary.objects.items(), key=lambda item: item[1].phase):
        table.add_row(
            str(counts.phase), name, counts.target, f"{counts.extracted:,}",
            f"{counts.decided:,}", f"{counts.rejected:,}",
        )  # fmt: skip
        for code, count in sorted(counts.reasons.items()):
            reasons.add_row(name, "rejected", code, f"{count:,}")
        for code, count in sorted(counts.notes.items()):
            reasons.add_row(name, "note", code, f"{count:,}")
    _out.print(table)
    if reasons.row_count:
        _out.print(reasons)
    if summary.reference:
        read = ", ".join(f"{name} {count:,}" for name, count in summary.reference.items())
        _out.print(f"read as reference data, not decided: {read}")
    if summary.records == 0:
        _out.print(f"run {summary.run_id!r} has no extracted records of mapped tables")
    _out.print(
        f"{summary.records:,} records decided in {summary.seconds:.1f} s"
        f" ({summary.rate:,.0f} records/s); {summary.appended:,} events appended to {log_url},"
        f" {summary.already_in_log:,} already there"
    )
    if summary.kept_earlier:
        _out.print(
            f"{summary.kept_earlier:,} records keep the decision made earlier in this run under"
            " another map or content; use a new --run to decide them again"
        )
