"""``crmledger reconcile``: the reconciliation report of a run, on screen and as JSON, CSV, HTML."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from consumers.cli_support import DemoOption, clean_errors, demo_target, err, event_log, fail
from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.errors import DataverseClientError, DataverseConfigError
from ledger.settings import Settings
from projections.reconcile_report import (
    Problem,
    Report,
    SpotRecord,
    build_report,
    default_run,
    fill_from_log,
    read_dataverse,
    reason_summary,
    render_html,
    report_json,
    runs,
    spot_sample,
    write_csv,
)

_out = Console(highlight=False, soft_wrap=True)
_LISTED = 10  # problems listed on screen; the files hold all of them
_SHOWN_VALUES = 12  # source values shown per spot-checked record on screen


def reconcile_command(
    run_id: Annotated[
        str | None, typer.Option("--run", help="Run to report on (default: the latest).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as JSON on stdout.")
    ] = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write an HTML report with charts here.")
    ] = None,
    csv_dir: Annotated[
        Path | None, typer.Option("--csv", help="Write the report as CSV files into this folder.")
    ] = None,
    spot_check: Annotated[
        int, typer.Option("--spot-check", min=0, help="Records to compare with Dataverse.")
    ] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the spot check's sample.")] = 0,
    target: Annotated[
        str | None, typer.Option(help="Dataverse environment of crmledger.toml [targets.NAME].")
    ] = None,
    demo: DemoOption = False,
) -> None:
    """Counts and gate verdicts per phase and work4all table, every rejection and failure with
    its reason, and a spot check of sampled records against what Dataverse holds now.

    The projections are brought up to date from the log first.
    """
    with demo_target(target, demo) as (settings, _emulator), clean_errors():
        report = _report(settings, run_id, spot_check, seed)
    if html_file is not None:
        html_file.parent.mkdir(parents=True, exist_ok=True)
        html_file.write_text(render_html(report), encoding="utf-8")
        err.print(f"HTML report: {html_file}")
    if csv_dir is not None:
        written = write_csv(report, csv_dir)
        err.print(f"CSV files: {', '.join(str(path) for path in written)}")
    if as_json:
        print(json.dumps(report_json(report), ensure_ascii=False, indent=2, default=str))
    else:
        _print(report)


def _report(settings: Settings, run_id: str | None, size: int, seed: int) -> Report:
    from projections.db import create_db_engine, upgrade
    from projections.runner import ProjectionRunner

    with event_log(settings) as log:
        try:
            engine = create_db_engine(settings.db_url)
            upgrade(engine)
            ProjectionRunner(log, engine).run()
            with engine.connect() as connection:
                known = runs(connection)
                chosen = run_id or default_run(connection)
                if chosen is None or chosen not in known:
                    listed = ", ".join(known) or "none"
                    fail(f"no run {chosen!r} in the projections (runs: {listed})")
                report = build_report(connection, chosen)
                report.spot_check = spot_sample(connection, chosen, size, seed)
            engine.dispose()
        except SQLAlchemyError as error:
            fail(f"projection database {settings.db_url}: {error}")
        fill_from_log(log, chosen, report.spot_check)
    report.dataverse = _read_dataverse(settings, report.spot_check)
    return report


def _read_dataverse(settings: Settings, records: Sequence[SpotRecord]) -> str:
    if not records:
        return "not read (no records sampled)"
    try:
        with client_from_settings(settings, retry=RetryPolicy(max_retries=1)) as client:
            return read_dataverse(client, records)
    except DataverseConfigError as error:
        return f"not configured: {error}"
    except DataverseClientError as error:
        return f"not reachable: {error}"


def _print(report: Report) -> None:
    table = Table(title=f"run {report.run_id!r}: reconciliation per phase and work4all table")
    for column in ("phase", "table", *report.count_names, "gate"):
        table.add_column(column, justify="left" if column in ("table", "gate") else "right")
    for phase in report.phases:
        for index, (name, counts) in enumerate(sorted(phase.objects.items())):
            gate = (phase.verdict or "not reconciled") if index == 0 else ""
            table.add_row(
                str(phase.phase) if index == 0 else "",
                name,
                *(f"{counts[count]:,}" for count in report.count_names),
                gate,
                end_section=index == len(phase.objects) - 1,
            )
    _out.print(table)
    for phase in report.phases:
        for reason in phase.reasons:
            _out.print(f"phase {phase.phase} gate: {reason}")
        if phase.override_reason:
            _out.print(f"phase {phase.phase} started despite its gate: {phase.override_reason}")
    _print_problems("rejections", report.of_kind("rejected", "excluded"))
    _print_problems("failed writes", report.of_kind("failed"))
    _print_problems("mismatches", report.of_kind("mismatched"))
    _print_spot_check(report)


def _print_problems(title: str, problems: list[Problem]) -> None:
    if not problems:
        _out.print(f"no {title}")
        return
    records = len({p.source_key for p in problems})
    _out.print(f"\n{title}: {records:,} records")
    for label, count in reason_summary(problems):
        _out.print(f"  {count:>6,}  {label}")
    for problem in problems[:_LISTED]:
        _out.print(f"  {problem.source_key} (phase {problem.phase}): {problem.reason}")
    if len(problems) > _LISTED:
        _out.print(
            f"  … {len(problems) - _LISTED:,} more; every one is in --json, --csv and --html"
        )


def _print_spot_check(report: Report) -> None:
    _out.print(f"\nspot check of {len(report.spot_check)} records; Dataverse: {report.dataverse}")
    for record in report.spot_check:
        title = f"{record.source_key} → {record.target_table} {record.target_id}"
        table = Table(title=title + (f" ({record.note})" if record.note else ""))
        table.add_column("column")
        table.add_column("decided")
        table.add_column("Dataverse now")
        now = record.dataverse or {}
        for column, value in sorted(record.decided.items()):
            table.add_row(column, _text(value), _text(now.get(column)) if now else "—")
        for column, value in sorted(record.binds.items()):
            read = next((name for name in now if name == f"_{column}_value"), None)
            table.add_row(column, value, _text(now.get(read)) if read else "—")
        _out.print(table)
        shown = list(record.source.items())[:_SHOWN_VALUES]
        more = len(record.source) - len(shown)
        values = ", ".join(f"{name}={_text(value)}" for name, value in shown)
        _out.print(f"  work4all: {values}" + (f", … {more} more" if more > 0 else ""))


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
