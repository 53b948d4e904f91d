"""``crmledger generate``: write a synthetic work4all Mandant as SQL, CSV or Excel."""

from __future__ import annotations

import time
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from producers.work4all.defects import DefectProfileError, ManifestWriter, load_profile
from producers.work4all.generator import MAX_CUSTOMERS, GeneratorConfig, Mandant
from producers.work4all.writers import WriterError, is_url, open_writer, redact

MANIFEST_FILE = "manifest.json"

_err = Console(stderr=True, highlight=False)
_out = Console(highlight=False)


class ExportForm(StrEnum):
    """The export forms a work4all customer can hand over."""

    SQL = "sql"
    CSV = "csv"
    XLSX = "xlsx"


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def generate(
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="Target directory; with --format sql also a SQLAlchemy URL "
            "(postgresql+psycopg://user:pw@host/db).",
        ),
    ],
    customers: Annotated[
        int, typer.Option("--customers", help="Number of Kunden; every other table scales with it.")
    ],
    form: Annotated[
        ExportForm,
        typer.Option(
            "--format",
            help="sql: SQLite work4all.db (or the URL); csv: one Windows-1252 ';' file per table; "
            "xlsx: work4all.xlsx, one sheet per table.",
        ),
    ] = ExportForm.SQL,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same records in every form.")] = 0,
    defects: Annotated[
        str,
        typer.Option(
            "--defects",
            help="none, default, or a TOML/JSON file of defect class = rate (0..1).",
        ),
    ] = "default",
    files: Annotated[
        Path | None,
        typer.Option(
            "--files",
            help="Where attachment files and manifest.json go; defaults to --out "
            "(required when --out is a URL).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False,
) -> None:
    """Generate a seeded synthetic work4all Mandant with the real table and column names.

    Volumes follow a real installation's ratios per customer; data-quality defects are injected
    at configurable rates and listed in manifest.json (ground truth for tests, never read by
    crmledger itself).
    """
    if not 1 <= customers <= MAX_CUSTOMERS:
        _fail(f"--customers must be between 1 and {MAX_CUSTOMERS:,}, not {customers}")
    try:
        profile = load_profile(defects)
    except DefectProfileError as error:
        _fail(str(error))
    if is_url(out) and form is not ExportForm.SQL:
        _fail(f"--out {redact(out)}: a database URL needs --format sql")
    files_dir = files if files is not None else None if is_url(out) else Path(out)
    if files_dir is None:
        _fail("--files DIR is required when --out is a database URL")
    try:
        writer = open_writer(form.value, out)
    except WriterError as error:
        _fail(str(error))
    config = GeneratorConfig(customers, seed, profile, form.value, files_dir)
    header = {
        "generator": "crmledger generate",
        "seed": seed,
        "customers": customers,
        "format": form.value,
        "defects": profile.name,
        "rates": {defect.value: rate for defect, rate in profile.rates.items()},
    }
    started = time.perf_counter()
    total = 0
    with ManifestWriter(files_dir / MANIFEST_FILE, header) as manifest:
        mandant = Mandant(config, manifest)
        estimate = mandant.estimated_rows()
        with Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            TextColumn("{task.completed:>10,} rows"),
            TimeElapsedColumn(),
            console=_err,
            disable=quiet,
            transient=False,
        ) as progress:
            try:
                for table, rows in mandant.tables():
                    task = progress.add_task(table.name, total=max(1, estimate[table.name]))
                    count = writer.write(table, rows, partial(progress.advance, task))
                    progress.update(task, total=max(1, count), completed=count)
                    total += count
                writer.close()
            except WriterError as error:
                _fail(str(error))
            except OSError as error:
                _fail(f"{error.filename or out}: {error.strerror}")
        manifest.close(form.value)
    elapsed = time.perf_counter() - started
    _out.print(
        f"{total:,} records in {len(estimate)} tables, {form.value} → {redact(out)} "
        f"({elapsed:.1f} s, {total / max(elapsed, 1e-9):,.0f} records/s); "
        f"manifest {files_dir / MANIFEST_FILE}"
    )
