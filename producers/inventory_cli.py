"""``crmledger inventory EXPORT``: the rebuild list for the customer's Dynamics 365 admin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from consumers.cli_support import err, fail, load_migration_map
from producers.inventory import inventory, to_markdown
from producers.work4all.errors import ExportError

__all__ = ["inventory_command"]


def inventory_command(
    export: Annotated[
        str, typer.Argument(help="CSV folder, .xlsx workbook, SQLite file or SQLAlchemy URL.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the Markdown to FILE; default stdout.")
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option("--map", help="The map (YAML) saying what moves as data; default map."),
    ] = None,
) -> None:
    """List what work4all configures that does not migrate as data, with counts.

    Lookups, numbering ranges, custom fields, user groups, tax rates, price groups and
    automations: what the customer's admin rebuilds natively in Dynamics 365.
    """
    try:
        text = to_markdown(inventory(export, load_migration_map(map_file)), export)
    except ExportError as error:
        fail(str(error))
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"{out}: {error.strerror}")
    err.print(f"wrote the inventory to {out}")
