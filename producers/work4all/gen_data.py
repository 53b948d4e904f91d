"""German names, places and identifiers for the synthetic Mandant (all invented, no real data)."""

from __future__ import annotations

from random import Random

FIRST_NAMES_MALE = (
    "Andreas", "Bernd", "Christian", "Daniel", "Dieter", "Florian", "Frank", "Günter", "Hans",
    "Jörg", "Jürgen", "Klaus", "Lukas", "Markus", "Martin", "Matthias", "Michael", "Peter",
    "Ralf", "Stefan", "Thomas", "Tobias", "Uwe", "Wolfgang", "Sören", "Björn",
)  # fmt: skip
FIRST_NAMES_FEMALE = (
    "Andrea", "Anja", "Birgit", "Claudia", "Doris", "Elke", "Gabriele", "Heike", "Jana",
    "Julia", "Karin", "Katrin", "Laura", "Monika", "Nicole", "Petra", "Sabine", "Sandra",
    "Silke", "Stefanie", "Susanne", "Ursula", "Jutta", "Bärbel", "Maike", "Hannelore",
)  # fmt: skip
SURNAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
    "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze",
    "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs",
    "Peters", "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn", "Vogel", "Friedrich",
    "Günther", "Keller", "Böhm", "Groß", "Schuster", "Öztürk", "Jäger", "Voß", "Lübke",
)  # fmt: skip
UMLAUT_SURNAMES = tuple(name for name in SURNAMES if any(ch in name for ch in "äöüÄÖÜß"))
TRADES = (
    "Haustechnik", "Elektro", "Metallbau", "Fensterbau", "Sanitär", "Holzbau", "Dachdeckerei",
    "Malerbetrieb", "Gebäudereinigung", "Steuerberatung", "Maschinenbau", "Druckerei",
    "Bäckerei", "Autohaus", "Gartenbau", "Kältetechnik", "Schreinerei", "Fliesenleger",
)  # fmt: skip
LEGAL_FORMS = ("GmbH", "GmbH & Co. KG", "KG", "e.K.", "AG", "OHG", "UG (haftungsbeschränkt)")
SUPPLIER_WORDS = (
    "Großhandel", "Baustoffe", "Industriebedarf", "Werkzeuge", "Beschläge", "Glas",
    "Profilsysteme", "Logistik", "Bürobedarf",
)  # fmt: skip
STREETS = (
    "Hauptstraße", "Bahnhofstraße", "Gartenstraße", "Dorfstraße", "Schulstraße",
    "Bergstraße", "Lindenstraße", "Kirchweg", "Am Markt", "Industriestraße", "Mühlenweg",
    "Goethestraße", "Schillerstraße", "Waldstraße", "Ringstraße", "Friedhofstraße",
    "Poststraße", "Rosenweg", "Birkenallee", "Am Sägewerk",
)  # fmt: skip
# (PLZ, Ort, Vorwahl); leading zeros matter
PLACES = (
    ("92224", "Amberg", "09621"), ("01067", "Dresden", "0351"), ("04109", "Leipzig", "0341"),
    ("10115", "Berlin", "030"), ("20095", "Hamburg", "040"), ("28195", "Bremen", "0421"),
    ("30159", "Hannover", "0511"), ("33602", "Bielefeld", "0521"), ("40213", "Düsseldorf", "0211"),
    ("44135", "Dortmund", "0231"), ("50667", "Köln", "0221"), ("53111", "Bonn", "0228"),
    ("60311", "Frankfurt am Main", "069"), ("66111", "Saarbrücken", "0681"),
    ("68159", "Mannheim", "0621"), ("70173", "Stuttgart", "0711"), ("79098", "Freiburg", "0761"),
    ("80331", "München", "089"), ("86150", "Augsburg", "0821"), ("90402", "Nürnberg", "0911"),
    ("93047", "Regensburg", "0941"), ("97070", "Würzburg", "0931"), ("99084", "Erfurt", "0361"),
    ("24103", "Kiel", "0431"), ("18055", "Rostock", "0381"), ("39104", "Magdeburg", "0391"),
    ("06108", "Halle (Saale)", "0345"), ("07743", "Jena", "03641"), ("34117", "Kassel", "0561"),
    ("49074", "Osnabrück", "0541"), ("88212", "Ravensburg", "0751"), ("94032", "Passau", "0851"),
)  # fmt: skip
BANKS = (
    ("37040044", "COBADEFFXXX"), ("50070010", "DEUTDEFFXXX"), ("76050101", "SSKNDE77XXX"),
    ("70020270", "HYVEDEMMXXX"), ("10010010", "PBNKDEFFXXX"), ("75250000", "BYLADEM1ABG"),
    ("43060967", "GENODEM1GLS"), ("12030000", "BYLADEM1001"),
)  # fmt: skip
FUNCTIONS = (
    "Geschäftsführung", "Einkauf", "Buchhaltung", "Vertrieb", "Technik", "Bauleitung",
    "Sekretariat", "Inhaber", "Projektleitung", "Objektverwaltung",
)  # fmt: skip
ITEM_WORDS = (
    ("Senkrechtmarkise", "St."), ("Kunststofffenster 2-flg.", "St."), ("Haustür Aluminium", "St."),
    ("Rollladenpanzer", "m²"), ("Insektenschutzgitter", "St."), ("Fensterbank außen", "m"),
    ("Dichtband", "m"), ("Montageschaum", "Dose"), ("Beschlag Dreh-Kipp", "St."),
    ("Glasleiste", "m"), ("Raffstore", "St."), ("Wintergartenbeschattung", "St."),
    ("Terrassendach", "St."), ("Plissee", "St."), ("Vordach Edelstahl", "St."),
)  # fmt: skip
SERVICES = (
    ("Montage (Stunde)", "h"), ("Reparatur (Stunde)", "h"), ("Anfahrt", "pausch."),
    ("Aufmaß vor Ort", "pausch."), ("Entsorgung Altfenster", "St."),
)  # fmt: skip
PHONE_TOPICS = (
    "Rückruf wegen Angebot", "Terminabsprache Montage", "Reklamation Dichtung",
    "Nachfrage Liefertermin", "Zahlungserinnerung besprochen", "Aufmaßtermin vereinbart",
    "Preisanfrage", "Rückfrage zur Rechnung",
)  # fmt: skip
APPOINTMENT_TOPICS = (
    "Aufmaß", "Montage", "Beratungsgespräch", "Kundendienst", "Abnahme", "Wartung",
    "Besprechung Angebot",
)  # fmt: skip
LETTER_TOPICS = (
    "Ihr Angebot", "Auftragsbestätigung", "Rechnung", "Zahlungserinnerung", "Terminbestätigung",
    "Wartungsvertrag", "Unterlagen", "Rückfrage",
)  # fmt: skip
NOTE_SNIPPETS = (
    "Kunde wünscht Rückruf am Vormittag.",
    'Hat nach "Sonderkonditionen" gefragt; bitte prüfen.',
    "Zahlt immer verspätet.",
    "Zufahrt über den Hof, Tor 2.",
    "Preise inkl. Montage, Lieferung frei Baustelle.",
    "Bitte Ansprechpartner im Einkauf beachten.",
    "Rabatt 5 % auf Folgeaufträge zugesagt.",
    "Betrag 1.250,00 € per Überweisung angekündigt.",
)  # fmt: skip


def person(rng: Random) -> tuple[bool, str, str]:
    """A random (is_female, first name, surname)."""
    female = rng.random() < 0.45
    first = rng.choice(FIRST_NAMES_FEMALE if female else FIRST_NAMES_MALE)
    return female, first, rng.choice(SURNAMES)


def slug(text: str) -> str:
    """An e-mail/domain-safe ASCII form of a German name (ä → ae, ß → ss)."""
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
    out = text.translate(table).replace("ß", "ss").lower()
    return "".join(ch if ch.isalnum() else "-" for ch in out).strip("-").replace("--", "-")


def iban(rng: Random) -> tuple[str, str]:
    """A German IBAN with valid ISO 7064 MOD 97-10 check digits, and its bank's BIC."""
    blz, bic = rng.choice(BANKS)
    account = f"{rng.randrange(10**9, 10**10):010d}"
    bban = blz + account
    # "DE" = 13 14, followed by the placeholder check digits 00
    check = 98 - int(bban + "131400") % 97
    return f"DE{check:02d}{bban}", bic


def iban_is_valid(value: str) -> bool:
    """True if ``value`` (no spaces) passes the IBAN MOD 97 check."""
    rearranged = value[4:] + value[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def vat_id(rng: Random) -> str:
    """A German USt-IdNr: DE and nine digits."""
    return f"DE{rng.randrange(100_000_000, 1_000_000_000)}"


def phone(rng: Random, area: str) -> str:
    """A German phone number in one of the formats seen in real data."""
    number = rng.randrange(20_000, 9_999_999)
    style = rng.random()
    if style < 0.5:
        return f"{area} {number}"
    if style < 0.8:
        return f"+49 {area[1:]} {number}"
    return f"+49-{area[1:]}-{number}"


def mojibake(text: str) -> str:
    """``text`` as it reads after its UTF-8 bytes were decoded as Windows-1252 (Ã¼ for ü)."""
    return text.encode("utf-8").decode("cp1252")
