"""``crmledger audit replay`` and ``crmledger audit verify``: the log as the auditor reads it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from consumers.audit import record_history, run_history, verify_projections
from consumers.cli_support import clean_errors, event_log, fail, load_settings

__all__ = ["audit_app"]

audit_app = typer.Typer(help="Replay what moved, from the log alone; verify the projections.")
_out = Console(highlight=False, soft_wrap=True)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--until {text!r} is not an ISO-8601 time (2026-11-26T13:50:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("replay")
def replay(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    record: Annotated[
        str | None, typer.Option("--record", help="One source record: Kunden:1739201.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only what happened up to this ISO time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The ordered history of one record (--record) or of a run, phase by phase (--run)."""
    if record is None and run_id is None:
        fail("name a --record KEY or a --run R")
    moment = _moment(until)
    settings = load_settings(None)
    with clean_errors(), event_log(settings) as log:
        if record is not None:
            history = record_history(log, record, run_id=run_id, until=moment)
            if as_json:
                print(json.dumps([entry.as_json() for entry in history], ensure_ascii=False))
                return
            if not history:
                fail(f"the log holds nothing about {record}")
            table = Table("time (UTC)", "run", "phase", "event", "what", title=record)
            for entry in history:
                table.add_row(
                    f"{entry.at:%Y-%m-%d %H:%M:%S}", entry.run_id, entry.phase or "",
                    entry.type, entry.summary,
                )  # fmt: skip
            _out.print(table)
            return
        assert run_id is not None
        phases = run_history(log, run_id, until=moment)
    if as_json:
        print(json.dumps([activity.as_json() for activity in phases], ensure_ascii=False))
        return
    if not phases:
        fail(f"the log holds no run {run_id!r}")
    table = Table("phase", "first", "seconds", "events", "gate", title=f"run {run_id}")
    for activity in phases:
        shown = activity.as_json()
        events = ", ".join(f"{kind} {count:,}" for kind, count in sorted(activity.events.items()))
        gate = activity.verdict or ""
        if activity.override_reason:
            gate += f" (override: {activity.override_reason})"
        table.add_row(
            activity.phase, f"{activity.first:%Y-%m-%d %H:%M:%S}" if activity.first else "",
            f"{shown['seconds']:.1f}" if shown["seconds"] is not None else "", events, gate,
        )  # fmt: skip
    _out.print(table)


@audit_app.command("verify")
def verify(
    db_url: Annotated[
        str | None,
        typer.Option("--db-url", help="The live projection database (default: settings db_url)."),
    ] = None,
) -> None:
    """Rebuild every projection from the log into a fresh database; compare with the live one.

    Exit code 0 when every table holds the same rows, 1 when any differs.
    """
    settings = load_settings(None)
    live = db_url or settings.db_url
    with clean_errors(), event_log(settings) as log:
        try:
            report = verify_projections(log, live)
        except SQLAlchemyError as error:
            fail(f"projection database: {error}")
    table = Table("table", "live rows", "rebuilt rows", "verdict", title=report.live_url)
    different = {difference.table for difference in report.differences}
    for name, (theirs, ours) in report.tables.items():
        verdict = "[bold red]DIFFERENT[/]" if name in different else "[green]identical[/]"
        table.add_row(name, f"{theirs:,}", f"{ours:,}", verdict)
    _out.print(table)
    for difference in report.differences:
        for row in difference.only_live:
            _out.print(f"  {difference.table}: only live: {row}", markup=False)
        for row in difference.only_rebuilt:
            _out.print(f"  {difference.table}: only rebuilt: {row}", markup=False)
    if not report.identical:
        fail(f"{len(report.differences)} projection table(s) differ from the log's rebuild")
    _out.print(f"identical: {len(report.tables)} tables, {report.events_applied:,} events replayed")
