"""How alike two column names are, across German and English.

work4all names columns in German (``Straße``, ``Plz``, ``E-Mail``), exports renamed by a person
or a vendor script use other German words or abbreviations (``Straße_Anschrift``, ``Tel``,
``Mailadresse``), and Dataverse names columns in English (``address1_line1``). Three signals:

- **String similarity** of the folded names: the best of trigram Dice, edit (``difflib``)
  ratio, an abbreviation test (``Tel`` for ``Telefon``) and containment (``Straße`` inside
  ``Straße_Anschrift``).
- **Concepts**: a small bilingual synonym table (:data:`CONCEPTS`). A name *has* a concept when
  it is one of its terms, has one as a token, or (for terms of four letters or more) contains
  one, as German compounds do (``Mailadresse`` contains ``mail``).
- **Semantics** that value profiles can check: each concept says what its values look like
  (``phone``, ``email``, ``date``, …); see :mod:`producers.mapping.profile`.

No embedding model is used: none ships with crmledger's dependencies, and the synonym table is
explicit, reviewable and deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
_CAMEL = re.compile(r"(?<=[a-zäöüß])(?=[A-ZÄÖÜ])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_SEPARATORS = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, slots=True)
class Concept:
    """A meaning shared by German work4all, free-form and English Dataverse column names."""

    name: str
    semantic: str
    """what values look like: phone, email, url, postcode, date, money, number, integer,
    boolean, text, country."""
    terms: tuple[str, ...]
    """folded spellings (see :func:`fold`); Dataverse logical names included."""


def fold(name: str) -> str:
    """A name as a comparison key: NFC, case-folded, umlauts transliterated, only a-z and 0-9.

    ``Straße_Anschrift`` → ``strasseanschrift``; ``E-Mail`` → ``email``.
    """
    text = unicodedata.normalize("NFC", name).casefold().translate(_TRANSLITERATION)
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def tokens(name: str) -> tuple[str, ...]:
    """The words of a name, folded: split at separators, case changes and digits.

    ``Straße_Anschrift`` → ``("strasse", "anschrift")``; ``address1_line1`` →
    ``("address", "1", "line", "1")``; ``WährungCode`` → ``("waehrung", "code")``.
    """
    spaced = _CAMEL.sub(" ", unicodedata.normalize("NFC", name))
    folded = spaced.casefold().translate(_TRANSLITERATION)
    folded = unicodedata.normalize("NFKD", folded)
    folded = "".join(ch for ch in folded if ch.isascii())
    return tuple(part for part in _SEPARATORS.split(folded) if part)


def _c(name: str, semantic: str, *terms: str) -> Concept:
    return Concept(name, semantic, tuple(fold(term) for term in terms))


CONCEPTS: tuple[Concept, ...] = (
    _c("phone", "phone", "Telefon", "Tel", "Fon", "Phone", "Telephone", "Telefonnummer",
       "Rufnummer", "telephone1", "Festnetz", "phonenumber"),
    _c("phone2", "phone", "Telefon2", "Tel2", "telephone2", "Zweittelefon"),
    _c("mobile", "phone", "Mobil", "Mobilfunk", "Handy", "Mobile", "mobilephone", "Mobiltelefon",
       "Mobilnummer", "Cell", "Autotelefon"),
    _c("fax", "phone", "Fax", "Telefax", "Faxnummer", "address1_fax"),
    _c("email", "email", "EMail", "E-Mail", "Mail", "Mailadresse", "Emailadresse",
       "emailaddress", "emailaddress1", "Email1", "MailTo", "MailFrom"),
    _c("email2", "email", "EMail2", "E-Mail2", "Mail2", "emailaddress2", "Email2", "Zweitmail",
       "Zweitemail"),
    _c("street", "text", "Straße", "Strasse", "Str", "Street", "Anschrift", "Adresse",
       "Address", "address1_line1", "Hausnummer", "Adresszeile"),
    _c("postcode", "postcode", "Plz", "Postleitzahl", "Postalcode", "address1_postalcode", "Zip",
       "Zipcode", "Postcode"),
    _c("city", "text", "Ort", "Stadt", "City", "Wohnort", "Town", "Gemeinde", "address1_city"),
    _c("country", "country", "Staat", "Land", "Country", "Lkz", "Laenderkennzeichen",
       "address1_country", "Nation"),
    _c("website", "url", "Internet", "Homepage", "Webseite", "Website", "Url", "websiteurl",
       "Www", "Web", "Internetadresse"),
    _c("company", "text", "Firma", "Firma1", "Firmenname", "Company", "Companyname",
       "Unternehmen", "Accountname"),
    _c("company2", "text", "Firma2", "Firma3", "Namenszusatz", "Firmenzusatz", "Zusatz"),
    _c("lastname", "text", "Nachname", "Familienname", "Lastname", "Surname", "Zuname"),
    _c("firstname", "text", "Vorname", "Firstname", "Givenname", "Rufname"),
    _c("middlename", "text", "MName", "Middlename", "Zweitname"),
    _c("name", "text", "Name", "Bezeichnung", "Kurztext", "Titel", "Topic", "Subject", "Betreff",
       "Thema"),
    _c("birthdate", "date", "Geburtstag", "Geburtsdatum", "Birthday", "Birthdate",
       "Dateofbirth", "Gebdatum"),
    _c("revenue", "money", "Umsatz", "Jahresumsatz", "Revenue", "Turnover", "Annualrevenue"),
    _c("employees", "integer", "Mitarbeiterzahl", "Mitarbeiteranzahl", "Anzahlmitarbeiter",
       "Numberofemployees", "Employees", "Beschaeftigte", "Belegschaft"),
    _c("jobtitle", "text", "Funktion", "Position", "Jobtitle", "Stellung", "Rolle", "Beruf"),
    _c("department", "text", "Abteilung", "Department", "Bereich"),
    _c("salutation", "text", "Briefanrede", "Anrede", "Salutation", "Greeting", "Grußformel"),
    _c("title", "text", "Titelerweiterung", "Akademischertitel", "Suffix", "Namenserweiterung"),
    _c("notes", "text", "Notiz", "Notizen", "Bemerkung", "Bemerkungen", "Notes", "Description",
       "Beschreibung", "Kommentar", "Info", "Memo", "Freitext", "Opnotiz", "Htmltext", "Text"),
    _c("number", "integer", "Nummer", "Kundennummer", "Kdnr", "Nr", "Number", "Accountnumber",
       "Lieferantennummer", "Artikelnummer", "Artnr", "Productnumber", "Belegnummer"),
    _c("creditlimit", "money", "Kreditlimit", "Creditlimit", "Kreditrahmen"),
    _c("paymentterms", "integer", "Zahlungsfrist", "Zahlungsziel", "Paymentterms", "Zahltage"),
    _c("discount", "number", "Skonto", "Rabatt", "Discount", "Nachlass"),
    _c("discountdays", "number", "Skontofrist", "Skontotage"),
    _c("vatid", "text", "Ustidnr", "Ustid", "Umsatzsteuerid", "Vatnumber", "Vatid",
       "Steuernummer", "Umsatzsteueridentnummer"),
    _c("iban", "text", "Iban", "Kontonummer", "Bankkonto"),
    _c("bic", "text", "Bic", "Swift", "Bankleitzahl", "Blz"),
    _c("currency", "integer", "Waehrung", "Währungcode", "Waehrungcode", "Currency",
       "Transactioncurrencyid"),
    _c("firstcontact", "date", "Erstkontakt", "Firstcontact", "Kundeseit"),
    _c("firstcontactperson", "text", "Personerstkontakt"),
    _c("created", "date", "Inserttime", "Angelegt", "Erstellt", "Createdon", "Anlagedatum",
       "Datumerstellt", "Creationdate", "Overriddencreatedon", "Erfasst"),
    _c("modified", "date", "Updatetime", "Letzteaenderung", "Geaendert", "Modifiedon",
       "Lastmodified", "Aenderungsdatum", "Editdate"),
    _c("date", "date", "Datum", "Date", "Tag"),
    _c("start", "date", "Beginn", "Anfang", "Anfangsdatum", "Begintime", "Start", "Von",
       "Uhrzeitvon", "Scheduledstart", "Actualstart"),
    _c("end", "date", "Ende", "Enddatum", "Endtime", "End", "Bis", "Uhrzeitbis", "Scheduledend",
       "Actualend"),
    _c("due", "date", "Faelligdatum", "Faellig", "Zahlbarbis", "Duedate", "Faelligkeit",
       "Datumentscheidung", "Estimatedclosedate", "Abschlussdatum"),
    _c("price", "money", "Nettopreis", "Preis", "Vk", "Verkaufspreis", "Price", "Listprice",
       "Einzpreis", "Einzelpreis", "Priceperunit", "Amount", "Vkpreis"),
    _c("cost", "money", "Ek", "Einkaufspreis", "Mittlererek", "Ekpreis", "Standardcost",
       "Currentcost", "Cost", "Kosten", "Erwartetekosten"),
    _c("value", "money", "Wert", "Betrag", "Summe", "Estimatedvalue", "Gesamtwert", "Gespreis",
       "Value", "Total", "Rbetrag", "Bruttowert"),
    _c("quantity", "number", "Anzahl", "Menge", "Quantity", "Qty", "Stueck"),
    _c("unit", "text", "Einheit", "Unit", "Uom", "Mengeneinheit"),
    _c("tax", "number", "Mwst", "Mehrwertsteuer", "Tax", "Steuer", "Rmwst"),
    _c("ean", "text", "Ean", "Barcode", "Gtin"),
    _c("probability", "integer", "Wahrscheinlichkeit", "Wahrscheinlichkeitprozent",
       "Probability", "Closeprobability", "Chance", "Bewertungprozent"),
    _c("blocked", "boolean", "Gesperrt", "Sperre", "Blocked", "Locked", "Inaktiv"),
    _c("donotemail", "boolean", "Mailsperre", "Donotemail", "Keinemail"),
    _c("donotbulk", "boolean", "Serienbriefsperre", "Donotbulkemail", "Donotbulkpostalmail",
       "Keinewerbung"),
    _c("private", "boolean", "Privatkunde", "Privat", "Private", "Privatperson"),
    _c("retired", "boolean", "Stillgelegt", "Erloschen", "Ausgeschieden", "Entlassen",
       "Deaktiviert", "Retired", "Inactive"),
    _c("service", "boolean", "Dienstleistung", "Service"),
    _c("done", "boolean", "Erledigt", "Done", "Completed", "Abgeschlossen"),
    _c("location", "text", "Treffpunkt", "Location", "Besprechungsort"),
    _c("vip", "boolean", "Vip", "Wichtig", "Important"),
    _c("owner", "integer", "Vertreter", "Vertretercode", "Betreuer", "Benutzercode", "Owner",
       "Ownerid", "Sachbearbeiter", "Zustaendig", "Bcode"),
)  # fmt: skip
"""The bilingual synonym table: work4all German, everyday German and Dataverse English."""


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def trigram_similarity(a: str, b: str) -> float:
    """Dice coefficient of the character trigrams of two folded names (0..1)."""
    left, right = _trigrams(fold(a)), _trigrams(fold(b))
    if not left or not right:
        return 0.0
    return 2 * len(left & right) / (len(left) + len(right))


def edit_similarity(a: str, b: str) -> float:
    """``difflib`` ratio of two folded names: 1 - normalised edit distance, roughly (0..1)."""
    left, right = fold(a), fold(b)
    if not left or not right:
        return 0.0
    return SequenceMatcher(None, left, right).ratio()


def _skeleton(text: str) -> str:
    return text[:1] + "".join(ch for ch in text[1:] if ch not in "aeiou")


def abbreviation_score(short: str, long: str) -> float:
    """How plausibly ``short`` abbreviates ``long``: ``Tel``/``Telefon``, ``Str``/``Strasse``.

    A prefix of at least three letters scores by how much of the long name it covers (at least
    0.7); letters of the short name found in order in the long name's consonant skeleton
    (``Tlfn``) score 0.6.
    """
    s, lng = fold(short), fold(long)
    if len(s) < 3 or len(s) >= len(lng):
        return 0.0
    if lng.startswith(s):
        return 0.7 + 0.3 * len(s) / len(lng)
    skeleton = iter(_skeleton(lng))
    if s[0] == lng[0] and all(ch in skeleton for ch in s):
        return 0.6
    return 0.0


def containment_score(a: str, b: str) -> float:
    """One folded name inside the other (``Straße`` in ``Straße_Anschrift``): 0.75..0.95."""
    left, right = fold(a), fold(b)
    short, long = sorted((left, right), key=len)
    if len(short) < 3 or short == long or short not in long:
        return 0.0
    return 0.75 + 0.2 * len(short) / len(long)


def string_similarity(a: str, b: str) -> float:
    """The best of trigram, edit, abbreviation and containment similarity (0..1)."""
    if fold(a) == fold(b):
        return 1.0
    return max(
        trigram_similarity(a, b),
        edit_similarity(a, b),
        abbreviation_score(a, b),
        abbreviation_score(b, a),
        containment_score(a, b),
    )


@lru_cache(maxsize=4096)
def concepts(name: str) -> dict[str, float]:
    """The concepts a name has, each with a strength (0..1).

    The whole folded name being a term scores 1.0; a token being a term 0.9; a term of four or
    more letters inside the name (a German compound) 0.6 to 0.85 by how much of the name it
    covers.
    """
    whole = fold(name)
    words = set(tokens(name))
    found: dict[str, float] = {}
    for concept in CONCEPTS:
        best = 0.0
        for term in concept.terms:
            if term == whole:
                best = 1.0
                break
            if term in words:
                best = max(best, 0.9)
            elif len(term) >= 4 and term in whole:
                best = max(best, 0.6 + 0.25 * len(term) / len(whole))
        if best:
            found[concept.name] = best
    return found


def concept_semantic(concept: str) -> str:
    """What the values of a concept look like (``phone``, ``email``, …)."""
    return next((c.semantic for c in CONCEPTS if c.name == concept), "text")


def concept_similarity(a: str, b: str) -> tuple[float, str | None]:
    """The strongest concept two names share, and its strength (the weaker of the two sides)."""
    left, right = concepts(a), concepts(b)
    best, shared = 0.0, None
    for name in left.keys() & right.keys():
        strength = min(left[name], right[name])
        if strength > best:
            best, shared = strength, name
    return best, shared


def name_similarity(a: str, b: str) -> tuple[float, str]:
    """How alike two names are (0..1) and why, in a few words for a rationale."""
    text = string_similarity(a, b)
    meaning, shared = concept_similarity(a, b)
    if shared is not None and meaning >= text:
        return meaning, f"both mean '{shared}'"
    if text >= 1.0:
        return text, "same name"
    return text, f"names alike ({text:.2f})"


def slug(label: str, *, limit: int = 36) -> str:
    """A Dataverse-safe lower-case name part for a label: ``Wartungsvertrag bis`` →
    ``wartungsvertragbis``; never empty."""
    text = fold(label)[:limit]
    return text if text and not text[0].isdigit() else f"f{text}"[:limit] or "field"
