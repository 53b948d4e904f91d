"""Value profiles: what a column's values look like, from a bounded sample of its rows.

A profile says which share of a column's non-empty values look like e-mail addresses, phone
numbers, URLs, postcodes, dates, booleans, integers or decimal numbers, keeps a few sample values
for the review, and the distinct values of a small value set (a candidate option set). Only the
first :data:`SAMPLE_ROWS` rows of a table are read; the reader's generator is closed right after.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from producers.work4all.normalise import (
    BadValueError,
    PlaceholderDateError,
    parse_datetime,
    parse_decimal,
)
from producers.work4all.readers import Export, RawValue

SAMPLE_ROWS = 500
"""Rows read per table."""

SAMPLES = 5
"""Sample values kept per column for the review."""

OPTION_SET_MAX = 12
"""A text column with at most this many distinct values (and repeats) is an option-set candidate."""

DOMINANT = 0.75
"""A kind of value dominates a column from this share on (real data has typos and defects)."""

_DISTINCT_CAP = 64
_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,}")
_URL = re.compile(
    r"(?:https?://|www\.)\S+|[\w-]+(?:\.[\w-]+)*\.(?:de|com|at|ch|net|org|eu|info|biz|io)(?:/\S*)?",
    re.IGNORECASE,
)
_PHONE = re.compile(r"\+?[\d\s\-/().]{6,24}")
_POSTCODE = re.compile(r"\d{4,5}")
_INTEGER = re.compile(r"[+-]?\d+")
_DATE_TEXT = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:\s.*)?|\d{4}-\d{2}-\d{2}(?:[ T].*)?")
_BOOLEAN_TEXT = frozenset({"-1", "0", "1", "true", "false", "wahr", "falsch", "ja", "nein"})

SEMANTICS = (
    "boolean", "date", "email", "url", "phone", "postcode", "integer", "number", "text",
)  # fmt: skip
"""Value kinds in the order a dominant kind is chosen (the first with a large enough share)."""

_COMPATIBLE: dict[str, dict[str, float]] = {
    "boolean": {"integer": 0.6},
    "date": {},
    "email": {"text": 0.6},
    "url": {"text": 0.6},
    "phone": {"text": 0.6, "integer": 0.4},
    "postcode": {"integer": 0.7, "text": 0.7, "number": 0.3},
    "integer": {"number": 0.8, "money": 0.7, "boolean": 0.6, "postcode": 0.6, "text": 0.3},
    "number": {"money": 0.9, "integer": 0.6},
    "money": {"number": 0.9, "integer": 0.6},
    "text": {"phone": 0.4, "email": 0.3, "url": 0.3, "country": 0.7, "postcode": 0.5},
    "country": {"text": 0.7},
}


def compatibility(found: str, expected: str) -> float:
    """How well values of kind ``found`` fit a column that expects ``expected`` (0..1)."""
    if found == expected:
        return 1.0
    return max(
        _COMPATIBLE.get(found, {}).get(expected, 0.0), _COMPATIBLE.get(expected, {}).get(found, 0.0)
    )


@dataclass(slots=True)
class ColumnProfile:
    """What the sampled values of one column look like."""

    table: str
    column: str
    rows: int = 0
    non_empty: int = 0
    samples: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    """non-empty values per kind of :data:`SEMANTICS`; a value may count for several kinds."""
    values: Counter[str] = field(default_factory=Counter)
    """distinct values (as text), up to a cap."""
    max_length: int = 0
    multiline: bool = False
    midnight_only: bool = True
    """every date value is at 00:00 (a date without time)."""
    overflow: bool = False
    """more distinct values than were kept."""

    def share(self, kind: str) -> float:
        """The share of non-empty values that look like ``kind``."""
        return self.counts[kind] / self.non_empty if self.non_empty else 0.0

    @property
    def semantic(self) -> str | None:
        """The dominant kind of value, or ``None`` when the sample has no values."""
        if not self.non_empty:
            return None
        if self.share("boolean") == 1.0 and len(self.values) <= 3 and not self.overflow:
            return "boolean"
        for kind in SEMANTICS[1:-1]:
            if self.share(kind) >= DOMINANT:
                return kind
        return "text"

    @property
    def fill(self) -> float:
        """The share of sampled rows with a value."""
        return self.non_empty / self.rows if self.rows else 0.0

    def option_values(self) -> list[str] | None:
        """The distinct values of a small value set (an option-set candidate), else ``None``."""
        if self.overflow or self.semantic not in ("text", "integer") or self.non_empty < 10:
            return None
        if len(self.values) > OPTION_SET_MAX or len(self.values) * 3 > self.non_empty:
            return None
        return sorted(self.values)

    def add(self, raw: RawValue) -> None:
        """Count one raw value."""
        self.rows += 1
        if raw is None or (isinstance(raw, str) and raw.strip() in ("", "NULL")):
            return
        self.non_empty += 1
        text = _text(raw)
        if len(self.samples) < SAMPLES and text not in self.samples:
            self.samples.append(text if len(text) <= 60 else text[:57] + "…")
        if text in self.values or len(self.values) < _DISTINCT_CAP:
            self.values[text] += 1
        else:
            self.overflow = True
        self.max_length = max(self.max_length, len(text))
        self.multiline = self.multiline or "\n" in text
        for kind in _kinds(raw, text):
            self.counts[kind] += 1
            if kind == "date" and self.midnight_only:
                self.midnight_only = _is_midnight(raw)


def _text(raw: RawValue) -> str:
    if isinstance(raw, datetime):
        return raw.isoformat(sep=" ")
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


def _is_midnight(raw: RawValue) -> bool:
    try:
        moment = parse_datetime(raw)
    except BadValueError:
        return True
    return moment is None or (moment.hour, moment.minute, moment.second) == (0, 0, 0)


def _kinds(raw: RawValue, text: str) -> Iterable[str]:
    """The kinds a single value fits."""
    if isinstance(raw, bool):
        return ("boolean",)
    if isinstance(raw, datetime | date):
        return ("date",)
    if isinstance(raw, int):
        return ("integer", "boolean") if raw in (-1, 0, 1) else ("integer",)
    if isinstance(raw, float | Decimal):
        whole = float(raw).is_integer()
        return ("integer", "number") if whole else ("number",)
    return _text_kinds(text)


def _text_kinds(text: str) -> list[str]:
    found: list[str] = []
    lowered = text.casefold()
    if lowered in _BOOLEAN_TEXT:
        found.append("boolean")
    if _DATE_TEXT.fullmatch(text):
        try:
            if parse_datetime(text) is not None:
                found.append("date")
        except PlaceholderDateError:
            found.append("date")  # 0001-01-01 is a date column's way to say "none"
        except BadValueError:
            pass
    if "@" in text and _EMAIL.fullmatch(text):
        found.append("email")
    elif _URL.fullmatch(text):
        found.append("url")
    if _INTEGER.fullmatch(text):
        found.append("integer")
        if _POSTCODE.fullmatch(text):
            found.append("postcode")
    if "date" not in found:
        digits = sum(ch.isdigit() for ch in text)
        if _PHONE.fullmatch(text) and digits >= 6 and (text[0] in "+0(" or " " in text):
            found.append("phone")
        elif "integer" not in found:
            try:
                if parse_decimal(text) is not None:
                    found.append("number")
            except BadValueError:
                pass
    if not found:
        found.append("text")
    return found


def profile_table(
    export: Export, table: str, *, limit: int = SAMPLE_ROWS
) -> dict[str, ColumnProfile]:
    """Profiles of every column of ``table`` from its first ``limit`` rows."""
    profiles = {column: ColumnProfile(table, column) for column in export.columns(table)}
    rows = export.rows(table)
    try:
        for count, row in enumerate(rows, start=1):
            for column, profile in profiles.items():
                profile.add(row.raw.get(column))
            if count >= limit:
                break
    finally:
        rows.close()
    return profiles


def profile_export(
    export: Export,
    tables: Iterable[str],
    *,
    limit: int = SAMPLE_ROWS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, ColumnProfile]]:
    """Profiles of the columns of ``tables`` (as the export spells them), table by table."""
    found: dict[str, dict[str, ColumnProfile]] = {}
    for table in tables:
        found[table] = profile_table(export, table, limit=limit)
        if progress is not None:
            progress(table)
    return found
