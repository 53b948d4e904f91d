"""What the transform stage knows about Dataverse and work4all beyond the map.

- Target metadata (reference ``dataverse-web-api.md`` sections 4 and 10): entity-set names,
  column types, maximum lengths and option-set values of the standard Sales columns a map may
  name. A map's own ``type``/``max_length``/``options`` win over these.
- Validation of one column value against that metadata.
- Reason codes: every note and rejection reason starts with one (see
  :func:`producers.mapping.transforms.note`).
- Domain rules that need more than one record: the duplicate fingerprint of a company, the open
  amount of an ``RA`` row, float artefacts and text dates seen in the raw export values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

from producers.mapping.model import ColumnMap

# --- reason codes ------------------------------------------------------------------------------

REQUIRED_MISSING = "required_missing"
TOO_LONG = "too_long"
INVALID_OPTION = "invalid_option"
INVALID_TYPE = "invalid_type"
INVALID_EMAIL = "invalid_email"
LOOKUP_UNRESOLVED = "lookup_unresolved"
FORWARD_LOOKUP = "forward_lookup"
DUPLICATE_OF = "duplicate_of"
DUPLICATE_MERGED = "duplicate_merged"
MERGED_INTO = "merged_into"
SUPPLIER_MERGED = "supplier_merged"
FILTERED_OUT = "filtered_out"
TRANSFORM_ERROR = "transform_error"
VALUE_DROPPED = "value_dropped"
PAYMENT_MISMATCH = "payment_mismatch"
FLOAT_NOISE = "float_noise"
TEXT_DATE = "text_date"
OWNER_MISSING = "owner_missing"
OWNER_DEPARTED = "owner_departed"
OWNER_UNMATCHED = "owner_unmatched"
OWNER_NO_EMAIL = "owner_no_email"
OWNER_FREE_TEXT = "owner_free_text"
OWNER_NO_FALLBACK = "owner_no_fallback"
ATTACHMENT_MISSING = "attachment_missing"
ATTACHMENT_TOO_LARGE = "attachment_too_large"

MAX_UPLOAD_BYTES = 5_242_880
"""Dataverse's default ``MaxUploadFileSize``; it applies to the Base64 text (reference 9.6)."""

WARNINGS_KEY = "_warnings"
"""Key in ``RecordRejected.reasons`` holding what would have been notes on a decision."""

# --- target metadata ---------------------------------------------------------------------------

TargetType = Literal[
    "string", "memo", "integer", "decimal", "money", "boolean", "datetime", "dateonly", "picklist"
]


@dataclass(frozen=True, slots=True)
class TargetColumn:
    """What Dataverse accepts in one column."""

    type: TargetType
    max_length: int | None = None
    options: frozenset[int] | None = None


def _s(length: int) -> TargetColumn:
    return TargetColumn("string", length)


def _pick(*values: int) -> TargetColumn:
    return TargetColumn("picklist", options=frozenset(values))


_MONEY = TargetColumn("money")
_DATETIME = TargetColumn("datetime")
_DATEONLY = TargetColumn("dateonly")
_MEMO = TargetColumn("memo", 1_048_576)
_INT = TargetColumn("integer")
_BOOL = TargetColumn("boolean")
_DECIMAL = TargetColumn("decimal")

_ADDRESS: dict[str, TargetColumn] = {
    "address1_line1": _s(250), "address1_line2": _s(250), "address1_line3": _s(250),
    "address1_city": _s(80), "address1_stateorprovince": _s(50), "address1_postalcode": _s(20),
    "address1_country": _s(80), "address1_county": _s(50), "address1_fax": _s(50),
    "address1_telephone1": _s(50), "address1_addresstypecode": _pick(1, 2, 3, 4),
}  # fmt: skip
_ACTIVITY: dict[str, TargetColumn] = {
    "subject": _s(200), "description": _MEMO, "scheduledstart": _DATETIME,
    "scheduledend": _DATETIME, "actualstart": _DATETIME, "actualend": _DATETIME,
    "actualdurationminutes": _INT, "scheduleddurationminutes": _INT,
    "prioritycode": _pick(0, 1, 2), "overriddencreatedon": _DATETIME,
}  # fmt: skip

TARGET_COLUMNS: Mapping[str, Mapping[str, TargetColumn]] = {
    "account": {
        "name": _s(160), "accountnumber": _s(20), "telephone1": _s(50), "telephone2": _s(50),
        "fax": _s(50), "emailaddress1": _s(100), "emailaddress2": _s(100),
        "websiteurl": _s(200), "revenue": _MONEY, "creditlimit": _MONEY,
        "customertypecode": _pick(*range(1, 14)), "statecode": _pick(0, 1),
        "statuscode": _pick(1, 2), "description": _MEMO, "overriddencreatedon": _DATETIME,
        **_ADDRESS,
    },
    "contact": {
        "lastname": _s(50), "firstname": _s(50), "middlename": _s(50), "jobtitle": _s(100),
        "salutation": _s(100), "suffix": _s(10), "emailaddress1": _s(100),
        "emailaddress2": _s(100), "telephone1": _s(50), "telephone2": _s(50),
        "mobilephone": _s(50), "fax": _s(50), "gendercode": _pick(1, 2),
        "birthdate": _DATEONLY, "description": _MEMO, "statecode": _pick(0, 1),
        "overriddencreatedon": _DATETIME, **_ADDRESS,
    },
    "opportunity": {
        "name": _s(300), "estimatedvalue": _MONEY, "actualvalue": _MONEY,
        "estimatedclosedate": _DATEONLY, "actualclosedate": _DATEONLY,
        "closeprobability": _INT, "salesstage": _pick(0, 1, 2, 3), "stepname": _s(200),
        "statecode": _pick(0, 1, 2), "statuscode": _pick(1, 2, 3, 4, 5),
        "purchasetimeframe": _pick(0, 1, 2, 3, 4), "description": _MEMO,
        "overriddencreatedon": _DATETIME,
    },
    "quote": {
        "name": _s(300), "quotenumber": _s(100), "description": _MEMO,
        "effectivefrom": _DATEONLY, "effectiveto": _DATEONLY, "expireson": _DATEONLY,
        "statecode": _pick(0, 1, 2, 3), "statuscode": _pick(1, 2, 3, 4, 5, 6, 7),
        "overriddencreatedon": _DATETIME,
    },
    "quotedetail": {
        "quantity": _DECIMAL, "productdescription": _s(500), "priceperunit": _MONEY,
        "manualdiscountamount": _MONEY, "tax": _MONEY, "lineitemnumber": _INT,
        "sequencenumber": _INT, "isproductoverridden": _BOOL, "ispriceoverridden": _BOOL,
        "description": _MEMO, "overriddencreatedon": _DATETIME,
    },
    "opportunityproduct": {
        "quantity": _DECIMAL, "productdescription": _s(500), "priceperunit": _MONEY,
        "manualdiscountamount": _MONEY, "tax": _MONEY, "lineitemnumber": _INT,
        "sequencenumber": _INT, "isproductoverridden": _BOOL, "ispriceoverridden": _BOOL,
        "description": _MEMO,
    },
    "product": {
        "name": _s(100), "productnumber": _s(100), "quantitydecimal": _INT,
        "productstructure": _pick(1, 2, 3), "producttypecode": _pick(1, 2, 3, 4),
        "price": _MONEY, "standardcost": _MONEY, "currentcost": _MONEY, "description": _MEMO,
    },
    "pricelevel": {"name": _s(100), "begindate": _DATEONLY, "enddate": _DATEONLY},
    "productpricelevel": {"amount": _MONEY, "pricingmethodcode": _pick(1, 2, 3, 4, 5, 6)},
    "uom": {"name": _s(100), "quantity": _DECIMAL},
    "uomschedule": {"name": _s(200), "baseuomname": _s(100)},
    "phonecall": {
        **_ACTIVITY, "phonenumber": _s(200), "directioncode": _BOOL,
        "statecode": _pick(0, 1, 2), "statuscode": _pick(1, 2, 3, 4),
    },
    "task": {
        **_ACTIVITY, "percentcomplete": _INT, "statecode": _pick(0, 1, 2),
        "statuscode": _pick(2, 3, 4, 5, 6, 7),
    },
    "appointment": {
        **_ACTIVITY, "location": _s(200), "isalldayevent": _BOOL,
        "statecode": _pick(0, 1, 2, 3), "statuscode": _pick(1, 2, 3, 4, 5, 6),
    },
    "email": {
        **_ACTIVITY, "sender": _s(250), "torecipients": _s(500), "directioncode": _BOOL,
        "statecode": _pick(0, 1, 2), "statuscode": _pick(1, 2, 3, 4, 5, 6, 7, 8),
    },
    "annotation": {
        "subject": _s(500), "notetext": TargetColumn("memo", 100_000), "filename": _s(255),
        "mimetype": _s(256), "documentbody": TargetColumn("memo"),
    },
}  # fmt: skip
"""Standard Sales columns with their type, length and option values (reference section 10)."""

_ENTITY_SETS = {
    "opportunity": "opportunities",
    "systemuser": "systemusers",
}

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_LOCAL = ZoneInfo("Europe/Berlin")


def entity_set(table: str) -> str:
    """The Web API entity-set name of a Dataverse table (``account`` → ``accounts``)."""
    if table in _ENTITY_SETS:
        return _ENTITY_SETS[table]
    if table.endswith("y") and not table.endswith(("ay", "ey", "oy", "uy")):
        return table[:-1] + "ies"
    if table.endswith(("s", "x", "ch", "sh")):
        return table + "es"
    return table + "s"


def target_column(table: str, column: ColumnMap) -> TargetColumn | None:
    """What ``column`` of ``table`` accepts: the map's own declaration, else the known metadata."""
    known = TARGET_COLUMNS.get(table, {}).get(column.target)
    declared_type = column.type or (known.type if known else None)
    if declared_type is None:
        return None
    options: frozenset[int] | None = (
        frozenset(column.options.values()) if column.options else known.options if known else None
    )
    length = column.max_length or (known.max_length if known else None)
    return TargetColumn(declared_type, length, options)


def is_email_column(name: str) -> bool:
    """Whether a Dataverse column holds an e-mail address."""
    return name.startswith(("emailaddress", "internalemailaddress"))


def validate(name: str, value: Any, spec: TargetColumn | None) -> tuple[Any, str | None]:
    """``value`` coerced to what the column takes (JSON), or an error starting with a code."""
    if spec is None:
        return _json_value(value), None
    kind = spec.type
    if kind in ("string", "memo"):
        if not isinstance(value, str):
            if isinstance(value, bool | dict | list):
                return None, f"{INVALID_TYPE}: {name} expects text, got {value!r}"
            value = str(value)
        if is_email_column(name) and not _EMAIL.fullmatch(value):
            return None, f"{INVALID_EMAIL}: {name} {value!r} is not a valid e-mail address"
        if spec.max_length is not None and len(value) > spec.max_length:
            return None, (
                f"{TOO_LONG}: {name} has {len(value)} characters, Dataverse allows"
                f" {spec.max_length}"
            )
        return value, None
    if kind == "boolean":
        if isinstance(value, bool):
            return value, None
        return None, f"{INVALID_TYPE}: {name} expects true/false, got {value!r}"
    if kind in ("integer", "picklist"):
        number = _number(value)
        if number is None or number != number.to_integral_value():
            return None, f"{INVALID_TYPE}: {name} expects a whole number, got {value!r}"
        whole = int(number)
        if kind == "picklist" and spec.options is not None and whole not in spec.options:
            allowed = ", ".join(str(option) for option in sorted(spec.options))
            return None, f"{INVALID_OPTION}: {name} {whole} is not one of {allowed}"
        return whole, None
    if kind in ("decimal", "money"):
        number = _number(value)
        if number is None:
            return None, f"{INVALID_TYPE}: {name} expects a number, got {value!r}"
        return float(number), None
    if kind == "datetime":
        moment = _moment(value)
        if moment is None:
            return None, f"{INVALID_TYPE}: {name} expects a date and time, got {value!r}"
        return utc_text(moment), None
    moment = _moment(value)
    if moment is None:
        return None, f"{INVALID_TYPE}: {name} expects a date, got {value!r}"
    return moment.date().isoformat(), None


def utc_text(moment: datetime) -> str:
    """A work4all timestamp (naive, German local time) as the UTC text Dataverse expects."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=_LOCAL)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    return None


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- same company ------------------------------------------------------------------------------

_LEGAL_FORMS = re.compile(
    r"\b(gmbh|mbh|co|kg|ag|ohg|ug|gbr|ek|e\s?k|kgaa|se|ltd|inc|haftungsbeschrankt|"
    r"haftungsbeschraenkt)\b"
)
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def fold(text: Any) -> str:
    """Text compared case-, accent-, umlaut- and punctuation-insensitively."""
    if not isinstance(text, str):
        return ""
    folded = text.casefold().translate(_FOLD)
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", folded).strip()


def company_name(text: Any) -> str:
    """A company name without legal form or punctuation: ``MÜLLER GmbH & Co. KG`` → ``mueller``."""
    return re.sub(r"\s+", " ", _LEGAL_FORMS.sub(" ", fold(text))).strip()


def street(text: Any) -> str:
    """A street with ``Str.`` spelled out, folded: ``Bahnhofstr. 12a`` → ``bahnhofstrasse12a``."""
    folded = fold(text).replace(" ", "")
    return re.sub(r"str(?=\d|$)", "strasse", folded)


def fingerprint(
    values: Mapping[str, Any], rule: Literal["none", "name_and_postcode", "name"]
) -> tuple[str, ...] | None:
    """What makes two partner rows the same company under ``rule``, or None (never a match).

    ``name_and_postcode``: the company name without legal form (``Firma1``, else ``Name``), the
    postcode and, so that two private customers of the same name in one town stay apart, the
    street as spelled out. ``name``: the company name alone.
    """
    if rule == "none":
        return None
    name = company_name(values.get("Firma1") or values.get("Name"))
    if not name:
        return None
    if rule == "name":
        return (name,)
    return (name, fold(values.get("Plz")), street(values.get("Straße")))


# --- money and dates seen in raw values --------------------------------------------------------


def float_noise(raw: Any) -> bool:
    """Whether a raw money value carries binary float artefacts (more than two decimals)."""
    if isinstance(raw, float):
        text = repr(raw)
        if "e" in text or "E" in text:
            return float_noise(Decimal(text))
        return len(text) - text.find(".") - 1 > 2 if "." in text else False
    if isinstance(raw, str):
        text = raw.strip()
        separator = max(text.rfind(","), text.rfind(".")) if "," in text else text.rfind(".")
        if separator < 0:
            return False
        decimals = text[separator + 1 :].rstrip("0")
        return len(decimals) > 2 and decimals.isdigit()
    number = _number(raw)
    if number is None:
        return False
    exponent = number.normalize().as_tuple().exponent
    return isinstance(exponent, int) and exponent < -2


_GERMAN_DATE = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:[ ,]+\d{1,2}:\d{2}(?::\d{2})?)?")
_ISO_SPACE = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_ISO_T = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?")
DateShape = Literal["german", "iso_space", "iso_t", "other"]


def date_shape(raw: Any) -> DateShape | None:
    """How a raw date value is written; None for an empty value or a native (non-text) one."""
    if not isinstance(raw, str) or len(raw) < 8:
        return None
    if raw[1] == "." or raw[2] == ".":
        return "german" if _GERMAN_DATE.fullmatch(raw.strip()) else "other"
    if raw[4] == "-":
        if len(raw) > 10 and raw[10] == "T":
            return "iso_t" if _ISO_T.fullmatch(raw.strip()) else "other"
        return "iso_space" if _ISO_SPACE.fullmatch(raw.strip()) else "other"
    return "other"


def cents(value: Any) -> int:
    """An amount (number or numeric text) in whole cents; 0 when empty or unreadable."""
    number = _number(value)
    if number is None:
        return 0
    return int((number * 100).to_integral_value())


def euros(amount_cents: int) -> str:
    """Cents as a euro amount for notes: ``1234.50``."""
    sign = "-" if amount_cents < 0 else ""
    whole, rest = divmod(abs(amount_cents), 100)
    return f"{sign}{whole}.{rest:02d}"
