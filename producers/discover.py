"""Discovery: the migration scope report for a work4all export.

One streaming pass per table collects record counts, field coverage, date ranges, the custom
fields in use, data-quality problems, owners that cannot be matched, the open-item
reconciliation and the Dynamics 365 edition the migration needs. Memory stays bounded: beyond
counters it keeps only ints per key (customer codes, user codes, open-item amounts and
duplicate fingerprints) and at most :data:`EXAMPLES` examples per problem class.

Defect classes carry the names of :class:`producers.work4all.defects.Defect`, so a report can be
set against what the generator injected. How each class is recognised:

- ``duplicate_customer``: Kunden rows sharing a fingerprint (postcode, street with ``Str.``
  spelled out, first word of ``Firma1``, phone digits; compared case- and umlaut-folded); in each
  group the row with the lowest ``Nummer`` is the original, every other row a duplicate.
- ``orphan_contact``: a KAnsprechp row whose ``KundenCode`` matches no Kunden row.
- ``owner_missing`` / ``owner_free_text``: a Kunden row without ``VertreterCode`` and with no /
  only a free-text ``PersonErstkontakt``.
- ``departed_owner``: ``VertreterCode``, ``BenutzerCode``, ``BCode`` or ``BCode2`` pointing to a
  Mitarbeiter with ``Ausgeschieden`` set (Mitarbeiter's own ``BenutzerCode`` excepted).
- ``mixed_encoding``: a row whose text was UTF-8 read as Windows-1252, or a UTF-8 line in a
  Windows-1252 file (one finding per row).
- ``text_date``: a date column holding text in a format other than the form's own: a typed
  datetime (or ISO text, SQLite's storage) in SQL, a date cell in Excel, ``dd.mm.yyyy`` in CSV.
- ``placeholder_date``: ``0001-01-01`` and the other "no date" sentinels.
- ``float_noise``: a money value with more than two decimals (``48.7400016784668``).
- ``payment_mismatch``: an RA row whose ``BezSumme`` differs from the sum of its RABezSumme.
- ``overlong_string``: text longer than the column's nvarchar length in :mod:`.tables`.
- ``invalid_email``: an e-mail column whose raw value is not a plain ``local@domain.tld``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from producers.work4all.csv_reader import CsvExport
from producers.work4all.defects import Defect
from producers.work4all.errors import Finding
from producers.work4all.normalise import (
    BadValueError,
    Normaliser,
    SourceRecord,
    check_structure,
    parse_decimal,
)
from producers.work4all.readers import Export, SourceRow, fold_name, open_export
from producers.work4all.sql_reader import SqlExport
from producers.work4all.tables import TABLES, Kind, Table

EXAMPLES = 5
"""Examples kept per problem class."""

PROFESSIONAL_CUSTOM_TABLE_CAP = 15
"""Custom tables a Dynamics 365 Sales Professional licence allows."""

UNKNOWN_OWNER = "unknown_owner"
"""An owner code that matches no Mitarbeiter row (not a generator defect class)."""

STANDARD_TARGETS: dict[str, str] = {
    "Mitarbeiter": "systemuser",
    "Anrede": "choice (salutation)",
    "KundenGr": "choice (account category)",
    "Preisgruppen": "pricelevel",
    "Einheit": "uom",
    "Mehrwertsteuersätze": "choice (tax rate)",
    "ArtikelGr": "product family",
    "IndividualFields": "custom columns",
    "Kunden": "account",
    "Lieferanten": "account (supplier)",
    "KAnsprechp": "contact",
    "LAnsprechp": "contact",
    "Artikel": "product",
    "Preise": "productpricelevel",
    "Verkaufschancen": "opportunity",
    "Angebot": "quote",
    "Rechnung": "invoice",
    "Positionen": "quotedetail / invoicedetail",
    "Telefonate": "phonecall",
    "TelefonateAnhang": "annotation",
    "Whattodos": "task",
    "Termine": "appointment",
    "TermineTeilnehmer": "activityparty",
    "Briefe": "email / letter",
}
"""work4all tables the default mapping puts into standard Dynamics 365 Sales tables."""

CUSTOM_TARGETS: dict[str, str] = {
    "RA": "w4a_openitem",
    "RABezSumme": "w4a_payment",
    "Kontaktbericht": "w4a_visitreport",
}
"""work4all tables without a Sales counterpart: each needs one custom table when it has rows."""

_OWNER_COLUMNS = ("VertreterCode", "BenutzerCode", "BCode", "BCode2")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_GERMAN_DATE_TEXT = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?: \d{1,2}:\d{2}(?::\d{2})?)?")
_ISO_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_LEGAL_NOISE = re.compile(r"&\s*co\.?\s*kg")
_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_FINDING_CLASSES = {
    "placeholder_date": Defect.PLACEHOLDER_DATE.value,
    "too_long": Defect.OVERLONG_STRING.value,
    "encoding": Defect.MIXED_ENCODING.value,
}

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class Example:
    """Where one instance of a problem is: file, row (in the export's unit), key and column."""

    file: str
    row: int | None
    key: int | None
    column: str | None
    detail: str


@dataclass(slots=True)
class Issue:
    """One class of problem: how often it occurs, up to :data:`EXAMPLES` examples, the keys."""

    name: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)
    keys: list[tuple[str, int | None]] = field(default_factory=list)
    """(table, key) of every instance, for checking against ground truth; not rendered."""

    def add(self, table: str, example: Example) -> None:
        """Count one instance."""
        self.count += 1
        self.keys.append((table, example.key))
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass(slots=True)
class TableProfile:
    """Counts, coverage and date ranges of one table."""

    name: str
    source: str
    records: int = 0
    filled: dict[str, int] = field(default_factory=dict)
    date_ranges: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)

    def coverage(self) -> dict[str, float]:
        """Share of non-empty values per column (0.0 … 1.0)."""
        return {
            column: (count / self.records if self.records else 0.0)
            for column, count in self.filled.items()
        }


@dataclass(frozen=True, slots=True)
class CustomFieldInfo:
    """An ``IndividualFields`` definition as found in the export."""

    table: str
    column: str
    label: str
    control: str
    options: dict[str, str]
    required: bool
    filled: int


@dataclass(slots=True)
class OwnerSummary:
    """Owners that cannot be matched to an active Mitarbeiter."""

    missing: int = 0
    free_text: int = 0
    departed: int = 0
    unknown: int = 0
    free_text_names: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Reconciliation:
    """Open items (RA) against their payments (RABezSumme), in cents."""

    open_items: int = 0
    gross_cents: int = 0
    recorded_paid_cents: int = 0
    payments: int = 0
    payments_cents: int = 0
    disagreements: int = 0
    disagreement_cents: int = 0
    payments_without_open_item: int = 0

    @property
    def outstanding_cents(self) -> int:
        """Gross amount of all open items not covered by payments."""
        return self.gross_cents - self.payments_cents


@dataclass(frozen=True, slots=True)
class Edition:
    """The Dynamics 365 Sales edition the export needs."""

    custom_tables: tuple[str, ...]
    cap: int
    edition: str
    rule: str


@dataclass(slots=True)
class DiscoveryReport:
    """Everything discovery found in one export."""

    export: str
    form: str
    tables: list[TableProfile] = field(default_factory=list)
    custom_fields: list[CustomFieldInfo] = field(default_factory=list)
    issues: dict[str, Issue] = field(default_factory=dict)
    other_findings: dict[str, Issue] = field(default_factory=dict)
    structure: list[Finding] = field(default_factory=list)
    owners: OwnerSummary = field(default_factory=OwnerSummary)
    reconciliation: Reconciliation = field(default_factory=Reconciliation)
    edition: Edition | None = None

    @property
    def total_records(self) -> int:
        """Records in all tables."""
        return sum(table.records for table in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the report (examples, not keys)."""

        def issue(item: Issue) -> dict[str, Any]:
            return {"count": item.count, "examples": [asdict(e) for e in item.examples]}

        recon = self.reconciliation
        return {
            "export": self.export,
            "form": self.form,
            "total_records": self.total_records,
            "tables": [
                {
                    "name": table.name,
                    "source": table.source,
                    "records": table.records,
                    "coverage": {k: round(v, 4) for k, v in table.coverage().items()},
                    "date_ranges": {
                        column: [low.isoformat(sep=" "), high.isoformat(sep=" ")]
                        for column, (low, high) in table.date_ranges.items()
                    },
                }
                for table in self.tables
            ],
            "custom_fields": [asdict(custom) for custom in self.custom_fields],
            "issues": {name: issue(item) for name, item in self.issues.items()},
            "other_findings": {name: issue(item) for name, item in self.other_findings.items()},
            "structure": [asdict(finding) for finding in self.structure],
            "owners": {
                "missing": self.owners.missing,
                "free_text": self.owners.free_text,
                "departed": self.owners.departed,
                "unknown": self.owners.unknown,
                "free_text_names": dict(self.owners.free_text_names.most_common(20)),
            },
            "reconciliation": {
                "open_items": recon.open_items,
                "gross": _euros(recon.gross_cents),
                "recorded_paid": _euros(recon.recorded_paid_cents),
                "payments": recon.payments,
                "payments_total": _euros(recon.payments_cents),
                "outstanding": _euros(recon.outstanding_cents),
                "disagreements": recon.disagreements,
                "disagreement_total": _euros(recon.disagreement_cents),
                "payments_without_open_item": recon.payments_without_open_item,
            },
            "edition": asdict(self.edition) if self.edition else None,
        }


def _euros(cents: int) -> str:
    return str(Decimal(cents) / 100)


def _cents(value: object) -> int | None:
    return int(value * 100) if isinstance(value, Decimal) else None


def _fold(text: str) -> str:
    return text.casefold().translate(_TRANSLITERATION)


def _fingerprint(values: dict[str, Any]) -> int:
    """A 64-bit fingerprint under which near-duplicate customers collide."""
    firma = _LEGAL_NOISE.sub("", _fold(str(values.get("Firma1") or "")))
    street = _fold(str(values.get("Straße") or "")).replace("str.", "strasse")
    phone = "".join(ch for ch in str(values.get("Telefon") or "") if ch.isdigit())
    first_word = (firma.split() or [""])[0]
    parts = (str(values.get("Plz") or ""), " ".join(street.split()), first_word, phone)
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _form(export: Export) -> str:
    if isinstance(export, CsvExport):
        return "csv"
    if isinstance(export, SqlExport):
        return "sql"
    return "xlsx"


class _Discovery:
    """The state of one discovery run; ``run`` fills a :class:`DiscoveryReport`."""

    def __init__(self, export: Export, progress: Progress | None) -> None:
        self.export = export
        self.progress = progress
        self.report = DiscoveryReport(export.location, _form(export))
        for defect in Defect:
            self.report.issues[defect.value] = Issue(defect.value)
        self.report.issues[UNKNOWN_OWNER] = Issue(UNKNOWN_OWNER)
        self.users: set[int] = set()
        self.departed: set[int] = set()
        self.customers: set[int] = set()
        self.fingerprints: dict[int, list[tuple[int, int, int, str]]] = {}
        self.open_items: dict[int, tuple[int, int, str]] = {}
        self.paid: dict[int, int] = {}

    def run(self) -> DiscoveryReport:
        normaliser = Normaliser.for_export(self.export)
        self.report.structure = check_structure(self.export, normaliser)
        for name, spec in TABLES.items():
            found = self.export.find_table(name)
            if found is not None:
                self._table(normaliser, found, spec)
        known = {fold_name(name) for name in TABLES}
        for table in self.export.tables():
            if fold_name(table) not in known:
                profile = TableProfile(table, self.export.source(table))
                profile.records = sum(1 for _ in self.export.rows(table))
                self.report.tables.append(profile)
        self._duplicates()
        self._reconcile()
        self._custom_fields(normaliser)
        self.report.edition = required_edition(
            {profile.name: profile.records for profile in self.report.tables}
        )
        return self.report

    def _issue(self, defect: Defect | str, table: str, example: Example) -> None:
        self.report.issues[str(defect)].add(table, example)

    def _table(self, normaliser: Normaliser, table: str, spec: Table) -> None:
        source = self.export.source(table)
        profile = TableProfile(spec.name, source)
        self.report.tables.append(profile)
        form = self.report.form
        money = [c.name for c in spec.columns if c.kind is Kind.MONEY]
        dates = [c.name for c in spec.columns if c.kind is Kind.DATETIME]
        emails = [c.name for c in spec.columns if "email" in fold_name(c.name)]
        owners = [c for c in _OWNER_COLUMNS if spec.name != "Mitarbeiter"]
        for row in self.export.rows(table):
            record = normaliser.record(row, source)
            profile.records += 1
            self._profile(profile, record)
            raw = _raw_by_column(row, spec)
            self._findings(spec.name, record)
            for column in money:
                self._float_noise(spec.name, source, record, column, raw.get(column))
            for column in dates:
                self._text_date(spec.name, source, record, column, raw.get(column), form)
            for column in emails:
                self._email(spec.name, source, record, column, raw.get(column))
            for column in owners:
                self._departed(spec.name, source, record, column)
            self._cross_table(spec.name, source, record)
            if self.progress is not None and profile.records % 1000 == 0:
                self.progress(spec.name, 1000)
        if self.progress is not None:
            self.progress(spec.name, profile.records % 1000)

    @staticmethod
    def _profile(profile: TableProfile, record: SourceRecord) -> None:
        for column, value in record.values.items():
            filled = profile.filled.setdefault(column, 0)
            if value is None:
                continue
            profile.filled[column] = filled + 1
            if isinstance(value, datetime):
                low, high = profile.date_ranges.get(column, (value, value))
                profile.date_ranges[column] = (min(low, value), max(high, value))

    def _findings(self, table: str, record: SourceRecord) -> None:
        seen: set[str] = set()
        for finding in record.findings:
            name = _FINDING_CLASSES.get(finding.kind)
            example = Example(
                finding.file, finding.row, record.key, finding.column, finding.message
            )
            if name is None:
                issue = self.report.other_findings.setdefault(finding.kind, Issue(finding.kind))
                issue.add(table, example)
            elif name not in seen:
                # a mixed line can show in several cells; the row counts once per class
                seen.add(name)
                self._issue(name, table, example)

    def _float_noise(
        self, table: str, source: str, record: SourceRecord, column: str, raw: object
    ) -> None:
        try:
            number = parse_decimal(raw)  # type: ignore[arg-type]
        except BadValueError:
            return
        if number is not None and -number.as_tuple().exponent > 2:  # type: ignore[operator]
            detail = f"{raw!r} is not a whole number of cents"
            self._issue(
                Defect.FLOAT_NOISE,
                table,
                Example(source, record.position, record.key, column, detail),
            )

    def _text_date(
        self, table: str, source: str, record: SourceRecord, column: str, raw: object, form: str
    ) -> None:
        if not isinstance(raw, str) or not raw.strip() or record.values.get(column) is None:
            return
        text = raw.strip()
        native = (
            _GERMAN_DATE_TEXT.fullmatch(text)
            if form == "csv"
            else _ISO_DATE_TEXT.fullmatch(text)
            if form == "sql"
            else None
        )
        if native is None:
            detail = f"date stored as text {text!r}"
            self._issue(
                Defect.TEXT_DATE,
                table,
                Example(source, record.position, record.key, column, detail),
            )

    def _email(
        self, table: str, source: str, record: SourceRecord, column: str, raw: object
    ) -> None:
        if raw is None or raw == "" or (isinstance(raw, str) and raw.upper() == "NULL"):
            return
        if not isinstance(raw, str) or not _EMAIL.fullmatch(raw):
            self._issue(
                Defect.INVALID_EMAIL,
                table,
                Example(source, record.position, record.key, column, f"{raw!r}"),
            )

    def _departed(self, table: str, source: str, record: SourceRecord, column: str) -> None:
        code = record.values.get(column)
        if not isinstance(code, int) or isinstance(code, bool):
            return
        where = Example(source, record.position, record.key, column, f"user {code}")
        if code in self.departed:
            self.report.owners.departed += 1
            self._issue(Defect.DEPARTED_OWNER, table, where)
        elif code not in self.users:
            self.report.owners.unknown += 1
            self._issue(UNKNOWN_OWNER, table, where)

    def _cross_table(self, table: str, source: str, record: SourceRecord) -> None:
        values, key = record.values, record.key
        if table == "Mitarbeiter" and key is not None:
            self.users.add(key)
            if values.get("Ausgeschieden") is True:
                self.departed.add(key)
        elif table == "Kunden" and key is not None:
            self.customers.add(key)
            nummer = values.get("Nummer")
            self.fingerprints.setdefault(_fingerprint(values), []).append(
                (nummer if isinstance(nummer, int) else key, key, record.position, source)
            )
            if values.get("VertreterCode") is None:
                person = values.get("PersonErstkontakt")
                where = Example(source, record.position, key, "VertreterCode", "")
                if person is None:
                    self.report.owners.missing += 1
                    self._issue(Defect.OWNER_MISSING, table, where)
                else:
                    self.report.owners.free_text += 1
                    self.report.owners.free_text_names[str(person)] += 1
                    self._issue(
                        Defect.OWNER_FREE_TEXT,
                        table,
                        Example(source, record.position, key, "PersonErstkontakt", str(person)),
                    )
        elif table == "KAnsprechp":
            customer = values.get("KundenCode")
            if customer not in self.customers:
                self._issue(
                    Defect.ORPHAN_CONTACT,
                    table,
                    Example(source, record.position, key, "KundenCode", f"no customer {customer}"),
                )
        elif table == "RA" and key is not None:
            gross = (_cents(values.get("RBetrag")) or 0) + (_cents(values.get("RMwst")) or 0)
            paid = _cents(values.get("BezSumme")) or 0
            self.open_items[key] = (paid, record.position, source)
            recon = self.report.reconciliation
            recon.open_items += 1
            recon.gross_cents += gross
            recon.recorded_paid_cents += paid
        elif table == "RABezSumme":
            item = values.get("RACode")
            amount = _cents(values.get("Summe")) or 0
            recon = self.report.reconciliation
            recon.payments += 1
            recon.payments_cents += amount
            if isinstance(item, int) and item in self.open_items:
                self.paid[item] = self.paid.get(item, 0) + amount
            else:
                recon.payments_without_open_item += 1

    def _duplicates(self) -> None:
        for group in self.fingerprints.values():
            if len(group) < 2:
                continue
            original = min(group)
            for nummer, code, position, source in sorted(group):
                if (nummer, code, position, source) != original:
                    detail = f"near-duplicate of Kunden {original[1]} (Nummer {original[0]})"
                    self._issue(
                        Defect.DUPLICATE_CUSTOMER,
                        "Kunden",
                        Example(source, position, code, "Name", detail),
                    )
        self.fingerprints.clear()

    def _reconcile(self) -> None:
        recon = self.report.reconciliation
        for code, (recorded, position, source) in self.open_items.items():
            paid = self.paid.get(code, 0)
            if paid != recorded:
                recon.disagreements += 1
                recon.disagreement_cents += abs(recorded - paid)
                detail = f"BezSumme {_euros(recorded)} vs payments {_euros(paid)}"
                self._issue(
                    Defect.PAYMENT_MISMATCH,
                    "RA",
                    Example(source, position, code, "BezSumme", detail),
                )

    def _custom_fields(self, normaliser: Normaliser) -> None:
        filled = {
            (profile.name, column): count
            for profile in self.report.tables
            for column, count in profile.filled.items()
        }
        self.report.custom_fields = [
            CustomFieldInfo(
                table=definition.table,
                column=definition.column,
                label=definition.label,
                control=definition.control,
                options=dict(definition.options),
                required=definition.required,
                filled=filled.get((definition.table, definition.column), 0),
            )
            for definition in normaliser.custom_fields
        ]


def _raw_by_column(row: SourceRow, spec: Table) -> dict[str, Any]:
    """The raw values keyed by the specification's column names (the export may spell them
    differently)."""
    names = {fold_name(column.name): column.name for column in spec.columns}
    return {names[f]: value for name, value in row.raw.items() if (f := fold_name(name)) in names}


def required_edition(records: dict[str, int]) -> Edition:
    """The edition needed for tables with these record counts.

    Rule: every work4all table with rows and a :data:`CUSTOM_TARGETS` entry needs that custom
    table; every other table with rows that is neither in :data:`STANDARD_TARGETS` nor in
    :data:`CUSTOM_TARGETS` needs one more (``w4a_<table>``). More than
    :data:`PROFESSIONAL_CUSTOM_TABLE_CAP` custom tables needs Enterprise.
    """
    custom: list[str] = []
    for name, count in records.items():
        if not count:
            continue
        if name in CUSTOM_TARGETS:
            custom.append(CUSTOM_TARGETS[name])
        elif name not in STANDARD_TARGETS:
            custom.append(f"w4a_{fold_name(name)}")
    cap = PROFESSIONAL_CUSTOM_TABLE_CAP
    edition = "Sales Professional" if len(custom) <= cap else "Sales Enterprise"
    rule = (
        "one custom table per work4all object with rows and no standard Sales table "
        f"(open items, payments, visit reports, unmapped tables); Professional allows {cap}"
    )
    return Edition(tuple(sorted(custom)), cap, edition, rule)


def discover(location: str, progress: Progress | None = None) -> DiscoveryReport:
    """Read the export at ``location`` once and return its discovery report.

    Raises :class:`~producers.work4all.errors.ExportError` when the export cannot be read.
    ``progress(table, records)`` is called as records are read.
    """
    with open_export(location) as export:
        return _Discovery(export, progress).run()


def issue_keys(report: DiscoveryReport) -> dict[str, Iterable[tuple[str, int | None]]]:
    """(table, key) of every instance per defect class, for comparison with ground truth."""
    return {name: list(issue.keys) for name, issue in report.issues.items()}
