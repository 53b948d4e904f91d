"""From a raw work4all row to a canonical, typed source record.

The canonical record is the same whatever form the export had: SQL ``12.3`` (float), CSV
``"12,30"`` and an Excel number all become ``Decimal("12.30")``. The rules follow the column
kinds of :mod:`.tables` and the conventions of work4all (reference sections 1.2, 1.5, 1.6):

- ``CODE``: an int; ``0``, ``NULL`` and ``""`` all mean "no reference" and become ``None``.
- ``BOOL``: ``-1`` (and ``1`` in ``bit`` columns, ``WAHR``, ``Ja``, …) is ``True``, ``0`` ``False``.
- ``MONEY``: a ``Decimal`` rounded to cents (``ROUND_HALF_UP``) from a float, a ``Decimal`` or
  German text (``1.234,56``, ``1234,56 €``, ``123,45-``).
- ``FLOAT`` and ``INT``: ``float`` and ``int``, from numbers or German text.
- ``DATETIME``: a naive ``datetime`` with whole seconds (CSV carries no fractions and Excel stores
  a day fraction), from SQL values, Excel serials, ISO text or German ``dd.mm.yyyy [HH:MM[:SS]]``.
  Placeholders (``0001-01-01``, ``01.01.0001``, ``00.00.0000``, ``1900-01-01``, the Excel zero
  date ``30.12.1899``) become ``None`` with a finding.
- ``TEXT``: trimmed, NFC, ``\\r\\n`` as ``\\n``, empty as ``None``; text that is UTF-8 read as
  Windows-1252 (``MÃ¼ller``) is repaired with a finding. ``Staat`` becomes ISO 3166 alpha-2.
- Custom fields: a ``Feld<N>`` column of a table is labelled by the ``IndividualFields`` row with
  that ``TableType`` and ``FieldNumber``; a combo's stored index becomes the option's text.

A value that cannot be read becomes ``None`` with a :class:`Finding`; the row is still used. A
column the specification does not know (renamed or added by the installation) is kept as text
under its own name, so a map can read it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import pairwise
from zoneinfo import ZoneInfo

from producers.work4all.errors import ExportError, Finding, Severity
from producers.work4all.readers import Export, RawValue, SourceRow, fold_name
from producers.work4all.tables import TABLES, Column, Kind, Table

CanonicalValue = str | int | float | bool | Decimal | datetime | None

CORE_TABLES = ("Kunden", "KAnsprechp", "Mitarbeiter")
"""Tables without which an export cannot be migrated; a missing one is an error, others warn."""

_CENT = Decimal("0.01")
_LOCAL = ZoneInfo("Europe/Berlin")
_EXCEL_EPOCH = datetime(1899, 12, 30)
_PLACEHOLDER_DAYS = {date(1, 1, 1), date(1899, 12, 30), date(1899, 12, 31), date(1900, 1, 1)}
_GERMAN_DATE = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
)
_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_ZERO_DATE = re.compile(r"0{1,2}\.0{1,2}\.0{2,4}(?:\s.*)?|0000-00-00(?:\s.*)?")
_SERIAL = re.compile(r"\d{1,6}(?:[.,]\d+)?")
# Most cells are plain: "12345", "-12,5", "1234.56"; they skip the general parse.
_SIMPLE_NUMBER = re.compile(r"-?\d+(?:[,.]\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+")
_MOJIBAKE = re.compile("[ÃÂâ][\u0080-\u00bf\u0152-\u2122]")
_TRUE = frozenset({"-1", "1", "true", "wahr", "ja", "j", "yes", "y", "x"})
_FALSE = frozenset({"0", "false", "falsch", "nein", "n", "no"})
_NULL_TEXT = frozenset({"", "NULL"})

# Vehicle-registration codes work4all stores in Staat, and German country names, to ISO 3166.
_COUNTRIES = {
    "D": "DE", "DEU": "DE", "DEUTSCHLAND": "DE", "GERMANY": "DE", "BRD": "DE",
    "A": "AT", "AUT": "AT", "ÖSTERREICH": "AT", "OESTERREICH": "AT", "AUSTRIA": "AT",
    "CH": "CH", "CHE": "CH", "SCHWEIZ": "CH", "SWITZERLAND": "CH",
    "FL": "LI", "LIECHTENSTEIN": "LI", "B": "BE", "BELGIEN": "BE", "NL": "NL",
    "NIEDERLANDE": "NL", "L": "LU", "LUXEMBURG": "LU", "F": "FR", "FRANKREICH": "FR",
    "I": "IT", "ITALIEN": "IT", "E": "ES", "SPANIEN": "ES", "P": "PT", "DK": "DK",
    "DÄNEMARK": "DK", "S": "SE", "SCHWEDEN": "SE", "N": "NO", "NORWEGEN": "NO", "FIN": "FI",
    "SF": "FI", "PL": "PL", "POLEN": "PL", "CZ": "CZ", "TSCHECHIEN": "CZ", "SK": "SK",
    "H": "HU", "UNGARN": "HU", "SLO": "SI", "HR": "HR", "GB": "GB", "UK": "GB",
    "IRL": "IE", "GR": "GR", "RO": "RO", "BG": "BG", "EST": "EE", "LV": "LV", "LT": "LT",
    "M": "MT", "CY": "CY", "TR": "TR", "USA": "US", "RUS": "RU", "UA": "UA", "SRB": "RS",
}  # fmt: skip


class BadValueError(ValueError):
    """A value that cannot be read as its column's kind."""

    kind = "bad_value"
    severity: Severity = "error"


class PlaceholderDateError(BadValueError):
    """A sentinel date that means "no date" (``0001-01-01``, ``30.12.1899``, …)."""

    kind = "placeholder_date"
    severity: Severity = "warning"


class UnknownCountryError(BadValueError):
    """A ``Staat`` value that maps to no ISO country."""

    kind = "unknown_country"
    severity: Severity = "warning"


def _number_text(text: str) -> Decimal | None:
    """Parse German (``1.234,56``), plain (``1234.56``) or English (``1,234.56``) number text."""
    simple = text.strip()
    if _SIMPLE_NUMBER.fullmatch(simple):
        return Decimal(simple.replace(",", "."))
    cleaned = (
        text.strip()
        .replace("\u00a0", "")
        .replace("\u202f", "")
        .replace(" ", "")
        .removesuffix("€")
        .removesuffix("EUR")
        .removesuffix("%")
    )
    if cleaned in _NULL_TEXT:
        return None
    negative = cleaned.endswith("-") and len(cleaned) > 1
    if negative:
        cleaned = cleaned[:-1]
    comma, dot = cleaned.rfind(","), cleaned.rfind(".")
    if comma >= 0 and dot >= 0:
        thousands = "." if comma > dot else ","
        cleaned = cleaned.replace(thousands, "").replace(",", ".")
    elif comma >= 0:
        cleaned = cleaned.replace(",", ".") if cleaned.count(",") == 1 else cleaned.replace(",", "")
    elif cleaned.count(".") > 1:
        cleaned = cleaned.replace(".", "")
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise BadValueError(f"not a number: {text!r}") from None
    if not number.is_finite():
        raise BadValueError(f"not a number: {text!r}")
    return -number if negative else number


def parse_decimal(value: RawValue) -> Decimal | None:
    """Return ``value`` as an exact ``Decimal``; floats by their shortest repr (``12.3``)."""
    if value is None:
        return None
    if isinstance(value, bool | datetime | date | time):
        raise BadValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValueError(f"not a number: {value!r}")
        return Decimal(repr(value))
    return _number_text(value)


def parse_money(value: RawValue) -> Decimal | None:
    """Return an amount as ``Decimal`` rounded half-up to cents (``-0,00`` is ``0.00``)."""
    number = parse_decimal(value)
    if number is None:
        return None
    # Adding zero turns -0.00 into 0.00, so equal amounts also print alike.
    return number.quantize(_CENT, rounding=ROUND_HALF_UP) + 0


def parse_float(value: RawValue) -> float | None:
    """Return a quantity, rate or percentage as ``float``."""
    if isinstance(value, float):
        return value
    number = parse_decimal(value)
    return None if number is None else float(number)


def parse_int(value: RawValue) -> int | None:
    """Return a whole number; ``1.234`` in German text is one thousand two hundred thirty-four."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and _THOUSANDS.fullmatch(value.strip()):
        return int(value.strip().replace(".", ""))
    number = parse_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise BadValueError(f"not a whole number: {value!r}")
    return int(number)


def parse_code(value: RawValue) -> int | None:
    """Return a key or link; ``0``, ``NULL`` and ``""`` mean "no reference" and give ``None``."""
    code = parse_int(value)
    return None if code == 0 else code


def parse_bool(value: RawValue) -> bool | None:
    """Return a work4all flag: ``-1``, ``1``, ``WAHR``, ``Ja`` are true; ``0``, ``Nein`` false."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal) and value in (-1, 0, 1):
        return value != 0
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in ("", "null"):
            return None
        if text in _TRUE or text in ("-1,0", "-1.0", "1,0", "1.0"):
            return True
        if text in _FALSE or text in ("0,0", "0.0"):
            return False
    raise BadValueError(f"not a yes/no value: {value!r}")


def _checked(moment: datetime, original: RawValue) -> datetime:
    if moment.date() in _PLACEHOLDER_DAYS:
        raise PlaceholderDateError(f"placeholder date {original!s} means no date")
    # Whole seconds: Excel's day fractions are off by microseconds, CSV carries no fraction.
    return (moment + timedelta(microseconds=500)).replace(microsecond=0)


def _excel_serial(serial: float, original: RawValue) -> datetime:
    if serial <= 0:
        raise PlaceholderDateError(f"placeholder date {original!s} (Excel day zero) means no date")
    if serial > 2_958_465:
        raise BadValueError(f"not a date: {original!r}")
    # Excel counts a 29 February 1900 that never was, so serials before it start a day later.
    epoch = _EXCEL_EPOCH if serial >= 61 else _EXCEL_EPOCH + timedelta(days=1)
    return _checked(epoch + timedelta(days=serial), original)


def _fraction(digits: str | None) -> int:
    return int((digits or "0")[:6].ljust(6, "0"))


def _datetime_text(text: str) -> datetime | None:
    stripped = text.strip()
    if stripped in _NULL_TEXT:
        return None
    if _ZERO_DATE.fullmatch(stripped):
        raise PlaceholderDateError(f"placeholder date {stripped!r} means no date")
    try:
        german = _GERMAN_DATE.fullmatch(stripped)
        if german:
            day, month, year, hour, minute, second, fraction = german.groups()
            full_year = int(year) if len(year) == 4 else 2000 + int(year)
            if len(year) == 2 and full_year > date.today().year + 10:
                full_year -= 100
            moment = datetime(
                full_year,
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                _fraction(fraction),
            )
            return _checked(moment, text)
        iso = _ISO_DATE.fullmatch(stripped)
        if iso:
            year, month, day, hour, minute, second, fraction, zone = iso.groups()
            moment = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                _fraction(fraction),
            )
            if zone and moment.year > 1:
                # The API shifts local dates to UTC; work4all's own values are local time.
                aware = datetime.fromisoformat(f"{moment.isoformat()}{zone.replace('Z', '+00:00')}")
                moment = aware.astimezone(_LOCAL).replace(tzinfo=None)
            return _checked(moment, text)
    except ValueError as error:
        if isinstance(error, BadValueError):
            raise
        raise BadValueError(f"not a date: {text!r} ({error})") from None
    if _SERIAL.fullmatch(stripped):
        return _excel_serial(float(stripped.replace(",", ".")), text)
    raise BadValueError(f"not a date: {text!r}")


def parse_datetime(value: RawValue) -> datetime | None:
    """Return a point in time as a naive local ``datetime`` with whole seconds.

    Accepts SQL datetimes and dates, Excel serial numbers, ISO text (``2024-04-30 00:00:00``,
    ``…T23:00:00Z`` shifted back to local time) and German text (``30.04.2024``,
    ``30.04.2024 09:01:35``, ``3.5.24``). Raises :class:`PlaceholderDateError` for "no date"
    sentinels and :class:`BadValueError` for anything else that is not a date.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_LOCAL).replace(tzinfo=None)
        return _checked(value, value)
    if isinstance(value, date):
        return _checked(datetime.combine(value, time()), value)
    if isinstance(value, bool | time):
        raise BadValueError(f"not a date: {value!r}")
    if isinstance(value, int | float | Decimal):
        return _excel_serial(float(value), value)
    return _datetime_text(value)


def repair_mojibake(text: str) -> str | None:
    """Return ``text`` decoded again when it is UTF-8 that was read as Windows-1252, else None."""
    if not _MOJIBAKE.search(text):
        return None
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return None


def parse_text(value: RawValue) -> str | None:
    """Return text trimmed, in NFC, with ``\\n`` line ends; empty text and ``NULL`` are None."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").strip())
    return None if text in _NULL_TEXT else text


def parse_country(value: RawValue) -> str | None:
    """Return a ``Staat`` value as ISO 3166 alpha-2 (``D`` → ``DE``, ``A`` → ``AT``)."""
    text = parse_text(value)
    if text is None:
        return None
    key = text.upper().replace(".", "").strip()
    if key in _COUNTRIES:
        return _COUNTRIES[key]
    if len(key) == 2 and key.isascii() and key.isalpha():
        return key
    raise UnknownCountryError(f"unknown country {text!r}; left empty")


_PARSERS: dict[Kind, Callable[[RawValue], CanonicalValue]] = {
    Kind.CODE: parse_code,
    Kind.INT: parse_int,
    Kind.BOOL: parse_bool,
    Kind.TEXT: parse_text,
    Kind.MONEY: parse_money,
    Kind.FLOAT: parse_float,
    Kind.DATETIME: parse_datetime,
}


def _parser(column: Column, table: Table) -> Callable[[RawValue], CanonicalValue]:
    # A table's own key 0 is a real row (Anrede 0 = "-Ohne-"); only links use 0 for none.
    return parse_int if column.name == table.key else _PARSERS[column.kind]


@dataclass(frozen=True, slots=True)
class CustomField:
    """One ``IndividualFields`` definition: the label of ``<table>.Feld<number>``.

    ``options`` maps a combo's stored index (as text) to the option's text. In a ``Title`` such
    as ``Akt vorhanden;;;0```Ja;;;1```Nein;;;2```Noch anlegen;;;`` the first segment's text is
    the label and the index after each ``;;;`` belongs to the option that follows it (``Ja`` = 0,
    ``Nein`` = 1, ``Noch anlegen`` = 2): three indices for three options. The reference leaves
    this reading unconfirmed; it is the one the generator writes.
    """

    code: int
    table: str
    number: int
    control: str
    label: str
    options: Mapping[str, str] = field(default_factory=dict)
    required: bool = False

    @property
    def column(self) -> str:
        """The physical column holding the values (``Feld3``)."""
        return f"Feld{self.number}"

    def resolve(self, value: CanonicalValue) -> CanonicalValue:
        """Return a combo's option text for a stored index; other values unchanged."""
        if not self.options or value is None:
            return value
        index = str(value).strip()
        if index in self.options:
            return self.options[index]
        if index in self.options.values():
            return index
        raise BadValueError(f"{value!r} is not an option of {self.label!r}")


def parse_title(title: str) -> tuple[str, dict[str, str]]:
    """Split an ``IndividualFields.Title`` into its label and combo options (index → text)."""
    segments = [segment for segment in title.split("```") if segment]
    label = segments[0].partition(";;;")[0].strip() if segments else ""
    options: dict[str, str] = {}
    for previous, segment in pairwise(segments):
        index = previous.partition(";;;")[2].strip() or str(len(options))
        options[index] = segment.partition(";;;")[0].strip()
    return label, options


@dataclass(frozen=True, slots=True)
class CustomValue:
    """A custom field's value with its definition's label."""

    definition: int
    label: str
    value: CanonicalValue


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A canonical, typed work4all record: the same for every form of the same export.

    ``values`` holds the specified columns present in the export, typed by kind; ``custom`` the
    defined custom fields by column (``Feld1``) with their labels; ``findings`` every problem met
    on the way from bytes to values (reader and normaliser).
    """

    table: str
    key: int | None
    position: int
    values: dict[str, CanonicalValue]
    custom: dict[str, CustomValue]
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to turn one table's rows into records, prepared once per table and header."""

    table: Table
    columns: tuple[tuple[str, Column, Callable[[RawValue], CanonicalValue]], ...]
    custom: Mapping[str, CustomField]


class Normaliser:
    """Turns source rows into canonical records for the tables of :mod:`.tables`."""

    def __init__(
        self, tables: Mapping[str, Table] = TABLES, custom_fields: Iterable[CustomField] = ()
    ) -> None:
        self._tables = {fold_name(name): table for name, table in tables.items()}
        self.custom_fields = tuple(custom_fields)
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    @classmethod
    def for_export(cls, export: Export, tables: Mapping[str, Table] = TABLES) -> Normaliser:
        """Return a normaliser that knows the custom fields defined in ``export``."""
        plain = cls(tables)
        found = export.find_table("IndividualFields")
        if found is None:
            return plain
        definitions = [
            definition
            for record in plain.records(export, found)
            if (definition := _definition(record, plain)) is not None
        ]
        return cls(tables, definitions)

    def spec(self, table: str) -> Table | None:
        """Return the specification of a table by any spelling of its name."""
        return self._tables.get(fold_name(table))

    def records(self, export: Export, table: str) -> Iterator[SourceRecord]:
        """Yield the canonical records of ``table`` in ``export``, one at a time.

        Raises ``KeyError`` for a table the specification does not list (check with ``spec``).
        """
        source = export.source(table)
        for row in export.rows(table):
            yield self.record(row, source)

    def record(self, row: SourceRow, source: str) -> SourceRecord:
        """Return the canonical record for ``row``; ``source`` names its file in findings.

        Raises ``KeyError`` for a table the specification does not list (check with ``spec``).
        """
        plan = self._plan(row.table, tuple(row.raw))
        findings = list(row.findings)
        values: dict[str, CanonicalValue] = {}
        for name, column, parse in plan.columns:
            raw = row.raw.get(name)
            try:
                value = parse(raw)
            except BadValueError as problem:
                findings.append(
                    Finding(
                        source, row.position, name, problem.kind, str(problem), problem.severity
                    )
                )
                value = None
            if isinstance(value, str):
                value = self._checked_text(value, column, source, row.position, findings)
            values[column.name] = value
        custom: dict[str, CustomValue] = {}
        for name, definition in plan.custom.items():
            try:
                resolved = definition.resolve(values.get(name))
            except BadValueError as problem:
                findings.append(
                    Finding(source, row.position, name, "bad_custom_value", str(problem))
                )
                resolved = values.get(name)
            custom[name] = CustomValue(definition.code, definition.label, resolved)
        key = values.get(plan.table.key)
        if key is None:
            findings.append(
                Finding(
                    source, row.position, plan.table.key, "missing_key", "row has no key", "error"
                )
            )
        return SourceRecord(
            plan.table.name,
            key if isinstance(key, int) else None,
            row.position,
            values,
            custom,
            tuple(findings),
        )

    @staticmethod
    def _checked_text(
        text: str, column: Column, source: str, position: int, findings: list[Finding]
    ) -> CanonicalValue:
        repaired = repair_mojibake(text)
        if repaired is not None:
            findings.append(
                Finding(
                    source,
                    position,
                    column.name,
                    "encoding",
                    f"UTF-8 text read as Windows-1252 ({text[:40]!r}); repaired",
                )
            )
            text = repaired
        if column.name == "Staat":
            try:
                return parse_country(text)
            except BadValueError as problem:
                findings.append(Finding(source, position, column.name, problem.kind, str(problem)))
                return None
        if column.max_length is not None and len(text) > column.max_length:
            findings.append(
                Finding(
                    source,
                    position,
                    column.name,
                    "too_long",
                    f"{len(text)} characters, longer than the column's {column.max_length}",
                )
            )
        return text

    def _plan(self, table: str, header: tuple[str, ...]) -> _Plan:
        plan = self._plans.get((table, header))
        if plan is None:
            spec = self.spec(table)
            if spec is None:
                raise KeyError(f"{table} is not a work4all table crmledger reads")
            by_fold = {fold_name(column.name): column for column in spec.columns}
            custom = {
                definition.column: definition
                for definition in self.custom_fields
                if fold_name(definition.table) == fold_name(spec.name)
            }
            # An installation may define more custom fields than the specification lists.
            for name in custom:
                by_fold.setdefault(fold_name(name), Column(name, Kind.TEXT))
            # A column the specification does not know (renamed, or added by the installation)
            # is kept as text: a confirmed map may read it under its own name.
            columns = tuple(
                (name, column, _parser(column, spec))
                for name in header
                if name.strip()
                for column in (by_fold.get(fold_name(name)) or Column(name.strip(), Kind.TEXT),)
            )
            plan = _Plan(spec, columns, custom)
            self._plans[(table, header)] = plan
        return plan


def _definition(record: SourceRecord, normaliser: Normaliser) -> CustomField | None:
    values = record.values
    code, number, table = values.get("Code"), values.get("FieldNumber"), values.get("TableType")
    title = values.get("Title")
    if not isinstance(code, int) or not isinstance(number, int) or not isinstance(table, str):
        return None
    spec = normaliser.spec(table)
    label, options = parse_title(title if isinstance(title, str) else "")
    control = values.get("Control")
    return CustomField(
        code=code,
        table=spec.name if spec else table,
        number=number,
        control=control if isinstance(control, str) else "",
        label=label,
        options=options if isinstance(control, str) and control.casefold() == "combo" else {},
        required=values.get("Pflichtfeld") is True,
    )


def check_structure(
    export: Export, normaliser: Normaliser, tables: Mapping[str, Table] = TABLES
) -> list[Finding]:
    """Return what the export lacks: tables, columns, and custom-field definitions or columns.

    A missing core table (:data:`CORE_TABLES`) or required column is an ``error``: that table
    cannot be migrated. Other gaps are warnings; the rest of the export is read either way.
    """
    findings: list[Finding] = []
    for name, spec in tables.items():
        found = export.find_table(name)
        if found is None:
            severity: Severity = "error" if name in CORE_TABLES else "warning"
            findings.append(
                Finding(name, None, None, "missing_table", f"table {name} is missing", severity)
            )
            continue
        source = export.source(found)
        try:
            present = {fold_name(column) for column in export.columns(found)}
        except ExportError as error:
            findings.append(
                Finding(
                    error.file, error.row, error.column, "unreadable_table", error.message, "error"
                )
            )
            continue
        for column in spec.columns:
            if fold_name(column.name) not in present:
                severity = "error" if column.required else "warning"
                qualifier = "required column" if column.required else "column"
                findings.append(
                    Finding(
                        source,
                        1,
                        column.name,
                        "missing_column",
                        f"{qualifier} {column.name} is missing from the header",
                        severity,
                    )
                )
        defined = {
            definition.column
            for definition in normaliser.custom_fields
            if fold_name(definition.table) == fold_name(name)
        }
        findings.extend(
            Finding(
                source,
                1,
                field_column,
                "custom_field_without_column",
                "IndividualFields defines this field but the table has no such column",
            )
            for field_column in sorted(defined)
            if fold_name(field_column) not in present
        )
        findings.extend(
            Finding(
                source,
                1,
                column.name,
                "custom_field_undefined",
                "no IndividualFields definition labels this column",
            )
            for column in spec.columns
            if defined
            and re.fullmatch(r"Feld\d+", column.name)
            and column.name not in defined
            and fold_name(column.name) in present
        )
    return findings
