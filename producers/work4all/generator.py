"""A seeded, deterministic synthetic work4all Mandant, streamed table by table.

Nothing proportional to the number of customers is held in memory. Every record is derived from
(seed, table, index) alone:

- keys are ``Code = (a * index + b) mod (2**31 - 1) + 1``, a per-table bijection, so they look
  random, never collide within a table, and any table can compute another table's key from its
  index (a quote's customer, an invoice's open item) without a lookup;
- child indexes are ``parent_index * fan_out + ordinal`` with fixed fan-outs, so a child's key is
  known to its parent (``Kunden.KAnsprechpCode``) before the child table is generated;
- per-parent ``Random`` instances seeded from the same triple decide counts and values, so a
  table that needs a parent's figures (an open item needs its invoice's gross amount) recomputes
  them instead of remembering them.

Values are generated once, as Python objects; the writers only format them. The same seed
therefore gives the same logical records in every export form.
"""

from __future__ import annotations

import hashlib
import math
import struct
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from random import Random
from typing import Any, NamedTuple

from producers.work4all import gen_data as d
from producers.work4all.defects import Defect, DefectProfile, ManifestWriter
from producers.work4all.tables import TABLES, Table

Row = dict[str, Any]
"""One record: column name → int, float, str, datetime or None (absent columns are NULL)."""

MAX_CUSTOMERS = 1_000_000
"""The fan-out scheme keeps every key below 2**31 up to this many customers."""

RATIOS: dict[str, float] = {
    "Lieferanten": 0.08,
    "KAnsprechp": 0.13,
    "Artikel": 0.75,
    "Angebot": 0.54,
    "Rechnung": 0.34,
    "RA": 0.34,
    "Telefonate": 0.24,
    "Termine": 1.1,
    "Briefe": 2.5,
    "Whattodos": 0.04,
    "Verkaufschancen": 0.04,
    "Kontaktbericht": 0.02,
}
"""Records per customer in the reference installation (section 2.4)."""

POSITIONS_PER_DOCUMENT = 14
PAYMENTS_PER_OPEN_ITEM = 1.15
CONTACTS_PER_SUPPLIER = 1.1
ATTENDEES_PER_APPOINTMENT = 1.2
ATTACHMENT_FOLDER = Path("CRMAttachements") / "M001"

_PRIME = 2_147_483_647
_MASK64 = (1 << 64) - 1
_FAN = 16  # children of one kind per customer or supplier
_FAN_POS = 64  # positions per document
_FAN_PAY = 8  # payments per open item
_DUPLICATE_BASE = 1 << 28
_MISSING_BASE = 1 << 29
_START = datetime(2015, 1, 5)
_END = datetime(2025, 12, 19)
_SPAN_SECONDS = int((_END - _START).total_seconds())
_PLACEHOLDER = datetime(1, 1, 1)
_LONG_TEXT = "\r\ninkl. Befestigungsmaterial"


class TextDate(datetime):
    """A datetime that the export shows as text in an unusual format (defect ``text_date``)."""

    @classmethod
    def of(cls, value: datetime) -> TextDate:
        """The same instant, marked as a text date."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)


def _mix(*parts: int) -> int:
    """A 64-bit hash of ints (splitmix64 chain): cheap, stable across runs and platforms."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (part & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 31
    return state


@lru_cache(maxsize=256)
def _table_id(name: str) -> int:
    """A stable 64-bit id of a stream name (never Python's salted ``hash``)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")


class _Keys:
    """Per-table bijections from record index to a random-looking ``Code``."""

    def __init__(self, seed: int) -> None:
        self._params: dict[str, tuple[int, int]] = {}
        for name in (*TABLES, "Projekte"):
            h = _mix(seed, _table_id(name))
            self._params[name] = (1 + h % (_PRIME - 2), (h >> 32) % _PRIME)

    def code(self, table: str, index: int) -> int:
        """The key of record ``index`` of ``table`` (1 … 2**31-1)."""
        a, b = self._params[table]
        return (a * index + b) % _PRIME + 1


@lru_cache(maxsize=64)
def _poisson_cdf(mean: float, cap: int) -> tuple[float, ...]:
    term, total, cdf = math.exp(-mean), 0.0, []
    for k in range(cap):
        total += term
        cdf.append(total)
        term *= mean / (k + 1)
    return tuple(cdf)


def _poisson(rng: Random, mean: float, cap: int) -> int:
    """A Poisson(mean) draw capped at ``cap`` (one uniform draw, inverse CDF)."""
    return bisect_right(_poisson_cdf(mean, cap), rng.random())


def _when(rng: Random, after: datetime | None = None, *, midnight: bool = False) -> datetime:
    start = after or _START
    span = max(1, int((_END - start).total_seconds()))
    moment = start + timedelta(seconds=rng.randrange(span))
    if midnight:
        return moment.replace(hour=0, minute=0, second=0)
    # office hours, as users record them
    return moment.replace(hour=7 + moment.hour % 11)


def _overlong(text: str, limit: int) -> str:
    """``text`` made longer than ``limit`` the way real data overflows: appended remarks."""
    while len(text) <= limit:
        text += " (siehe Notiz)"
    return text


def _float32(value: float) -> float:
    """``value`` after a round trip through a SQL ``real`` column."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


class _User(NamedTuple):
    code: int
    first: str
    last: str
    email: str
    departed: bool
    resource: bool


class _Item(NamedTuple):
    code: int
    number: str
    name: str
    unit: str
    price_cents: int
    vat: float
    service: bool


class _Draw(NamedTuple):
    """The random choices behind one line item; ``item`` None for a title row."""

    number: int
    titled: bool
    item: _Item | None
    quantity: float
    discount: float
    long_text: bool
    noisy: bool


class _Plan(NamedTuple):
    """What one customer has: counts of children and the decisions other tables depend on."""

    private: bool
    female: bool
    first: str
    last: str
    place: tuple[str, str, str]
    since: datetime
    contacts: int
    quotes: int
    invoices: int
    calls: int
    appointments: int
    letters: int
    tasks: int
    opportunities: int
    reports: int
    duplicate: bool
    orphan_contact: bool


class _Partner(NamedTuple):
    """A customer (type 1) or supplier (type 0) as activity tables see it."""

    sd_type: int
    position: int
    code: int
    contacts: int
    contact_table: str
    email: str | None


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate."""

    customers: int
    seed: int
    defects: DefectProfile
    form: str
    """the export form being written (``sql``, ``csv``, ``xlsx``): some defects are per form."""
    files_dir: Path | None = None
    """where attachment files go (``CRMAttachements/M001``); None writes no files."""


def _still_shows(defect: Defect, table: str, column: str, row: Row) -> bool:
    """Whether ``row`` (a changed copy) still carries ``defect`` in ``column``."""
    value = row.get(column)
    if defect is Defect.OVERLONG_STRING:
        limit = TABLES[table].column(column).max_length
        return isinstance(value, str) and limit is not None and len(value) > limit
    if defect is Defect.MIXED_ENCODING and isinstance(value, str):
        try:
            return value.encode("cp1252").decode("utf-8") != value
        except UnicodeError:
            return False
    return True


class Mandant:
    """The synthetic Mandant: ``tables()`` yields each table's rows as a stream."""

    def __init__(self, config: GeneratorConfig, manifest: ManifestWriter) -> None:
        if not 1 <= config.customers <= MAX_CUSTOMERS:
            raise ValueError(f"customers must be 1 … {MAX_CUSTOMERS:,}")
        self.config = config
        self._n = config.customers
        self._seed = config.seed
        self._keys = _Keys(config.seed)
        self._manifest = manifest
        # While a customer that gets a near-duplicate is built, its defects are collected here.
        self._captured: list[tuple[Defect, str, str]] | None = None
        self._suppliers = max(1, round(self._n * RATIOS["Lieferanten"]))
        self._items = max(5, round(self._n * RATIOS["Artikel"]))
        self._domain = f"fensterbau-{config.seed % 1000:03d}.de"
        self._users = self._make_users()
        self._active = [u for u in self._users if not u.departed and not u.resource]
        self._departed = [u for u in self._users if u.departed]
        # a typed SQL datetime column cannot hold text; the draw still happens in every form so
        # that one seed gives the same records everywhere
        self._text_dates = config.form != "sql"

    # ---- plumbing -----------------------------------------------------------------------

    def estimated_rows(self) -> dict[str, int]:
        """Expected row count per table, for progress bars and benchmarks."""
        n = self._n
        documents = n * (RATIOS["Angebot"] + RATIOS["Rechnung"])
        estimate = {name: round(n * ratio) for name, ratio in RATIOS.items()}
        estimate |= {
            "Kunden": n,
            "Lieferanten": self._suppliers,
            "Artikel": self._items,
            "Preise": self._items,
            "LAnsprechp": round(self._suppliers * CONTACTS_PER_SUPPLIER),
            "Positionen": round(documents * POSITIONS_PER_DOCUMENT),
            "RABezSumme": round(n * RATIOS["RA"] * PAYMENTS_PER_OPEN_ITEM),
            "TermineTeilnehmer": round(n * RATIOS["Termine"] * ATTENDEES_PER_APPOINTMENT),
            "TelefonateAnhang": round(n * RATIOS["Telefonate"] * 0.1),
            "Mitarbeiter": len(self._users),
        }
        return {name: estimate.get(name, 10) for name in TABLES}

    def tables(self) -> Iterator[tuple[Table, Iterator[Row]]]:
        """Each table in ``TABLES`` order with a lazy iterator over its rows."""
        producers: dict[str, Callable[[], Iterator[Row]]] = {
            "Mitarbeiter": self._mitarbeiter,
            "Anrede": self._anrede,
            "KundenGr": self._kundengr,
            "Preisgruppen": self._preisgruppen,
            "Einheit": self._einheit,
            "Mehrwertsteuersätze": self._mwst,
            "ArtikelGr": self._artikelgr,
            "IndividualFields": self._individual_fields,
            "Kunden": self._kunden,
            "Lieferanten": self._lieferanten,
            "KAnsprechp": self._kansprechp,
            "LAnsprechp": self._lansprechp,
            "Artikel": self._artikel,
            "Preise": self._preise,
            "Verkaufschancen": self._verkaufschancen,
            "Angebot": lambda: self._documents(6),
            "Rechnung": lambda: self._documents(7),
            "Positionen": self._positionen,
            "RA": self._ra,
            "RABezSumme": self._rabezsumme,
            "Kontaktbericht": self._kontaktbericht,
            "Telefonate": self._telefonate,
            "TelefonateAnhang": self._telefonate_anhang,
            "Whattodos": self._whattodos,
            "Termine": self._termine,
            "TermineTeilnehmer": self._termine_teilnehmer,
            "Briefe": self._briefe,
        }
        for name, table in TABLES.items():
            yield table, producers[name]()

    def _rng(self, table: str, index: int) -> Random:
        return Random(_mix(self._seed, _table_id(table), index))

    def _code(self, table: str, index: int) -> int:
        return self._keys.code(table, index)

    def _defect(self, rng: Random, defect: Defect) -> bool:
        rate = self.config.defects.rate(defect)
        return rate > 0 and rng.random() < rate

    def _note(self, defect: Defect, table: str, code: int, column: str) -> None:
        self._manifest.add(defect, table, code, column)
        if self._captured is not None:
            self._captured.append((defect, table, column))

    def _none_ref(self, rng: Random) -> int | None:
        # work4all stores "no reference" as 0 or NULL, both in one table
        return 0 if rng.random() < 0.6 else None

    def _owner(self, rng: Random, table: str, code: int, column: str) -> int:
        if self._departed and self._defect(rng, Defect.DEPARTED_OWNER):
            self._note(Defect.DEPARTED_OWNER, table, code, column)
            return rng.choice(self._departed).code
        return rng.choice(self._active).code

    def _audit(self, rng: Random, created: datetime) -> tuple[datetime | None, datetime | None]:
        # rows from before the audit columns existed have them NULL
        if created.year < 2018:
            return None, None
        updated = _when(rng, created)
        return created, updated

    # ---- users and lookups --------------------------------------------------------------

    def _make_users(self) -> list[_User]:
        count = max(8, round(self._n * 0.005))
        departed_share = 0.12 if self.config.defects.rate(Defect.DEPARTED_OWNER) > 0 else 0.0
        users: list[_User] = []
        seen: set[str] = set()
        for u in range(count):
            rng = self._rng("Mitarbeiter", u)
            _, first, last = d.person(rng)
            local = f"{d.slug(first)}.{d.slug(last)}"
            if local in seen:
                local = f"{local}{u}"
            seen.add(local)
            # at least one leaver whenever the class is on, however few users there are
            departed = u > 0 and departed_share > 0 and (rng.random() < departed_share or u == 1)
            users.append(
                _User(
                    self._code("Mitarbeiter", u),
                    first,
                    last,
                    f"{local}@{self._domain}",
                    departed,
                    False,
                )
            )
        if self.config.defects.enabled:
            for r, name in enumerate(("PKW AM-XY 123", "Besprechungsraum 1")):
                users.append(_User(self._code("Mitarbeiter", count + r), "", name, "", False, True))
        return users

    def _mitarbeiter(self) -> Iterator[Row]:
        for number, user in enumerate(self._users, start=1):
            rng = self._rng("Mitarbeiter.row", number)
            entry: datetime | None = _when(rng, _START - timedelta(days=3650), midnight=True)
            if not user.resource and self._defect(rng, Defect.PLACEHOLDER_DATE):
                entry = _PLACEHOLDER
                self._note(Defect.PLACEHOLDER_DATE, "Mitarbeiter", user.code, "Eintrittsdatum")
            yield {
                "Code": user.code,
                "Nummer": number,
                "Name": user.last,
                "Vorname": user.first or None,
                "MName": None,
                "eMail": user.email or None,
                "Telefon": f"09621 4711-{number:02d}",
                "Mobilfunk": d.phone(rng, "0171") if not user.resource else "",
                "BenutzerCode": user.code,
                "Ausgeschieden": -1 if user.departed else 0,
                "Eintrittsdatum": None if user.resource else entry,
                "GrCode": 0,
            }

    def _anrede(self) -> Iterator[Row]:
        rows = (
            (0, "-Ohne-", "", 0, 0),
            (1, "Herr", "Sehr geehrter Herr", -1, 0),
            (2, "Frau", "Sehr geehrte Frau", 0, -1),
            (3, "Firma", "Sehr geehrte Damen und Herren", 0, 0),
            (4, "Familie", "Sehr geehrte Familie", 0, 0),
        )
        for number, (code, name, letter, male, female) in enumerate(rows):
            yield {
                "AnredeCode": code,
                "AnredeName": name,
                "StdBriefAnrede": letter,
                "Titel": "",
                "Männlich": male,
                "Weiblich": female,
                "Nummer": number,
            }

    def _kundengr(self) -> Iterator[Row]:
        names = ("01 Kunden", "02 Privatkunden", "03 Hausverwaltungen", "04 Architekten")
        for index, name in enumerate(names, start=1):
            yield {"GrCode": index, "GrIndex": index, "GrLevel": 0, "GrName": name}

    def _preisgruppen(self) -> Iterator[Row]:
        names = ("Neukunde", "Stammkunde", "Wiederverkäufer", "Großkunde")
        for index, name in enumerate(names, start=1):
            yield {"Code": index, "Name": name}

    _UNITS = (("St.", "Stück"), ("h", "Stunde"), ("m", "Meter"), ("m²", "Quadratmeter"),
              ("Dose", "Dose"), ("pausch.", "pauschal"))  # fmt: skip

    def _einheit(self) -> Iterator[Row]:
        for index, (name, text) in enumerate(self._UNITS, start=1):
            yield {"EinheitCode": index, "EinheitName": name, "Bezeichnung": text, "Faktor": 1.0}

    def _mwst(self) -> Iterator[Row]:
        for code, rate in ((1, 19.0), (2, 7.0), (3, 0.0)):
            yield {"MwstCode": code, "MwstName": rate, "Deaktiviert": 0}

    _ITEM_GROUPS = ("Fenster", "Türen", "Sonnenschutz", "Zubehör", "Dienstleistungen")

    def _artikelgr(self) -> Iterator[Row]:
        for index, name in enumerate(self._ITEM_GROUPS):
            yield {
                "GrCode": self._code("ArtikelGr", index),
                "GrIndex": index + 1,
                "GrLevel": 0,
                "GrName": name,
            }

    def _individual_fields(self) -> Iterator[Row]:
        fields = (
            ("Combo", 1, "Kunden", "Bonität;;;0```gut;;;1```mittel;;;2```schlecht;;;", 0),
            ("Check", 2, "Kunden", "Newsletter", 0),
            ("Date", 3, "Kunden", "Wartungsvertrag bis", 0),
            ("Number", 4, "Kunden", "Umsatzpotenzial", 0),
            ("Check", 1, "Artikel", "Im Online-Shop", 0),
        )
        for index, (control, number, table, title, mandatory) in enumerate(fields):
            yield {
                "Code": self._code("IndividualFields", index),
                "Control": control,
                "DisplayOrder": number,
                "FieldNumber": number,
                "IndividualPageCode": 0,
                "Pflichtfeld": mandatory,
                "TableType": table,
                "Title": title,
                "Tooltip": f'Auswählen, ob "{title.split(";")[0]}" zutrifft' if index == 0 else "",
            }

    # ---- customers and suppliers ----------------------------------------------------------

    def _plan(self, i: int) -> _Plan:
        rng = self._rng("plan", i)
        private = rng.random() < 0.4
        female, first, last = d.person(rng)
        place = rng.choice(d.PLACES)
        since = _when(rng, _START)
        # private customers rarely have contact persons, which is why the ratio is only 0.13
        contacts = _poisson(rng, 0.02 if private else 0.2, _FAN - 1)
        return _Plan(
            private=private,
            female=female,
            first=first,
            last=last,
            place=place,
            since=since,
            contacts=contacts,
            quotes=_poisson(rng, RATIOS["Angebot"], _FAN - 1),
            invoices=_poisson(rng, RATIOS["Rechnung"], _FAN - 1),
            calls=_poisson(rng, RATIOS["Telefonate"], _FAN - 1),
            appointments=_poisson(rng, RATIOS["Termine"], _FAN - 1),
            letters=_poisson(rng, RATIOS["Briefe"], _FAN * 2 - 1),
            tasks=_poisson(rng, RATIOS["Whattodos"], _FAN - 1),
            opportunities=_poisson(rng, RATIOS["Verkaufschancen"], _FAN - 1),
            reports=_poisson(rng, RATIOS["Kontaktbericht"], _FAN - 1),
            duplicate=self._defect(rng, Defect.DUPLICATE_CUSTOMER),
            orphan_contact=self._defect(rng, Defect.ORPHAN_CONTACT),
        )

    def _company(self, plan: _Plan, rng: Random) -> str:
        if plan.private:
            return f"{plan.first} {plan.last}"
        return f"{plan.last} {rng.choice(d.TRADES)} {rng.choice(d.LEGAL_FORMS)}"

    def _kunden(self) -> Iterator[Row]:
        duplicates = 0
        for i in range(self._n):
            plan = self._plan(i)
            rng = self._rng("Kunden", i)
            self._captured = [] if plan.duplicate else None
            row = self._customer_row(i, plan, rng)
            inherited, self._captured = self._captured or [], None
            yield row
            if plan.duplicate:
                duplicates += 1
                twin = self._near_duplicate(row, rng, duplicates)
                self._note(Defect.DUPLICATE_CUSTOMER, "Kunden", twin["Code"], "Name")
                # A near-duplicate is a copy: it carries the original's defects too, where its
                # changed columns still show them.
                for defect, table, column in inherited:
                    if _still_shows(defect, table, column, twin):
                        self._note(defect, table, twin["Code"], column)
                yield twin

    def _customer_row(self, i: int, plan: _Plan, rng: Random) -> Row:
        code = self._code("Kunden", i)
        plz, ort, area = plan.place
        firma1 = self._company(plan, rng)
        domain = f"{d.slug(plan.last)}-{d.slug(ort)[:12]}.de"
        email: str | None = (
            f"{d.slug(plan.first)}.{d.slug(plan.last)}@t-online.de"
            if plan.private
            else f"info@{domain}"
        )
        if rng.random() < 0.15:
            email = None if rng.random() < 0.5 else ""
        street = f"{rng.choice(d.STREETS)} {rng.randrange(1, 120)}{rng.choice(('', '', 'a', 'b'))}"
        if self._defect(rng, Defect.MIXED_ENCODING) and street != d.mojibake(street):
            street = d.mojibake(street)
            self._note(Defect.MIXED_ENCODING, "Kunden", code, "Straße")
        if email and self._defect(rng, Defect.INVALID_EMAIL):
            email = rng.choice(
                (
                    email.replace("@", "@@"),
                    email.split("@")[0],
                    email + " ",
                    email.replace("@", " at "),
                )
            )
            self._note(Defect.INVALID_EMAIL, "Kunden", code, "E-Mail")
        if self._defect(rng, Defect.OVERLONG_STRING):
            firma1 = _overlong(f"{firma1} - Niederlassung {ort} - Vertrieb, Montage, Service", 100)
            self._note(Defect.OVERLONG_STRING, "Kunden", code, "Firma1")
        since: datetime = plan.since
        erstkontakt: datetime = since
        if self._defect(rng, Defect.TEXT_DATE) and self._text_dates:
            erstkontakt = TextDate.of(since)
            self._note(Defect.TEXT_DATE, "Kunden", code, "Erstkontakt")
        owner = rng.choice(self._active)
        vertreter: int | None = owner.code
        person_erst: str | None = f"{owner.first} {owner.last}"
        if self._defect(rng, Defect.OWNER_MISSING):
            vertreter, person_erst = self._none_ref(rng), None
            self._note(Defect.OWNER_MISSING, "Kunden", code, "VertreterCode")
        elif self._defect(rng, Defect.OWNER_FREE_TEXT):
            vertreter = self._none_ref(rng)
            person_erst = rng.choice(
                (f"{owner.first[0]}. {owner.last}", d.slug(owner.first[0] + owner.last), owner.last)
            )
            self._note(Defect.OWNER_FREE_TEXT, "Kunden", code, "VertreterCode")
        elif self._departed and self._defect(rng, Defect.DEPARTED_OWNER):
            leaver = rng.choice(self._departed)
            vertreter, person_erst = leaver.code, f"{leaver.first} {leaver.last}"
            self._note(Defect.DEPARTED_OWNER, "Kunden", code, "VertreterCode")
        insert, update = self._audit(rng, since)
        company = not plan.private
        bank = d.iban(rng) if rng.random() < 0.6 else ("", "")
        if plan.private:
            anrede, brief = (
                (2, f"Sehr geehrte Frau {plan.last},")
                if plan.female
                else (1, f"Sehr geehrter Herr {plan.last},")
            )
        else:
            anrede, brief = 3, "Sehr geehrte Damen und Herren,"
        return {
            "Code": code,
            "Nummer": 10000 + i if i < 60000 else 100000 + i,
            "Name": f"{firma1}, {ort}",
            "Firma1": firma1,
            "Firma2": rng.choice(("", "Fenster · Türen · Sonnenschutz", "Niederlassung Süd"))
            if company
            else "",
            "Firma3": None,
            "AnredeCode": anrede,
            "BriefAnrede": brief,
            "Titelerweiterung": "Dr." if plan.private and rng.random() < 0.05 else "",
            "Straße": street,
            "Staat": "D",
            "Plz": plz,
            "Ort": ort,
            "Telefon": d.phone(rng, area),
            "Telefon2": "",
            "Telefax": d.phone(rng, area) if company and rng.random() < 0.5 else None,
            "E-Mail": email,
            "E-Mail2": None,
            "InterNet": f"www.{domain}" if company and rng.random() < 0.7 else None,
            "Privatkunde": -1 if plan.private else 0,
            "Gesperrt": -1 if rng.random() < 0.02 else 0,
            "Erloschen": -1 if rng.random() < 0.01 else 0,
            "GrCode": 2 if plan.private else rng.choice((1, 3, 4)),
            "KAnsprechpCode": self._code("KAnsprechp", i * _FAN)
            if plan.contacts
            else self._none_ref(rng),
            "VertreterCode": vertreter,
            "Zahlungsfrist": rng.choice((14, 14, 30, 8)),
            "Skonto": 2.0 if company and rng.random() < 0.3 else 0.0,
            "Skontofrist": 10.0 if company else 0.0,
            "Kreditlimit": float(rng.choice((0, 5000, 10000, 25000))),
            "Preisgruppe": rng.randrange(1, 5),
            "USTIDNR": d.vat_id(rng) if company and rng.random() < 0.7 else "",
            "IBAN": bank[0],
            "BIC": bank[1],
            "WährungCode": 1,
            "Erstkontakt": erstkontakt,
            "PersonErstkontakt": person_erst,
            "Notiz": rng.choice(d.NOTE_SNIPPETS) + "\r\n" + rng.choice(d.NOTE_SNIPPETS)
            if rng.random() < 0.3
            else None,
            "OPNotiz": "Zahlt immer verspätet" if rng.random() < 0.03 else None,
            "DoublettenCheck_NichtMehrAnzeigen": 0,
            "AdresseWirdGepflegtBeiLieferantCode": 0,
            "Feld1": str(rng.randrange(3)) if rng.random() < 0.5 else None,
            "Feld2": rng.choice((0, 1)),
            "Feld3": _when(rng, since, midnight=True) if rng.random() < 0.2 else None,
            "Feld4": float(rng.randrange(1, 200) * 500) if rng.random() < 0.3 else None,
            "LetzteÄnderung": update,
            "InsertTime": insert,
            "UpdateTime": update,
            "CreatedByUserCode": rng.choice(self._active).code if insert else None,
        }

    def _near_duplicate(self, row: Row, rng: Random, number: int) -> Row:
        twin = dict(row)
        firma = str(row["Firma1"])
        variants = [
            firma.replace("GmbH", "GmbH & Co. KG") if "GmbH" in firma else firma + " GmbH",
            firma.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").replace("ß", "ss"),
            firma.upper(),
        ]
        twin["Firma1"] = rng.choice([v for v in variants if v != firma] or [firma + " "])
        twin["Straße"] = str(row["Straße"]).replace("straße", "str.").replace("Straße", "Str.")
        twin["Name"] = f"{twin['Firma1']}, {row['Ort']}"
        twin["Code"] = self._code("Kunden", _DUPLICATE_BASE + number)
        twin["Nummer"] = 70000 - number if number < 10000 else 200000 + number
        twin["KAnsprechpCode"] = 0
        twin["DoublettenCheck_NichtMehrAnzeigen"] = -1 if rng.random() < 0.5 else 0
        return twin

    def _supplier_contacts(self, s: int) -> int:
        return _poisson(self._rng("supplier-plan", s), CONTACTS_PER_SUPPLIER, _FAN - 1)

    def _lieferanten(self) -> Iterator[Row]:
        for s in range(self._suppliers):
            rng = self._rng("Lieferanten", s)
            plz, ort, area = rng.choice(d.PLACES)
            name, word = rng.choice(d.SURNAMES), rng.choice(d.SUPPLIER_WORDS)
            firma = f"{name} {word} {rng.choice(d.LEGAL_FORMS)}"
            domain = f"{d.slug(name)}-{d.slug(word)}.de"
            since = _when(rng)
            insert, update = self._audit(rng, since)
            bank = d.iban(rng)
            yield {
                "Code": self._code("Lieferanten", s),
                "Nummer": 70000 + s if s < 30000 else 700000 + s,
                "Name": f"{firma} | {ort}",
                "Firma1": firma,
                "Firma2": "",
                "AnredeCode": 3,
                "BriefAnrede": "Sehr geehrte Damen und Herren,",
                "Straße": f"{rng.choice(d.STREETS)} {rng.randrange(1, 200)}",
                "Staat": "D",
                "Plz": plz,
                "Ort": ort,
                "Telefon": d.phone(rng, area),
                "Telefax": d.phone(rng, area),
                "E-Mail": f"vertrieb@{domain}",
                "InterNet": f"www.{domain}",
                "Kundennr": str(rng.randrange(10000, 99999)),
                "LAnsprechpCode": (
                    self._code("LAnsprechp", s * _FAN)
                    if self._supplier_contacts(s)
                    else self._none_ref(rng)
                ),
                "Gesperrt": 0,
                "Zahlungsfrist": 30,
                "Skonto": 3.0,
                "Skontofrist": 8.0,
                "USTIDNR": d.vat_id(rng),
                "IBAN": bank[0],
                "BIC": bank[1],
                "WährungCode": 1,
                "Erstkontakt": since,
                "Notiz": None,
                "AdresseWirdGepflegtBeiKundeCode": 0,
                "InsertTime": insert,
                "UpdateTime": update,
            }

    def _contact_row(self, rng: Random, female: bool, first: str, last: str, domain: str) -> Row:
        return {
            "AnredeCode": 2 if female else 1,
            "Vorname": first,
            "Name": last,
            "Briefanrede": f"Sehr geehrte Frau {last},"
            if female
            else f"Sehr geehrter Herr {last},",
            "Funktion": rng.choice(d.FUNCTIONS),
            "Telefon": d.phone(rng, "0" + str(rng.randrange(200, 999))),
            "Mobilfunk": d.phone(rng, "0172") if rng.random() < 0.6 else "",
            "E-Mail": f"{d.slug(first)[0]}.{d.slug(last)}@{domain}",
            "Entlassen": -1 if rng.random() < 0.04 else 0,
            "Notiz": None,
        }

    def _kansprechp(self) -> Iterator[Row]:
        for i in range(self._n):
            plan = self._plan(i)
            customer = self._code("Kunden", i)
            domain = f"{d.slug(plan.last)}-{d.slug(plan.place[1])[:12]}.de"
            for j in range(plan.contacts + (1 if plan.orphan_contact else 0)):
                orphan = j == plan.contacts
                rng = self._rng("KAnsprechp", i * _FAN + j)
                code = self._code("KAnsprechp", _MISSING_BASE + i if orphan else i * _FAN + j)
                female, first, last = d.person(rng)
                row = self._contact_row(rng, female, first, last, domain)
                if orphan:
                    row["KundenCode"] = self._code("Kunden", _MISSING_BASE + i)
                    self._note(Defect.ORPHAN_CONTACT, "KAnsprechp", code, "KundenCode")
                else:
                    row["KundenCode"] = customer
                if self._defect(rng, Defect.MIXED_ENCODING):
                    last = rng.choice(d.UMLAUT_SURNAMES)
                    row["Name"] = d.mojibake(last)
                    self._note(Defect.MIXED_ENCODING, "KAnsprechp", code, "Name")
                elif self._defect(rng, Defect.OVERLONG_STRING):
                    row["Name"] = _overlong(f"{last}-{rng.choice(d.SURNAMES)} geb. {last}", 30)
                    self._note(Defect.OVERLONG_STRING, "KAnsprechp", code, "Name")
                if self._defect(rng, Defect.INVALID_EMAIL):
                    row["E-Mail"] = str(row["E-Mail"]).replace("@", "@@").replace(".de", "")
                    self._note(Defect.INVALID_EMAIL, "KAnsprechp", code, "E-Mail")
                birthday: datetime | None = None
                if rng.random() < 0.2:
                    birthday = datetime(
                        rng.randrange(1950, 2000), rng.randrange(1, 13), rng.randrange(1, 29)
                    )
                if self._defect(rng, Defect.PLACEHOLDER_DATE):
                    birthday = _PLACEHOLDER
                    self._note(Defect.PLACEHOLDER_DATE, "KAnsprechp", code, "Geburtsdatum")
                since = _when(rng, plan.since)
                insert, update = self._audit(rng, since)
                row |= {
                    "KAnsprechpCode": code,
                    "Titelerweiterung": "Dr." if rng.random() < 0.05 else "",
                    "AbteilungCode": self._none_ref(rng),
                    "Telefax": None,
                    "Straße": "",
                    "Staat": "",
                    "Plz": "",
                    "Ort": "",
                    "Geburtsdatum": birthday,
                    "VIP": 0,
                    "Mailsperre": -1 if rng.random() < 0.05 else 0,
                    "Serienbriefsperre": 0,
                    "Erstkontakt": since,
                    "LetzteÄnderung": update,
                    "InsertTime": insert,
                    "UpdateTime": update,
                }
                yield row

    def _lansprechp(self) -> Iterator[Row]:
        for s in range(self._suppliers):
            domain = "lieferant.de"
            for j in range(self._supplier_contacts(s)):
                rng = self._rng("LAnsprechp", s * _FAN + j)
                female, first, last = d.person(rng)
                since = _when(rng)
                insert, update = self._audit(rng, since)
                yield self._contact_row(rng, female, first, last, domain) | {
                    "LAnsprechpCode": self._code("LAnsprechp", s * _FAN + j),
                    "LieferantenCode": self._code("Lieferanten", s),
                    "Code": 0,
                    "Erstkontakt": since,
                    "InsertTime": insert,
                    "UpdateTime": update,
                }

    # ---- items --------------------------------------------------------------------------

    def _item(self, a: int) -> _Item:
        h = _mix(self._seed, 0x17E4, a)
        service = h % 10 == 0
        words, unit = (d.SERVICES if service else d.ITEM_WORDS)[(h >> 8) % (5 if service else 15)]
        group = 99 if service else 1 + (h >> 16) % 9
        # skewed: many cheap parts, few expensive units
        price = 2500 + (h >> 20) % 9500 if service else 500 + ((h >> 20) % 1000) ** 2 // 8
        return _Item(
            self._code("Artikel", a),
            f"{group:02d}-{a:06d}",
            words
            if service
            else f"{words} {400 + (h >> 40) % 20 * 50} x {300 + (h >> 48) % 20 * 50}",
            unit,
            price,
            7.0 if (h >> 56) % 20 == 0 else 19.0,
            service,
        )

    def _artikel(self) -> Iterator[Row]:
        units = {name: index for index, (name, _) in enumerate(self._UNITS, start=1)}
        for a in range(self._items):
            item = self._item(a)
            rng = self._rng("Artikel", a)
            created = _when(rng)
            insert, update = self._audit(rng, created)
            yield {
                "Code": item.code,
                "Nummer": item.number,
                "Name": item.name,
                "GrCode": self._code("ArtikelGr", 4 if item.service else a % 4),
                "EinheitCode": units[item.unit],
                "MwstCode": 2 if item.vat == 7.0 else 1,
                "Nettopreis": item.price_cents / 100,
                "Nettopreis2": round(item.price_cents * 0.9) / 100,
                "Bruttopreis": round(item.price_cents * (1 + item.vat / 100)) / 100,
                "MittlererEK": round(item.price_cents * 0.6) / 100,
                "EAN": None if item.service else f"400{a:010d}",
                "Dienstleistung": -1 if item.service else 0,
                "Stillgelegt": -1 if rng.random() < 0.05 else 0,
                "Notiz": None,
                "Bemerkung": None,
                "Angelegt": created,
                "LetzteÄnderung": update,
                "InsertTime": insert,
                "UpdateTime": update,
                "Feld1": rng.choice((0, 1)),
            }

    def _preise(self) -> Iterator[Row]:
        for a in range(self._items):
            item = self._item(a)
            group = 1 + a % 4
            yield {
                "Code": self._code("Preise", a),
                "ArtikelCode": item.code,
                "Preisgruppe": group,
                "Nettopreis": round(item.price_cents * (1 - 0.03 * (group - 1))) / 100,
            }

    # ---- sales --------------------------------------------------------------------------

    def _verkaufschancen(self) -> Iterator[Row]:
        for i in range(self._n):
            plan = self._plan(i)
            for j in range(plan.opportunities):
                index = i * _FAN + j
                rng = self._rng("Verkaufschancen", index)
                code = self._code("Verkaufschancen", index)
                created = _when(rng, plan.since, midnight=True)
                status = rng.choice((0, 0, 1, 2))
                value = rng.randrange(50_000, 2_000_000) / 100
                quote = self._code("Angebot", i * _FAN) if j == 0 and plan.quotes else 0
                yield {
                    "Code": code,
                    "Name": f"VG{rng.randrange(10, 99)} | {rng.choice(d.ITEM_WORDS)[0]}",
                    "SDObjMemberCode": self._code("Kunden", i),
                    "AnsprechpCode": self._code("KAnsprechp", i * _FAN) if plan.contacts else 0,
                    "BCode": self._owner(rng, "Verkaufschancen", code, "BCode"),
                    "BCode2": 0,
                    "ErstellerBenutzerCode": rng.choice(self._active).code,
                    "GrCode": 0,
                    "DatumErstellt": created,
                    "DatumEntscheidung": _when(rng, created, midnight=True) if status else None,
                    "DatumNächsteBewertung": None,
                    "NaechsterKontakt": None,
                    "Wert": value,
                    "WertAuftrag": value if status == 1 else 0.0,
                    "ErwarteteKosten": 0.0,
                    "WährungCode": 1,
                    "WahrscheinlichkeitProzent": {0: rng.choice((10, 25, 50, 75)), 1: 100, 2: 0}[
                        status
                    ],
                    "Tendenz": rng.choice((0, 1, 2)),
                    "Status": status,
                    "StatusCode": 0,
                    "Art": 0,
                    "Zuordnungsart": 0,
                    "Beschreibung": "Anfrage über Website",
                    "Notiz": None,
                    "Mitbewerber": rng.choice(("", "Mitbewerber vor Ort", "")),
                    "Info": "",
                    "BZObjType": 6,
                    "BZObjMemberCode": quote,
                    "Eingefroren": 0,
                    "InsertTime": created,
                    "UpdateTime": created,
                }

    def _position_draws(self, bz_type: int, doc_index: int) -> Iterator[_Draw]:
        """The random choices behind one document's line items, free of side effects.

        Headers and open items need a document's totals, so these are replayed wherever a total
        is needed; only ``_positions`` turns them into rows (and manifest entries).
        """
        rng = self._rng(f"Positionen.{bz_type}", doc_index)
        count = rng.randrange(1, POSITIONS_PER_DOCUMENT * 2)
        titled = count > 6 and rng.random() < 0.3
        for p in range(count):
            if titled and p == 0:
                yield _Draw(p, titled, None, 0.0, 0.0, False, False)
                continue
            item = self._item(rng.randrange(self._items))
            quantity = rng.choice((1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 0.5, 2.25))
            discount = rng.choice((0.0, 0.0, 0.0, 5.0, 10.0))
            long_text = rng.random() < 0.3
            noisy = self._defect(rng, Defect.FLOAT_NOISE)
            yield _Draw(p, titled, item, quantity, discount, long_text, noisy)

    @staticmethod
    def _net_cents(draw: _Draw) -> int:
        if draw.item is None:
            return 0
        return round(draw.quantity * draw.item.price_cents * (100 - draw.discount) / 100)

    def _totals(self, bz_type: int, doc_index: int) -> tuple[int, int]:
        """(net, VAT) of one document in cents."""
        net = vat = 0
        for draw in self._position_draws(bz_type, doc_index):
            cents = self._net_cents(draw)
            net += cents
            vat += round(cents * draw.item.vat / 100) if draw.item else 0
        return net, vat

    def _positions(self, bz_type: int, doc_index: int, day: datetime) -> Iterator[Row]:
        """The line items of one document."""
        document = self._code("Angebot" if bz_type == 6 else "Rechnung", doc_index)
        for draw in self._position_draws(bz_type, doc_index):
            p, item = draw.number, draw.item
            code = self._code(
                "Positionen", ((bz_type - 6) * MAX_CUSTOMERS * _FAN + doc_index) * _FAN_POS + p
            )
            base: Row = {
                "Code": code,
                "BZObjType": bz_type,
                "BZObjMemberCode": document,
                "Nummer": p + 1,
                "ProjektCode": 0,
                "CreationDate": day,
            }
            if item is None:
                yield base | {
                    "PozNr": "1", "ArtikelCode": None, "ArtNr": "", "Kurztext": "Montage",
                    "Bezeichnung": "Lieferung und Montage", "Anzahl": 0.0, "Einheit": "",
                    "EinzPreis": 0.0, "GesPreis": 0.0, "Mwst": 0.0, "Rabatt": 0.0, "EKPreis": 0.0,
                }  # fmt: skip
                continue
            ek = round(item.price_cents * 0.6) / 100
            if draw.noisy and _float32(ek) != ek:
                ek = _float32(ek)
                self._note(Defect.FLOAT_NOISE, "Positionen", code, "EKPreis")
            yield base | {
                "PozNr": f"1.{p}" if draw.titled else str(p + 1),
                "ArtikelCode": item.code,
                "ArtNr": item.number,
                "Kurztext": item.name,
                "Bezeichnung": item.name + (_LONG_TEXT if draw.long_text else ""),
                "Anzahl": draw.quantity,
                "Einheit": item.unit,
                "EinzPreis": item.price_cents / 100,
                "GesPreis": self._net_cents(draw) / 100,
                "Mwst": item.vat,
                "Rabatt": draw.discount,
                "EKPreis": ek,
            }  # fmt: skip

    def _document_date(self, bz_type: int, doc_index: int, since: datetime) -> datetime:
        rng = self._rng(f"doc-date.{bz_type}", doc_index)
        return _when(rng, since, midnight=bz_type == 7)

    def _documents(self, bz_type: int) -> Iterator[Row]:
        table = "Angebot" if bz_type == 6 else "Rechnung"
        for i in range(self._n):
            plan = self._plan(i)
            count = plan.quotes if bz_type == 6 else plan.invoices
            for j in range(count):
                yield self._document(bz_type, table, i, j, plan)

    def _document(self, bz_type: int, table: str, i: int, j: int, plan: _Plan) -> Row:
        index = i * _FAN + j
        rng = self._rng(table, index)
        code = self._code(table, index)
        day = self._document_date(bz_type, index, plan.since)
        net, vat = self._totals(bz_type, index)
        contact = (
            self._code("KAnsprechp", i * _FAN + rng.randrange(plan.contacts))
            if plan.contacts
            else self._none_ref(rng)
        )
        insert, update = self._audit(rng, day)
        row: Row = {
            "Code": code,
            "Nummer": (day.year % 100) * 10**6 + index % 10**6,
            "Datum": day,
            "SDObjType": 1,
            "SDObjMemberCode": self._code("Kunden", i),
            "AnsprpCode": contact,
            "ProjektCode": self._none_ref(rng),
            "BenutzerCode": self._owner(rng, table, code, "BenutzerCode"),
            "Wert": net / 100,
            "Bruttowert": (net + vat) / 100,
            "Brutto": 0,
            "WaehrungCode": 1,
            "Kurs": 1.0,
            "Zahlungsfrist": 14,
            "Skonto": 0.0,
            "Skontofrist": 0.0,
            "IhrZeichen": "",
            "UnserZeichen": "",
            "Kopftext": "Vielen Dank für Ihre Anfrage. Wir bieten Ihnen an:"
            if bz_type == 6
            else "Wir berechnen Ihnen:",
            "Schlußtext": "Mit freundlichen Grüßen",
            "Notiz": None,
            "EditDate": update,
            "InsertTime": insert,
            "UpdateTime": update,
            "CreatedByUserCode": rng.choice(self._active).code,
        }
        if bz_type == 6:
            ordered = rng.random() < 0.3
            row |= {
                "Feld1": "",
                "AuftragsDatum": _when(rng, day, midnight=True) if ordered else None,
                "AuftragsNummer": row["Nummer"] if ordered else 0,
                "Abgelehnt": -1 if not ordered and rng.random() < 0.2 else 0,
                "Abgeschlossen": -1 if ordered else 0,
                "BewertungProzent": 0,
                "VerkaufschancenCode": self._code("Verkaufschancen", i * _FAN)
                if j == 0 and plan.opportunities
                else 0,
            }
        else:
            row |= {
                "Zahlbarbis": day + timedelta(days=14),
                "Skontobis": None,
                "RA": -1,
                "BuchungsDatum": day,
                "Anzahlung": 0,
                "SchlussrechnungCode": 0,
                "OriginalRechnungCode": 0,
            }
        return row

    def _positionen(self) -> Iterator[Row]:
        for i in range(self._n):
            plan = self._plan(i)
            for bz_type, count in ((6, plan.quotes), (7, plan.invoices)):
                for j in range(count):
                    index = i * _FAN + j
                    yield from self._positions(
                        bz_type, index, self._document_date(bz_type, index, plan.since)
                    )

    # ---- open items ---------------------------------------------------------------------

    def _payments(self, index: int, gross: int, day: datetime) -> list[tuple[int, datetime]]:
        rng = self._rng("payments", index)
        count = rng.choices((0, 1, 2, 3, 4), (12, 68, 14, 4, 2))[0]
        if not count:
            return []
        settled = rng.random()
        # fully paid, partly paid (open rest) or overpaid
        target = (
            gross
            if settled < 0.75
            else (
                gross * rng.randrange(30, 95) // 100
                if settled < 0.95
                else gross + rng.randrange(1, 5000)
            )
        )
        shares = sorted(rng.randrange(1, max(2, target)) for _ in range(count - 1))
        amounts = [b - a for a, b in zip([0, *shares], [*shares, target], strict=True)]
        moment = day
        result = []
        for amount in amounts:
            moment = moment + timedelta(
                days=rng.randrange(1, 40), hours=rng.randrange(8, 17), minutes=rng.randrange(60)
            )
            result.append((amount, moment))
        return result

    def _open_items(self) -> Iterator[tuple[int, int, _Plan, int, int, datetime]]:
        """(customer, invoice index, plan, net cents, VAT cents, invoice date) per open item."""
        for i in range(self._n):
            plan = self._plan(i)
            for j in range(plan.invoices):
                index = i * _FAN + j
                day = self._document_date(7, index, plan.since)
                net, vat = self._totals(7, index)
                yield i, index, plan, net, vat, day

    def _ra(self) -> Iterator[Row]:
        for i, index, _plan, net, vat, day in self._open_items():
            rng = self._rng("RA", index)
            code = self._code("RA", index)
            paid = sum(amount for amount, _ in self._payments(index, net + vat, day))
            if self._defect(rng, Defect.PAYMENT_MISMATCH):
                paid = paid + rng.choice((-1, 1)) * rng.randrange(1, 5000) if paid else net + vat
                self._note(Defect.PAYMENT_MISMATCH, "RA", code, "BezSumme")
            yield {
                "Code": code,
                "RCode": self._code("Rechnung", index),
                "RNummer": (day.year % 100) * 10**6 + index % 10**6,
                "Datum": day,
                "SDObjMemberCode": self._code("Kunden", i),
                "FälligDatum": day + timedelta(days=14),
                "BuchungsDatum": day,
                "RBetrag": net / 100,
                "RMwst": vat / 100,
                "BezSumme": paid / 100,
                "StornSumme": 0.0,
                "Skonto": 0.0,
                "Mahnstuffe": 0 if paid >= net + vat else rng.choice((0, 1, 2, 3)),
                "WaehrungCode": 1,
                "Kurs": 1.0,
                "Notiz": None,
                "OPNotiz": None,
                "BenutzerCode": rng.choice(self._active).code,
                "Datev": day + timedelta(days=30) if rng.random() < 0.7 else None,
            }

    def _rabezsumme(self) -> Iterator[Row]:
        for _i, index, _plan, net, vat, day in self._open_items():
            rng = self._rng("RABezSumme", index)
            for k, (amount, moment) in enumerate(self._payments(index, net + vat, day)):
                yield {
                    "Code": self._code("RABezSumme", index * _FAN_PAY + k),
                    "RACode": self._code("RA", index),
                    "Datum": moment.replace(hour=0, minute=0),
                    "BuchungsDatum": moment,
                    "Summe": amount / 100,
                    "Konto": "",
                    "SachkNummer": 1200,
                    "SachkCode": 0,
                    "Notiz": None,
                    "BenutzerCode": rng.choice(self._active).code,
                    "Datev": None,
                }

    # ---- activities ---------------------------------------------------------------------

    def _partners(self) -> Iterator[tuple[_Partner, _Plan | None]]:
        for i in range(self._n):
            plan = self._plan(i)
            email = f"{d.slug(plan.last)}@example.de"
            yield _Partner(1, i, self._code("Kunden", i), plan.contacts, "KAnsprechp", email), plan
        for s in range(self._suppliers):
            yield (
                _Partner(
                    0,
                    s,
                    self._code("Lieferanten", s),
                    self._supplier_contacts(s),
                    "LAnsprechp",
                    None,
                ),
                None,
            )

    def _activity_count(self, partner: _Partner, plan: _Plan | None, kind: str) -> int:
        if plan is not None:
            return int(getattr(plan, kind))
        # suppliers get a few phone notes and letters of their own
        mean = {"calls": 0.5, "letters": 2.0}.get(kind, 0.0)
        return (
            _poisson(self._rng(f"supplier-{kind}", partner.position), mean, _FAN - 1) if mean else 0
        )

    def _activity_base(self, rng: Random, table: str, code: int, partner: _Partner) -> Row:
        contact: int | None = (
            self._code(
                partner.contact_table, partner.position * _FAN + rng.randrange(partner.contacts)
            )
            if partner.contacts and rng.random() < 0.7
            else self._none_ref(rng)
        )
        return {
            "Code": code,
            "BenutzerCode": self._owner(rng, table, code, "BenutzerCode"),
            "BCode": rng.choice(self._active).code,
            "SDObjType": partner.sd_type,
            "SDObjMemberCode": partner.code,
            "AnsprpCode": contact,
        }

    def _activity_index(self, partner: _Partner, j: int, fan: int = _FAN) -> int:
        # suppliers' activities live above every customer's index range
        offset = 0 if partner.sd_type == 1 else MAX_CUSTOMERS * fan
        return offset + partner.position * fan + j

    def _kontaktbericht(self) -> Iterator[Row]:
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "reports")):
                index = self._activity_index(partner, j)
                rng = self._rng("Kontaktbericht", index)
                code = self._code("Kontaktbericht", index)
                start = _when(rng, plan.since if plan else None)
                row = self._activity_base(rng, "Kontaktbericht", code, partner)
                insert, update = self._audit(rng, start)
                yield row | {
                    "Nummer": index % 100000,
                    "Thema": f"Besuch: {rng.choice(d.APPOINTMENT_TOPICS)}",
                    "Ort": "beim Kunden",
                    "Uhrzeitvon": start,
                    "Uhrzeitbis": start + timedelta(minutes=rng.choice((30, 60, 90))),
                    "Art": 0,
                    "KlassifizierungCode": 0,
                    "ProjektCode": 0,
                    "Notiz": rng.choice(d.NOTE_SNIPPETS),
                    "CreationDate": start,
                    "InsertTime": insert,
                    "UpdateTime": update,
                    "CreatedByUserCode": row["BenutzerCode"],
                }

    def _telefonate(self) -> Iterator[Row]:
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "calls")):
                index = self._activity_index(partner, j)
                rng = self._rng("Telefonate", index)
                code = self._code("Telefonate", index)
                start = _when(rng, plan.since if plan else None)
                row = self._activity_base(rng, "Telefonate", code, partner)
                day: datetime = start
                if self._defect(rng, Defect.TEXT_DATE) and self._text_dates:
                    day = TextDate.of(start)
                    self._note(Defect.TEXT_DATE, "Telefonate", code, "Datum")
                report = (
                    self._code("Kontaktbericht", self._activity_index(partner, 0))
                    if plan is not None and plan.reports and rng.random() < 0.5
                    else self._none_ref(rng)
                )
                insert, update = self._audit(rng, start)
                yield row | {
                    "Datum": day,
                    "BeginTime": start,
                    "EndTime": start + timedelta(minutes=rng.randrange(2, 45)),
                    "Titel": rng.choice(d.PHONE_TOPICS),
                    "Notiz": rng.choice(d.NOTE_SNIPPETS) if rng.random() < 0.6 else None,
                    "ProjektCode": self._none_ref(rng),
                    "KNBerichtCode": report,
                    "ErinnernDate": None,
                    "Status": 0,
                    "InsertTime": insert,
                    "UpdateTime": update,
                    "CreatedByUserCode": row["BCode"],
                }

    def _telefonate_anhang(self) -> Iterator[Row]:
        folder = None
        if self.config.files_dir is not None:
            folder = self.config.files_dir / ATTACHMENT_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "calls")):
                index = self._activity_index(partner, j)
                rng = self._rng("TelefonateAnhang", index)
                if rng.random() >= 0.1:
                    continue
                code = self._code("TelefonateAnhang", index)
                original = rng.choice(("Gesprächsnotiz.txt", "Aufmaß Küche.txt", "Rückruf.txt"))
                name = f"{code}_{d.slug(original.rsplit('.', 1)[0])}.txt"
                content = (
                    f"Telefonnotiz {code}\r\n{rng.choice(d.PHONE_TOPICS)}\r\n"
                    f"{rng.choice(d.NOTE_SNIPPETS)}\r\n"
                ).encode("cp1252")
                if folder is not None:
                    (folder / name).write_bytes(content)
                yield {
                    "Code": code,
                    "TelefonateCode": self._code("Telefonate", index),
                    "Dateiname": name,
                    "OriginalDateiname": original,
                    "Groesse": len(content),
                    "Datum": _when(rng, plan.since if plan else None),
                    "BenutzerCode": rng.choice(self._active).code,
                }

    def _whattodos(self) -> Iterator[Row]:
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "tasks")):
                index = self._activity_index(partner, j)
                rng = self._rng("Whattodos", index)
                code = self._code("Whattodos", index)
                start = _when(rng, plan.since if plan else None)
                done = rng.random() < 0.6
                quote = plan is not None and plan.quotes > 0 and rng.random() < 0.3
                insert, update = self._audit(rng, start)
                yield self._activity_base(rng, "Whattodos", code, partner) | {
                    "ProjektCode": 0,
                    "Datum": start,
                    "Enddatum": start + timedelta(days=rng.randrange(1, 30)),
                    "ErinnernDate": None,
                    "Titel": rng.choice(
                        ("Angebot nachfassen", "Rückruf", "Unterlagen senden", "Termin vereinbaren")
                    ),
                    "Notiz": rng.choice(d.NOTE_SNIPPETS),
                    "Erledigt": -1 if done else 0,
                    "ErledigtNotiz": "erledigt" if done else "",
                    "Priorität": rng.randrange(3),
                    "Status": 0,
                    "BZObjType": 6 if quote else 0,
                    "BZObjMemberCode": self._code("Angebot", partner.position * _FAN)
                    if quote
                    else 0,
                    "InsertTime": insert,
                    "UpdateTime": update,
                }

    def _termine(self) -> Iterator[Row]:
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "appointments")):
                index = self._activity_index(partner, j)
                rng = self._rng("Termine", index)
                code = self._code("Termine", index)
                start = _when(rng, plan.since if plan else None).replace(minute=0, second=0)
                start = start.replace(hour=7 + start.hour % 10)
                allday = rng.random() < 0.1
                if allday:
                    start = start.replace(hour=0)
                end = start + (
                    timedelta(days=1)
                    if allday
                    else timedelta(minutes=rng.choice((30, 60, 90, 120)))
                )
                insert, update = self._audit(rng, start)
                yield self._activity_base(rng, "Termine", code, partner) | {
                    "Datum": start,
                    "Anfangsdatum": start,
                    "Enddatum": end,
                    "Ganztägig": -1 if allday else 0,
                    "Privat": 0,
                    "Titel": rng.choice(d.APPOINTMENT_TOPICS),
                    "Notiz": rng.choice(d.NOTE_SNIPPETS) if rng.random() < 0.3 else None,
                    "Treffpunkt": "vor Ort" if rng.random() < 0.5 else "",
                    "KNBerichtCode": 0,
                    "BZObjType": 0,
                    "BZObjMemberCode": 0,
                    "InsertTime": insert,
                    "UpdateTime": update,
                }

    def _termine_teilnehmer(self) -> Iterator[Row]:
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "appointments")):
                index = self._activity_index(partner, j)
                rng = self._rng("TermineTeilnehmer", index)
                user = rng.choice(self._active)
                created = _when(rng, plan.since if plan else None)
                common = {
                    "TerminCode": self._code("Termine", index),
                    "BCode": user.code,
                    "Angelegt": created,
                }
                yield common | {
                    "Code": self._code("TermineTeilnehmer", index * 8),
                    "Anzeigename": f"{user.first} {user.last}",
                    "BenutzerTeilnehmerCode": user.code,
                    "SDObjmembercode": 0,
                    "SDObjType": 0,
                    "AnsprechpCode": 0,
                    "Zusage": created,
                    "Absage": None,
                }
                if rng.random() < 0.1:
                    colleague = rng.choice(self._active)
                    yield common | {
                        "Code": self._code("TermineTeilnehmer", index * 8 + 2),
                        "Anzeigename": f"{colleague.first} {colleague.last}",
                        "BenutzerTeilnehmerCode": colleague.code,
                        "SDObjmembercode": 0,
                        "SDObjType": 0,
                        "AnsprechpCode": 0,
                        "Zusage": None,
                        "Absage": created if rng.random() < 0.2 else None,
                    }
                if partner.contacts and rng.random() < 0.7:
                    yield common | {
                        "Code": self._code("TermineTeilnehmer", index * 8 + 1),
                        "Anzeigename": "Ansprechpartner",
                        "BenutzerTeilnehmerCode": 0,
                        "SDObjmembercode": partner.code,
                        "SDObjType": partner.sd_type,
                        "AnsprechpCode": self._code(partner.contact_table, partner.position * _FAN),
                        "Zusage": None,
                        "Absage": None,
                    }

    def _briefe(self) -> Iterator[Row]:
        users = {user.code: user for user in self._users}
        for partner, plan in self._partners():
            for j in range(self._activity_count(partner, plan, "letters")):
                index = self._activity_index(partner, j, _FAN * 2)
                rng = self._rng("Briefe", index)
                code = self._code("Briefe", index)
                sent = _when(rng, plan.since if plan else None)
                row = self._activity_base(rng, "Briefe", code, partner)
                email = rng.random() < 0.8
                topic = rng.choice(d.LETTER_TOPICS)
                sender = users[int(row["BenutzerCode"])]
                insert, update = self._audit(rng, sent)
                yield row | {
                    "Datum": sent,
                    "Art": 1 if email else 0,
                    "Betreff": topic,
                    "MailFrom": sender.email if email else None,
                    "MailTo": (partner.email or "einkauf@lieferant.de") if email else None,
                    "HtmlText": f"<p>Guten Tag,</p><p>{topic}: anbei die Unterlagen.</p>"
                    if email
                    else None,
                    "InsertTime": insert,
                    "UpdateTime": update,
                }
