"""``crmledger delta EXPORT``: detect what a newer export changed, then migrate only that.

Expected failures (no base run, an unreadable export, an unconfirmed map, Dataverse refusing)
end with one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from consumers.cli_support import (
    clean_errors,
    dataverse_client,
    event_log,
    fail,
    load_migration_map,
    load_settings,
)
from consumers.dataverse.client import RetryPolicy
from consumers.dataverse.throttle import Throttle
from consumers.delta import DeltaMigrationSummary, DeltaRunError, migrate_delta
from consumers.migrate import InProcessStages
from consumers.reconcile import GateThresholds
from ledger.log import EventLog
from producers.delta import DeletionMode, DeltaError, DeltaSummary, delta_runs, detect
from producers.mapping.gate import MapNotConfirmedError

__all__ = ["delta_command"]

_out = Console(highlight=False)


def delta_command(
    export: Annotated[
        str, typer.Argument(help="The newer export: CSV folder, .xlsx, SQLite file or URL.")
    ],
    run_id: Annotated[
        str | None, typer.Option("--run", help="The delta run (default: delta-<n>).")
    ] = None,
    base_run: Annotated[
        str | None,
        typer.Option("--base-run", help="The run to compare with (default: the latest full run)."),
    ] = None,
    deletions: Annotated[
        str | None,
        typer.Option(
            "--deletions",
            help="What a source deletion does: delete, deactivate or flag"
            " (default: the map's settings.source_deletion).",
        ),
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option("--map", help="The confirmed map (YAML); default: the shipped default map."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="A named Dataverse environment: \\[targets.NAME] of crmledger.toml."),
    ] = None,
    detect_only: Annotated[
        bool, typer.Option("--detect-only", help="Append the delta's source events; write nothing.")
    ] = False,
) -> None:
    """Append only new, changed and deleted records of a newer export, then migrate them.

    The delta run is gated phase by phase like a migration; deletions come last, in reverse
    dependency order, recorded with before-images so `crmledger rollback --run` undoes them.
    Exit code 1 when a gate fails or a deletion is refused.
    """
    if deletions is not None and deletions not in ("delete", "deactivate", "flag"):
        fail(f"--deletions must be delete, deactivate or flag, not {deletions!r}")
    settings = load_settings(target)
    migration_map = load_migration_map(map_file)
    mode: DeletionMode = deletions or migration_map.settings.source_deletion  # type: ignore[assignment]
    with clean_errors(), event_log(settings) as log:
        run = run_id or _next_run(log)
        try:
            detected = detect(export, log, run_id=run, base_run=base_run, deletions=mode)
        except DeltaError as error:
            fail(str(error))
        _print_detected(detected)
        if detect_only:
            return
        try:
            with (
                dataverse_client(settings) as client,
                dataverse_client(settings, retry=RetryPolicy(max_retries=0)) as writer,
            ):
                summary = migrate_delta(
                    log, client, migration_map, run_id=run, deletions=mode,
                    thresholds=GateThresholds.from_settings(settings),
                    stages=InProcessStages(writer, Throttle()),
                )  # fmt: skip
        except (DeltaRunError, MapNotConfirmedError) as error:
            fail(str(error))
    _print_migrated(summary)
    if not summary.passed:
        fail(summary.stopped or "; ".join(summary.failures[:5]) or "the delta failed")


def _next_run(log: EventLog) -> str:
    taken = delta_runs(log)
    number = len(taken) + 1
    while f"delta-{number}" in taken:
        number += 1
    return f"delta-{number}"


def _print_detected(summary: DeltaSummary) -> None:
    table = Table("table", "new", "changed", "deleted", "unchanged",
                  title=f"delta run {summary.run_id} against {summary.base_run}")  # fmt: skip
    names = sorted(set(summary.new) | set(summary.changed) | set(summary.deleted))
    for name in names:
        table.add_row(
            name, str(summary.new[name]), str(summary.changed[name]),
            str(summary.deleted[name]), str(summary.unchanged[name]),
        )  # fmt: skip
    _out.print(table)
    totals = summary.totals()
    again = " (detected earlier)" if summary.already_detected else ""
    _out.print(
        f"new {totals['new']:,}, changed {totals['changed']:,}, deleted {totals['deleted']:,}"
        f" (unchanged {totals['unchanged']:,}){again}; deletions: {summary.deletions}"
    )
    for name, count in sorted(summary.tables_missing.items()):
        _out.print(f"note: {name} is missing from the newer export; its {count:,} records kept")


def _print_migrated(summary: DeltaMigrationSummary) -> None:
    table = Table("phase", "table", "extracted", "decided", "rejected", "written", "failed",
                  "verified", "gate", title=f"delta run {summary.run_id}")  # fmt: skip
    for phase, result in sorted(summary.phases.items()):
        for name, counts in sorted(result.counts.items()):
            table.add_row(
                str(phase), name, *(str(counts[c]) for c in
                                    ("extracted", "decided", "rejected", "written", "failed",
                                     "verified")),
                result.verdict,
            )  # fmt: skip
    _out.print(table)
    for what, by_table in (
        ("deleted in the source", summary.deletions),
        ("rejected by the delta (withdrawn)", summary.withdrawals),
    ):
        for name, done in sorted(by_table.items()):
            _out.print(
                f"{name} {what}: {done.deleted} deleted, {done.deactivated} deactivated,"
                f" {done.flagged} flagged, {done.failed} failed"
                f" ({summary.deletions_mode})"
            )
    for failure in summary.failures:
        _out.print(f"refused: {failure}", markup=False)
