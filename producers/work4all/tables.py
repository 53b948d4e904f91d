"""The work4all tables crmledger reads: names, columns, kinds, keys and links, as data.

Names are exactly those of the work4all SQL Server schema (umlauts, ``ß`` and hyphens included),
taken from ``shared/reference/work4all-export.md`` (sections 1.4, 2.2 and the Appendix). Only the
columns crmledger needs are listed; a real export has many more, which readers ignore.

Conventions every reader must apply (reference 1.2):

- ``Code`` keys are random ints in 1…2,147,483,647, not sequential. ``KAnsprechp`` and
  ``LAnsprechp`` are keyed by ``KAnsprechpCode``/``LAnsprechpCode``; lookups by ``AnredeCode``,
  ``EinheitCode``, ``MwstCode``, ``GrCode``.
- A link column holding ``0`` or ``NULL`` means "no reference"; both occur in one table.
- ``Kind.BOOL`` columns are ints with ``-1`` = true and ``0`` = false (newer ``bit`` columns,
  marked ``bit=True``, hold ``1``).
- Money is ``float`` (binary artefacts such as ``48.7400016784668`` occur).
- ``Staat`` is the vehicle-registration code (``D``), not ISO.

Columns marked ``invented=True`` are not in any public work4all schema dump; they fill a table the
reference names without listing its columns (``Briefe``, ``Preise``, ``Preisgruppen``,
``ArtikelGr``, ``TelefonateAnhang``) and must be checked against a real export.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a column's value is stored in work4all."""

    CODE = "code"
    """int key or link to another table's key; 0 and NULL both mean none."""
    INT = "int"
    """plain int: numbers (``Nummer``), days, percentages as whole numbers, enum codes."""
    BOOL = "bool"
    """int flag: -1 (or 1 in ``bit`` columns) = true, 0 = false."""
    TEXT = "text"
    """nvarchar(max_length) or ntext (max_length None)."""
    MONEY = "money"
    """float amount in the document currency (EUR); round to cents when reading."""
    FLOAT = "float"
    """float or real that is not money: quantities, rates (``Mwst`` 19.0), percentages."""
    DATETIME = "datetime"
    """SQL datetime; date-only values are stored at midnight."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a work4all table."""

    name: str
    kind: Kind
    max_length: int | None = None
    """nvarchar length in the current schema (S1); None for ntext/nvarchar(max) and non-text."""
    references: str | None = None
    """name of the table whose key this column holds (0/NULL = none)."""
    required: bool = False
    """crmledger cannot migrate the table without this column in the export."""
    bit: bool = False
    """a newer ``bit`` column: true is stored as 1, not -1."""
    invented: bool = False
    """not confirmed by a real schema; see the module docstring."""


@dataclass(frozen=True, slots=True)
class Polymorphic:
    """A link whose target table depends on a type column (``SDObjType``, ``BZObjType``)."""

    type_column: str
    member_column: str
    targets: tuple[tuple[int, str], ...]
    """(type value, table name) pairs; other type values have no known target."""

    def target(self, type_value: int | None) -> str | None:
        """The table a member code points to for this type value, or None if unknown."""
        for value, table in self.targets:
            if value == type_value:
                return table
        return None


@dataclass(frozen=True, slots=True)
class Table:
    """One work4all table: its exact name, its columns in export order, its key column."""

    name: str
    columns: tuple[Column, ...]
    key: str
    polymorphic: tuple[Polymorphic, ...] = ()
    doc: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in export order."""
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column:
        """The column called ``name``; KeyError if the table has none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name!r}")


def _code(
    name: str, references: str | None = None, *, required: bool = False, invented: bool = False
) -> Column:
    return Column(name, Kind.CODE, references=references, required=required, invented=invented)


def _int(name: str, *, required: bool = False, invented: bool = False) -> Column:
    return Column(name, Kind.INT, required=required, invented=invented)


def _bool(name: str, *, bit: bool = False) -> Column:
    return Column(name, Kind.BOOL, bit=bit)


def _text(
    name: str, max_length: int | None = None, *, required: bool = False, invented: bool = False
) -> Column:
    return Column(name, Kind.TEXT, max_length=max_length, required=required, invented=invented)


def _money(name: str, *, required: bool = False, invented: bool = False) -> Column:
    return Column(name, Kind.MONEY, required=required, invented=invented)


def _float(name: str) -> Column:
    return Column(name, Kind.FLOAT)


def _dt(name: str, *, required: bool = False, invented: bool = False) -> Column:
    return Column(name, Kind.DATETIME, required=required, invented=invented)


_PARTNER = Polymorphic("SDObjType", "SDObjMemberCode", ((1, "Kunden"), (0, "Lieferanten")))
_PARTNER_CONTACT = Polymorphic("SDObjType", "AnsprpCode", ((1, "KAnsprechp"), (0, "LAnsprechp")))
_DOCUMENT = Polymorphic("BZObjType", "BZObjMemberCode", ((6, "Angebot"), (7, "Rechnung")))
_AUDIT = (_dt("InsertTime"), _dt("UpdateTime"))

_DOCUMENT_HEADER = (
    _code("Code", required=True),
    _int("Nummer", required=True),
    _dt("Datum", required=True),
    _int("SDObjType", required=True),
    _code("SDObjMemberCode", required=True),
    _code("AnsprpCode"),
    _code("ProjektCode"),
    _code("BenutzerCode", "Mitarbeiter"),
    _money("Wert", required=True),
    _money("Bruttowert"),
    _bool("Brutto"),
    _int("WaehrungCode"),
    _float("Kurs"),
    _int("Zahlungsfrist"),
    _float("Skonto"),
    _float("Skontofrist"),
    _text("IhrZeichen", 50),
    _text("UnserZeichen", 50),
    _text("Kopftext"),
    _text("Schlußtext"),
    _text("Notiz"),
)
"""The header columns quotes (Angebot) and invoices (Rechnung) share, in their order."""


_TABLE_LIST: tuple[Table, ...] = (
    Table(
        "Mitarbeiter",
        (
            _code("Code", required=True),
            _int("Nummer"),
            _text("Name", 50, required=True),
            _text("Vorname", 30),
            _text("MName", 35),
            _text("eMail", 50, required=True),
            _text("Telefon", 20),
            _text("Mobilfunk", 20),
            _code("BenutzerCode", "Mitarbeiter"),
            _bool("Ausgeschieden"),
            _dt("Eintrittsdatum"),
            _code("GrCode"),
        ),
        "Code",
        doc="Users, employees and resources (vehicles, rooms); HR columns are never exported.",
    ),
    Table(
        "Anrede",
        (
            _code("AnredeCode", required=True),
            _text("AnredeName", 50, required=True),
            _text("StdBriefAnrede", 50),
            _text("Titel", 50),
            _bool("Männlich"),
            _bool("Weiblich"),
            _int("Nummer"),
        ),
        "AnredeCode",
        doc="Salutations; code 0 is '-Ohne-', other codes' meaning differs per installation.",
    ),
    Table(
        "KundenGr",
        (
            _code("GrCode", required=True),
            _int("GrIndex"),
            _int("GrLevel"),
            _text("GrName", 40, required=True),
        ),
        "GrCode",
        doc="Customer groups.",
    ),
    Table(
        "Preisgruppen",
        (
            _code("Code", required=True, invented=True),
            _text("Name", 50, required=True, invented=True),
        ),
        "Code",
        doc="Price groups (S1: 4 rows, 'Neukunde', …); columns invented.",
    ),
    Table(
        "Einheit",
        (
            _code("EinheitCode", required=True),
            _text("EinheitName", 30, required=True),
            _text("Bezeichnung", 50),
            _float("Faktor"),
        ),
        "EinheitCode",
        doc="Units of measure (`St.`, `h`, `m`).",
    ),
    Table(
        "Mehrwertsteuersätze",
        (
            _code("MwstCode", required=True),
            Column("MwstName", Kind.FLOAT, required=True),
            _bool("Deaktiviert"),
        ),
        "MwstCode",
        doc="VAT rates; MwstName is the rate itself (19.0).",
    ),
    Table(
        "ArtikelGr",
        (
            _code("GrCode", required=True, invented=True),
            _int("GrIndex", invented=True),
            _int("GrLevel", invented=True),
            _text("GrName", 40, required=True, invented=True),
        ),
        "GrCode",
        doc="Item groups; columns assumed to follow KundenGr.",
    ),
    Table(
        "IndividualFields",
        (
            _code("Code", required=True),
            _text("Control", 50, required=True),
            _int("DisplayOrder"),
            _int("FieldNumber", required=True),
            _code("IndividualPageCode"),
            _bool("Pflichtfeld"),
            _text("TableType", 250, required=True),
            _text("Title", 4000, required=True),
            _text("Tooltip", 4000),
        ),
        "Code",
        doc=(
            "Custom field definitions: (TableType, FieldNumber) labels the physical column "
            "<TableType>.Feld<FieldNumber>. Combo options are encoded in Title: segments split "
            "on three backticks, each 'text;;;index'."
        ),
    ),
    Table(
        "Kunden",
        (
            _code("Code", required=True),
            _int("Nummer", required=True),
            _text("Name", 160, required=True),
            _text("Firma1", 100, required=True),
            _text("Firma2", 100),
            _text("Firma3", 100),
            _code("AnredeCode", "Anrede"),
            _text("BriefAnrede", 50),
            _text("Titelerweiterung", 30),
            _text("Straße", 100),
            _text("Staat", 20),
            _text("Plz", 50),
            _text("Ort", 50),
            _text("Telefon", 50),
            _text("Telefon2", 30),
            _text("Telefax", 50),
            _text("E-Mail", 150),
            _text("E-Mail2", 150),
            _text("InterNet", 200),
            _bool("Privatkunde"),
            _bool("Gesperrt"),
            _bool("Erloschen"),
            _code("GrCode", "KundenGr"),
            _code("KAnsprechpCode", "KAnsprechp"),
            _code("VertreterCode", "Mitarbeiter"),
            _int("Zahlungsfrist"),
            _float("Skonto"),
            _float("Skontofrist"),
            _money("Kreditlimit"),
            _code("Preisgruppe", "Preisgruppen"),
            _text("USTIDNR", 50),
            _text("IBAN", 34),
            _text("BIC", 11),
            _int("WährungCode"),
            _dt("Erstkontakt"),
            _text("PersonErstkontakt", 50),
            _text("Notiz"),
            _text("OPNotiz"),
            _bool("DoublettenCheck_NichtMehrAnzeigen"),
            _code("AdresseWirdGepflegtBeiLieferantCode", "Lieferanten"),
            _text("Feld1", 1000),
            _bool("Feld2", bit=True),
            _dt("Feld3"),
            _float("Feld4"),
            _dt("LetzteÄnderung"),
            *_AUDIT,
            _code("CreatedByUserCode", "Mitarbeiter"),
        ),
        "Code",
        doc="Customers. Feld1 to Feld4 are custom fields defined in IndividualFields.",
    ),
    Table(
        "Lieferanten",
        (
            _code("Code", required=True),
            _int("Nummer", required=True),
            _text("Name", 160, required=True),
            _text("Firma1", 100, required=True),
            _text("Firma2", 100),
            _code("AnredeCode", "Anrede"),
            _text("BriefAnrede", 50),
            _text("Straße", 100),
            _text("Staat", 20),
            _text("Plz", 20),
            _text("Ort", 50),
            _text("Telefon", 50),
            _text("Telefax", 50),
            _text("E-Mail", 150),
            _text("InterNet", 200),
            _text("Kundennr", 20),
            _code("LAnsprechpCode", "LAnsprechp"),
            _bool("Gesperrt"),
            _int("Zahlungsfrist"),
            _float("Skonto"),
            _float("Skontofrist"),
            _text("USTIDNR", 50),
            _text("IBAN", 34),
            _text("BIC", 11),
            _int("WährungCode"),
            _dt("Erstkontakt"),
            _text("Notiz"),
            _code("AdresseWirdGepflegtBeiKundeCode", "Kunden"),
            *_AUDIT,
        ),
        "Code",
        doc="Suppliers; Nummer in 70000 to 99999; Kundennr is our number at the supplier.",
    ),
    Table(
        "KAnsprechp",
        (
            _code("KAnsprechpCode", required=True),
            _code("KundenCode", "Kunden", required=True),
            _code("AnredeCode", "Anrede"),
            _text("Vorname", 30),
            _text("Name", 30, required=True),
            _text("Titelerweiterung", 50),
            _text("Briefanrede", 50),
            _text("Funktion", 50),
            _code("AbteilungCode"),
            _text("Telefon", 50),
            _text("Mobilfunk", 50),
            _text("Telefax", 50),
            _text("E-Mail", 150),
            _text("Straße", 100),
            _text("Staat", 20),
            _text("Plz", 50),
            _text("Ort", 50),
            _dt("Geburtsdatum"),
            _bool("Entlassen"),
            _bool("VIP"),
            _bool("Mailsperre"),
            _bool("Serienbriefsperre"),
            _text("Notiz"),
            _dt("Erstkontakt"),
            _dt("LetzteÄnderung"),
            *_AUDIT,
        ),
        "KAnsprechpCode",
        doc="Customer contact persons.",
    ),
    Table(
        "LAnsprechp",
        (
            _code("LAnsprechpCode", required=True),
            _code("LieferantenCode", "Lieferanten", required=True),
            _int("Code"),
            _code("AnredeCode", "Anrede"),
            _text("Vorname", 30),
            _text("Name", 30, required=True),
            _text("Briefanrede", 50),
            _text("Funktion", 50),
            _text("Telefon", 50),
            _text("Mobilfunk", 50),
            _text("E-Mail", 150),
            _bool("Entlassen"),
            _text("Notiz"),
            _dt("Erstkontakt"),
            *_AUDIT,
        ),
        "LAnsprechpCode",
        doc="Supplier contact persons; the separate Code column is always 0.",
    ),
    Table(
        "Artikel",
        (
            _code("Code", required=True),
            _text("Nummer", 20, required=True),
            _text("Name", 150, required=True),
            _code("GrCode", "ArtikelGr"),
            _code("EinheitCode", "Einheit"),
            _code("MwstCode", "Mehrwertsteuersätze"),
            _money("Nettopreis", required=True),
            _money("Nettopreis2"),
            _money("Bruttopreis"),
            _money("MittlererEK"),
            _text("EAN", 20),
            _bool("Dienstleistung"),
            _bool("Stillgelegt"),
            _text("Notiz"),
            _text("Bemerkung"),
            _dt("Angelegt"),
            _dt("LetzteÄnderung"),
            *_AUDIT,
            _bool("Feld1", bit=True),
        ),
        "Code",
        doc="Items. Feld1 is a custom check field defined in IndividualFields.",
    ),
    Table(
        "Preise",
        (
            _code("Code", required=True, invented=True),
            _code("ArtikelCode", "Artikel", required=True, invented=True),
            _code("Preisgruppe", "Preisgruppen", required=True, invented=True),
            _money("Nettopreis", required=True, invented=True),
        ),
        "Code",
        doc="Item prices per price group; columns invented.",
    ),
    Table(
        "Verkaufschancen",
        (
            _code("Code", required=True),
            _text("Name", 70, required=True),
            _code("SDObjMemberCode", "Kunden", required=True),
            _code("AnsprechpCode", "KAnsprechp"),
            _code("BCode", "Mitarbeiter"),
            _code("BCode2", "Mitarbeiter"),
            _code("ErstellerBenutzerCode", "Mitarbeiter"),
            _code("GrCode"),
            _dt("DatumErstellt"),
            _dt("DatumEntscheidung"),
            _dt("DatumNächsteBewertung"),
            _dt("NaechsterKontakt"),
            _money("Wert"),
            _money("WertAuftrag"),
            _money("ErwarteteKosten"),
            _int("WährungCode"),
            _int("WahrscheinlichkeitProzent"),
            _int("Tendenz"),
            _int("Status"),
            _int("StatusCode"),
            _int("Art"),
            _int("Zuordnungsart"),
            _text("Beschreibung"),
            _text("Notiz"),
            _text("Mitbewerber", 255),
            _text("Info", 255),
            _int("BZObjType"),
            _code("BZObjMemberCode"),
            _bool("Eingefroren"),
            *_AUDIT,
        ),
        "Code",
        polymorphic=(Polymorphic("BZObjType", "BZObjMemberCode", ((6, "Angebot"),)),),
        doc="Opportunities; Status 0 open, 1 won, 2 lost (semantics unconfirmed).",
    ),
    Table(
        "Angebot",
        (
            *_DOCUMENT_HEADER,
            _text("Feld1", 500),
            _dt("AuftragsDatum"),
            _int("AuftragsNummer"),
            _bool("Abgelehnt"),
            _bool("Abgeschlossen"),
            _int("BewertungProzent"),
            _code("VerkaufschancenCode", "Verkaufschancen"),
            _dt("EditDate"),
            *_AUDIT,
            _code("CreatedByUserCode", "Mitarbeiter"),
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT),
        doc="Quotes; an order is a quote with AuftragsDatum set. Wert is net.",
    ),
    Table(
        "Rechnung",
        (
            *_DOCUMENT_HEADER,
            _dt("Zahlbarbis"),
            _dt("Skontobis"),
            _bool("RA"),
            _dt("BuchungsDatum"),
            _bool("Anzahlung"),
            _code("SchlussrechnungCode", "Rechnung"),
            _code("OriginalRechnungCode", "Rechnung"),
            _dt("EditDate"),
            *_AUDIT,
            _code("CreatedByUserCode", "Mitarbeiter"),
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT),
        doc="Outgoing invoices; RA = -1 when transferred to open items. Wert is net.",
    ),
    Table(
        "Positionen",
        (
            _code("Code", required=True),
            _int("BZObjType", required=True),
            _code("BZObjMemberCode", required=True),
            _int("Nummer"),
            _text("PozNr", 20),
            _code("ArtikelCode", "Artikel"),
            _text("ArtNr", 20),
            _text("Kurztext", 150),
            _text("Bezeichnung"),
            _float("Anzahl"),
            _text("Einheit", 30),
            _money("EinzPreis"),
            _money("GesPreis", required=True),
            _float("Mwst"),
            _float("Rabatt"),
            _money("EKPreis"),
            _code("ProjektCode"),
            _dt("CreationDate"),
        ),
        "Code",
        polymorphic=(_DOCUMENT,),
        doc="Line items of all documents; title rows have no ArtikelCode and Anzahl 0.",
    ),
    Table(
        "RA",
        (
            _code("Code", required=True),
            _code("RCode", "Rechnung", required=True),
            _int("RNummer", required=True),
            _dt("Datum", required=True),
            _code("SDObjMemberCode", "Kunden", required=True),
            _dt("FälligDatum"),
            _dt("BuchungsDatum"),
            _money("RBetrag", required=True),
            _money("RMwst", required=True),
            _money("BezSumme", required=True),
            _money("StornSumme"),
            _money("Skonto"),
            _int("Mahnstuffe"),
            _int("WaehrungCode"),
            _float("Kurs"),
            _text("Notiz"),
            _text("OPNotiz"),
            _code("BenutzerCode", "Mitarbeiter"),
            _dt("Datev"),
        ),
        "Code",
        doc="Open items: RBetrag net, RMwst VAT, BezSumme paid so far (cached).",
    ),
    Table(
        "RABezSumme",
        (
            _code("Code", required=True),
            _code("RACode", "RA", required=True),
            _dt("Datum", required=True),
            _dt("BuchungsDatum"),
            _money("Summe", required=True),
            _text("Konto", 30),
            _int("SachkNummer"),
            _code("SachkCode"),
            _text("Notiz"),
            _code("BenutzerCode", "Mitarbeiter"),
            _dt("Datev"),
        ),
        "Code",
        doc="Payments against an open item.",
    ),
    Table(
        "Kontaktbericht",
        (
            _code("Code", required=True),
            _int("Nummer"),
            _int("SDObjType", required=True),
            _code("SDObjMemberCode", required=True),
            _code("AnsprpCode"),
            _code("BenutzerCode", "Mitarbeiter"),
            _text("Thema"),
            _text("Ort", 50),
            _dt("Uhrzeitvon", required=True),
            _dt("Uhrzeitbis"),
            _int("Art"),
            _code("KlassifizierungCode"),
            _code("ProjektCode"),
            _text("Notiz", 4000),
            _dt("CreationDate"),
            *_AUDIT,
            _code("CreatedByUserCode", "Mitarbeiter"),
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT),
        doc="Visit reports.",
    ),
    Table(
        "Telefonate",
        (
            _code("Code", required=True),
            _code("BenutzerCode", "Mitarbeiter", required=True),
            _code("BCode", "Mitarbeiter"),
            _int("SDObjType", required=True),
            _code("SDObjMemberCode", required=True),
            _code("AnsprpCode"),
            _dt("Datum", required=True),
            _dt("BeginTime"),
            _dt("EndTime"),
            _text("Titel", 100),
            _text("Notiz"),
            _code("ProjektCode"),
            _code("KNBerichtCode", "Kontaktbericht"),
            _dt("ErinnernDate"),
            _int("Status"),
            *_AUDIT,
            _code("CreatedByUserCode", "Mitarbeiter"),
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT),
        doc="Phone notes.",
    ),
    Table(
        "TelefonateAnhang",
        (
            _code("Code", required=True, invented=True),
            _code("TelefonateCode", "Telefonate", required=True, invented=True),
            _text("Dateiname", 500, required=True, invented=True),
            _text("OriginalDateiname", 500, invented=True),
            _int("Groesse", invented=True),
            _dt("Datum", invented=True),
            _code("BenutzerCode", "Mitarbeiter", invented=True),
        ),
        "Code",
        doc=(
            "Attachments of phone notes; the files themselves lie in the file store "
            "(CRMAttachements/M001/<Dateiname>). Columns invented."
        ),
    ),
    Table(
        "Whattodos",
        (
            _code("Code", required=True),
            _code("BenutzerCode", "Mitarbeiter", required=True),
            _code("BCode", "Mitarbeiter"),
            _int("SDObjType", required=True),
            _code("SDObjMemberCode", required=True),
            _code("AnsprpCode"),
            _code("ProjektCode"),
            _dt("Datum", required=True),
            _dt("Enddatum"),
            _dt("ErinnernDate"),
            _text("Titel", 100, required=True),
            _text("Notiz"),
            _bool("Erledigt"),
            _text("ErledigtNotiz", 50),
            _int("Priorität"),
            _int("Status"),
            _int("BZObjType"),
            _code("BZObjMemberCode"),
            *_AUDIT,
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT, _DOCUMENT),
        doc="Tasks: BenutzerCode assignee, BCode creator.",
    ),
    Table(
        "Termine",
        (
            _code("Code", required=True),
            _code("BenutzerCode", "Mitarbeiter", required=True),
            _code("BCode", "Mitarbeiter"),
            _int("SDObjType", required=True),
            _code("SDObjMemberCode", required=True),
            _code("AnsprpCode"),
            _dt("Datum"),
            _dt("Anfangsdatum", required=True),
            _dt("Enddatum", required=True),
            _bool("Ganztägig"),
            _bool("Privat"),
            _text("Titel", 100, required=True),
            _text("Notiz"),
            _text("Treffpunkt", 500),
            _code("KNBerichtCode", "Kontaktbericht"),
            _int("BZObjType"),
            _code("BZObjMemberCode"),
            *_AUDIT,
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT, _DOCUMENT),
        doc="Appointments; attendees in TermineTeilnehmer.",
    ),
    Table(
        "TermineTeilnehmer",
        (
            _code("Code", required=True),
            _code("TerminCode", "Termine", required=True),
            _text("Anzeigename", 50),
            _code("BenutzerTeilnehmerCode", "Mitarbeiter"),
            _code("SDObjmembercode"),
            _int("SDObjType"),
            _code("AnsprechpCode"),
            _dt("Zusage"),
            _dt("Absage"),
            _code("BCode", "Mitarbeiter"),
            _dt("Angelegt"),
        ),
        "Code",
        polymorphic=(
            Polymorphic("SDObjType", "SDObjmembercode", ((1, "Kunden"), (0, "Lieferanten"))),
            Polymorphic("SDObjType", "AnsprechpCode", ((1, "KAnsprechp"), (0, "LAnsprechp"))),
        ),
        doc="Appointment attendees: a user (BenutzerTeilnehmerCode) or a partner's contact.",
    ),
    Table(
        "Briefe",
        (
            _code("Code", required=True),
            _code("BenutzerCode", "Mitarbeiter", required=True),
            _code("BCode", "Mitarbeiter"),
            _int("SDObjType", required=True),
            _code("SDObjMemberCode", required=True),
            _code("AnsprpCode"),
            _dt("Datum", required=True),
            _int("Art", invented=True),
            _text("Betreff", 250, invented=True),
            _text("MailFrom", 250),
            _text("MailTo"),
            _text("HtmlText"),
            *_AUDIT,
        ),
        "Code",
        polymorphic=(_PARTNER, _PARTNER_CONTACT),
        doc="E-mails (Art 1) and letters (Art 0); Art and Betreff invented.",
    ),
)


TABLES: dict[str, Table] = {table.name: table for table in _TABLE_LIST}
"""Every table crmledger reads, by exact work4all name, in generation (dependency) order."""
