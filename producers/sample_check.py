"""Accept or reject a work4all export from a random sample of each table's records.

Before a full extraction, a consultant checks what the customer handed over: is every table
there with its required columns, and do the records read? Each table is streamed once and a
seeded reservoir sample of ``n`` rows is kept (memory bounded by ``n``, whatever the table's
size); only the sampled rows are normalised.

The verdict rule, per table:

- **fail** when the table is missing, cannot be read, lacks a required column, or a sampled
  record has a finding of severity ``error`` (a value that was lost: a non-numeric amount, an
  unreadable date, a row without its key);
- **pass** otherwise; warnings (placeholder dates, repaired encodings, over-long text, missing
  optional columns) are reported but do not fail a table.

The same export, ``n`` and seed always draw the same sample.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from producers.work4all.errors import ExportError, Finding
from producers.work4all.normalise import Normaliser, check_structure
from producers.work4all.readers import Export, SourceRow, open_export
from producers.work4all.tables import TABLES

T = TypeVar("T")


def reservoir_sample(items: Iterable[T], n: int, rng: random.Random) -> tuple[list[T], int]:
    """Return a uniform random sample of at most ``n`` items and how many items there were.

    Algorithm R: one pass, ``n`` items held at a time, every item equally likely to be kept.
    """
    sample: list[T] = []
    seen = 0
    for seen, item in enumerate(items, start=1):
        if len(sample) < n:
            sample.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < n:
                sample[slot] = item
    return sample, seen


@dataclass
class TableVerdict:
    """The outcome for one table: rows seen, rows sampled, and the findings behind the verdict."""

    table: str
    present: bool
    rows: int = 0
    sampled: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """The findings that fail the table (see the module's verdict rule)."""
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def passed(self) -> bool:
        """True when nothing in the table fails it."""
        return self.present and not self.errors

    @property
    def reason(self) -> str:
        """One line saying why the table failed, or ``ok``."""
        if not self.present:
            return "table is missing"
        errors = self.errors
        if not errors:
            return "ok"
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{first}{more}"


@dataclass
class SampleCheckReport:
    """The verdicts of every table crmledger reads, in specification order."""

    location: str
    n: int
    seed: int
    verdicts: list[TableVerdict]

    @property
    def passed(self) -> bool:
        """True when every table passed."""
        return all(verdict.passed for verdict in self.verdicts)


def _table_seed(seed: int, table: str) -> str:
    # Seeding per table keeps one table's sample unchanged when another table grows.
    return f"{seed}:{table}"


def _check_table(
    export: Export,
    normaliser: Normaliser,
    name: str,
    n: int,
    seed: int,
) -> TableVerdict:
    found = export.find_table(name)
    structure = check_structure(export, normaliser, {name: TABLES[name]})
    verdict = TableVerdict(name, present=found is not None, findings=structure)
    if found is None:
        return verdict
    if any(finding.kind == "unreadable_table" for finding in structure):
        return verdict
    source = export.source(found)
    try:
        rows: list[SourceRow]
        rows, verdict.rows = reservoir_sample(
            export.rows(found), n, random.Random(_table_seed(seed, name))
        )
    except ExportError as error:
        verdict.findings.append(
            Finding(error.file, error.row, error.column, "unreadable_table", error.message, "error")
        )
        return verdict
    verdict.sampled = len(rows)
    for row in sorted(rows, key=lambda row: row.position):
        verdict.findings.extend(normaliser.record(row, source).findings)
    return verdict


def sample_check(location: str | Path, *, n: int = 100, seed: int = 0) -> SampleCheckReport:
    """Check a seeded random sample of ``n`` records per table of the export at ``location``.

    Raises :class:`ExportError` when the export as a whole cannot be opened or listed; a table
    that cannot be read fails on its own and the other tables are still checked.
    """
    if n < 1:
        raise ValueError(f"sample size must be at least 1, not {n}")
    with open_export(location) as export:
        normaliser = Normaliser.for_export(export)
        verdicts = [_check_table(export, normaliser, name, n, seed) for name in TABLES]
    return SampleCheckReport(str(location), n, seed, verdicts)
