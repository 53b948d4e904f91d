"""Named transforms: how one Dataverse column's value is made from work4all source values.

Every transform has the same signature::

    def transform(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome

``values`` are the *normalised* source values (``SourceRecordExtracted.normalised``) of the
column map's ``sources``, in order. ``params`` are the column map's parameters. ``context`` gives
what a transform cannot know alone (other migrated records, owners, settings).

An :class:`Outcome` carries the value (``None`` leaves the column out of the payload), notes for
lossy or defaulted values, and an ``error`` when the value is invalid: the transform stage turns
errors of required columns into a rejection and errors of optional columns into a dropped value
plus a note. Notes and errors start with a reason code (``truncated``, ``owner_fallback``, …) so
reports and tests can count them: see :func:`note`.

A lookup's value is a :class:`Bind`; the stage writes it as ``<target>@odata.bind``.

Conventions of the built-in transforms (the transform stage relies on them):

- **One column, one value.** Every transform makes the value of exactly one target column; none
  returns a dict of several columns. A transform that knows several columns at once
  (``salutation``, ``opportunity_stage``) takes ``params.part`` naming the one to make, and the
  map names it once per target column.
- **Value types.** ``str``, ``int``, ``bool``, :class:`~decimal.Decimal` (money, decimals),
  :class:`Bind` (lookups, owner) or :class:`FileRef` (an attachment file the stage reads from the
  export's file store and writes Base64 into ``documentbody``). Dates are ISO strings already:
  ``datetime`` gives UTC (``2024-04-30T07:01:35Z``), ``dateonly`` a day (``2024-04-30``).
- **First set value.** Single-value transforms take the first source value that is set (not
  ``None``, not blank), so ``sources: [InsertTime, Erstkontakt]`` means "InsertTime, else
  Erstkontakt". ``None`` out means "leave the column out"; whether that rejects the record
  (``required``) is the stage's decision.
- **Reasons.** Every code a built-in transform writes is in :data:`REASONS`, and so are the
  codes the context and the stage write (``owner_departed``, ``attachment_too_large``, …).
- **Bad parameters** are a map error, not a data error: the transform returns the error
  ``invalid_params`` naming the parameter, for every record, so a review catches it at once.
- **statecode/statuscode** in a map are the state a record must end in. Dataverse does not take
  ``statecode`` on create (reference 9.5, 10.3): the writer creates the record open and then sets
  the state (``PATCH`` for activities, accounts, products; ``WinOpportunity``/``LoseOpportunity``
  for opportunities).
"""

from __future__ import annotations

import html
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from producers.work4all.normalise import (
    BadValueError,
    PlaceholderDateError,
    parse_bool,
    parse_country,
    parse_datetime,
    parse_decimal,
    parse_int,
)


@dataclass(frozen=True, slots=True)
class Bind:
    """A reference to another Dataverse row: ``/accounts(<id>)``."""

    entity_set: str
    target_id: str

    def __str__(self) -> str:
        return f"/{self.entity_set}({self.target_id})"


@dataclass(frozen=True, slots=True)
class FileRef:
    """An attachment file in the export's file store (``CRMAttachements/M001/<name>``).

    The stage reads the file and writes its bytes Base64 into ``documentbody``; a file that is
    missing or too large for the organisation's upload limit is the stage's error
    (``attachment_missing``, ``attachment_too_large``).
    """

    path: str
    size: int | None = None
    """the size work4all recorded, in bytes, if any."""


@dataclass(slots=True)
class Outcome:
    """What a transform made of its source values."""

    value: Any = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def note(code: str, message: str) -> str:
    """A note or error text: ``"<code>: <message>"``; the code is a short snake_case reason."""
    return f"{code}: {message}"


def reason_code(text: str) -> str:
    """The reason code of a note or error made by :func:`note`."""
    return text.split(":", 1)[0]


class Context(Protocol):
    """What the transform stage tells a transform about the rest of the migration."""

    def resolve(self, object_name: str, source_key: Any) -> Bind | None:
        """The Dataverse row that the record ``source_key`` of map object ``object_name`` becomes,
        or ``None`` when that record is not migrated (missing, rejected)."""
        ...

    def owner(self, user_code: Any) -> tuple[Bind | None, list[str]]:
        """The ``systemuser`` for a work4all ``Mitarbeiter`` code, with notes (departed, no
        e-mail match, fallback owner used); ``None`` when there is neither a match nor a
        fallback owner."""
        ...

    def setting(self, name: str) -> Any:
        """A map-wide setting (:class:`producers.mapping.model.MapSettings`)."""
        ...


Transform = Callable[[Sequence[Any], Mapping[str, Any], Context], Outcome]

TRANSFORMS: dict[str, Transform] = {}
"""Every transform by name; a map may name only these."""


def transform(name: str) -> Callable[[Transform], Transform]:
    """Register a transform under ``name``."""

    def register(function: Transform) -> Transform:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        TRANSFORMS[name] = function
        return function

    return register


@transform("copy")
def copy(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The first source value unchanged."""
    return Outcome(values[0] if values else None)


@transform("constant")
def constant(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """``params['value']`` whatever the source holds."""
    return Outcome(params.get("value"))


REASONS: dict[str, str] = {
    # made by the built-in transforms
    "invalid_params": "the map gives a transform a missing or unusable parameter",
    "too_long": "text is longer than the target column allows",
    "truncated": "text was cut to the target column's length",
    "defaulted": "an empty source value was replaced by the map's default",
    "invalid_number": "not a number, or not a whole number where one is needed",
    "out_of_range": "a number or date outside what the target column takes",
    "rounded": "a number was rounded to the target's decimal places",
    "invalid_date": "not a date",
    "placeholder_date": "a sentinel date (0001-01-01, 30.12.1899, …) that means no date",
    "unknown_country": "a country no ISO 3166 code is known for; left empty",
    "unknown_salutation": "an Anrede code the map does not know; gender and salutation left empty",
    "unknown_option": "a source value the option mapping does not know",
    "option_defaulted": "a source value the option mapping does not know; the default was used",
    "invalid_boolean": "not a yes/no value",
    "invalid_email": "not a syntactically valid e-mail address",
    "multiple_values": "the field held several values; the first valid one was kept",
    "invalid_phone": "not a telephone number",
    "invalid_url": "not a web address",
    "url_scheme_added": "a web address without scheme was given http://",
    "lookup_unresolved": "the referenced record is not migrated (missing or rejected)",
    "lookup_type_unknown": "a polymorphic link whose type the map does not know",
    "owner_unresolved": "no systemuser for the work4all user and no fallback owner",
    "missing_key": "the record has no source key",
    "invalid_discount": "the line total is higher than quantity x unit price",
    "invalid_duration": "the end lies before the start",
    # made by Context.owner (producers.mapping.context)
    "owner_missing": "the record names no owner; the fallback owner was used",
    "owner_unmatched": "the owner code matches no Mitarbeiter; the fallback owner was used",
    "owner_departed": "the owner has left (Ausgeschieden); the fallback owner was used",
    "owner_no_email": "the owner has no e-mail to match a systemuser; the fallback owner was used",
    "owner_free_text": "the owner is only a free-text name; matched by name or the fallback used",
    "owner_no_fallback": "no owner could be matched and the map sets no fallback owner",
    # made by the transform stage (producers.mapping.stage, producers.mapping.rules)
    "required_missing": "a required column has no value",
    "invalid_type": "the value does not fit the Dataverse column's type",
    "invalid_option": "the value is not an option of the Dataverse choice column",
    "value_dropped": "an optional column's invalid value was left out",
    "transform_error": "a transform failed unexpectedly on a value",
    "forward_lookup": "a lookup points at a record decided later; not bound on create",
    "filtered_out": "no object's filter takes the record",
    "duplicate_of": "the record duplicates another one and is not migrated",
    "duplicate_merged": "duplicates of this record were merged into it",
    "merged_into": "the record was merged into another record's row",
    "supplier_merged": "a supplier and a customer that are one company share one account",
    "payment_mismatch": "the cached paid amount differs from the sum of the payments",
    "float_noise": "a money value carried binary float artefacts and was rounded to cents",
    "text_date": "a date was written unlike the rest of its table",
    "attachment_missing": "the attachment file is not in the export's file store",
    "attachment_too_large": "the attachment exceeds the organisation's upload limit",
    "knock_on": "a delta run decided the record anew: the records around it changed",
}
"""Every reason code, with what it means; notes and errors start with one of these."""

_BERLIN = "Europe/Berlin"
_DATAVERSE_MIN_YEAR = 1753
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?[\d\s()./-]+")
_HORIZONTAL_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_DEFAULT_ANREDE = {"1": "Herr", "2": "Frau", "3": "Firma", "4": "Familie"}
_MALE = frozenset({"herr", "herrn", "hr", "hr.", "mr", "mr."})
_FEMALE = frozenset({"frau", "fr", "fr.", "mrs", "mrs.", "ms", "ms."})
_NO_PERSON = frozenset({"-ohne-", "ohne", "firma"})
_STATUS_OPEN, _STATUS_WON, _STATUS_LOST = 0, 1, 2
_SALES_STAGES = (
    (75, 3, "4-Close"),
    (50, 2, "3-Propose"),
    (25, 1, "2-Develop"),
    (0, 0, "1-Qualify"),
)
"""(lowest probability in %, salesstage, stepname) for open opportunities, highest first."""
_STAGE_PARTS = ("salesstage", "stepname", "closeprobability", "statecode", "statuscode")


def _fail(code: str, message: str) -> Outcome:
    return Outcome(error=note(code, message))


def _bad_params(message: str) -> Outcome:
    return _fail("invalid_params", message)


def _is_set(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _first(values: Sequence[Any]) -> Any:
    """The first value that is set (not None, not blank), else None."""
    return next((value for value in values if _is_set(value)), None)


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bool):
        return "ja" if value else "nein"
    return str(value)


def _clean(text: str, multiline: bool) -> str:
    """Trim and collapse whitespace; ``multiline`` keeps line breaks and one blank line."""
    if not multiline:
        return " ".join(text.split())
    lines = (_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.replace("\r\n", "\n")
             .replace("\r", "\n").split("\n"))  # fmt: skip
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _positive_int(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _fit(text: str | None, params: Mapping[str, Any], *, truncate: bool | None = None) -> Outcome:
    """Apply ``default``, ``max_length`` and ``truncate`` to cleaned text."""
    if not text:
        default = params.get("default")
        if default is None:
            return Outcome(None)
        return Outcome(str(default), [note("defaulted", f"empty; the default {default!r} used")])
    if "max_length" in params and _positive_int(params, "max_length") is None:
        return _bad_params("max_length must be a positive whole number")
    limit = _positive_int(params, "max_length")
    if limit is None or len(text) <= limit:
        return Outcome(text)
    cut = bool(params.get("truncate", False)) if truncate is None else truncate
    if not cut:
        return _fail("too_long", f"{len(text)} characters, the column takes {limit}")
    return Outcome(
        text[:limit].rstrip(), [note("truncated", f"{len(text)} characters cut to {limit}")]
    )


@transform("text")
def text(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The first set value as text, trimmed, whitespace collapsed.

    ``multiline`` keeps line breaks; ``max_length`` makes longer text an error ``too_long``
    unless ``truncate`` is true; ``default`` fills an empty value (note ``defaulted``).
    """
    value = _first(values)
    cleaned = None if value is None else _clean(_as_text(value), bool(params.get("multiline")))
    return _fit(cleaned, params)


@transform("truncate")
def truncate(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """Like ``text``, but text longer than ``max_length`` (required) is cut, note ``truncated``."""
    if _positive_int(params, "max_length") is None:
        return _bad_params("truncate needs max_length, a positive whole number")
    value = _first(values)
    cleaned = None if value is None else _clean(_as_text(value), bool(params.get("multiline")))
    return _fit(cleaned, params, truncate=True)


@transform("concat")
def concat(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The set values as text joined by ``separator`` (default one space), empties skipped.

    Takes ``multiline``, ``max_length``, ``truncate`` and ``default`` as ``text`` does.
    """
    separator = params.get("separator", " ")
    if not isinstance(separator, str):
        return _bad_params("separator must be text")
    multiline = bool(params.get("multiline"))
    parts = [_clean(_as_text(value), multiline) for value in values if _is_set(value)]
    return _fit(separator.join(part for part in parts if part) or None, params)


@transform("template")
def template(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """``params.template`` filled with the source values (``"Angebot {0}"``); None if all empty.

    Takes ``max_length``, ``truncate`` and ``default`` as ``text`` does.
    """
    pattern = params.get("template")
    if not isinstance(pattern, str):
        return _bad_params("template needs the text 'template'")
    if not any(_is_set(value) for value in values):
        return _fit(None, params)
    texts = [_clean(_as_text(value), False) if _is_set(value) else "" for value in values]
    try:
        filled = pattern.format(*texts)
    except (IndexError, KeyError, ValueError) as error:
        return _bad_params(f"template {pattern!r} does not fit the sources: {error}")
    return _fit(" ".join(filled.split()), params)


def _number(value: Any) -> Decimal | None:
    """A source value as Decimal; German text accepted; BadValueError if not a number."""
    if isinstance(value, bool):
        raise BadValueError(f"not a number: {value!r}")
    number = parse_decimal(value)
    if number is not None and not number.is_finite():
        raise BadValueError(f"not a number: {value!r}")
    return number


def _bounded(number: Decimal, params: Mapping[str, Any]) -> Outcome | None:
    """An ``out_of_range`` error when ``number`` lies outside ``params.min``/``params.max``."""
    low, high = params.get("min"), params.get("max")
    if low is not None and number < Decimal(str(low)):
        return _fail("out_of_range", f"{number} is below the minimum {low}")
    if high is not None and number > Decimal(str(high)):
        return _fail("out_of_range", f"{number} is above the maximum {high}")
    return None


def _decimal(values: Sequence[Any], params: Mapping[str, Any], places: int | None) -> Outcome:
    value = _first(values)
    try:
        number = _number(value)
    except BadValueError:
        return _fail("invalid_number", f"{value!r} is not a number")
    if number is None:
        return Outcome(None)
    notes: list[str] = []
    if places is not None:
        rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) + 0
        if rounded != number:
            notes.append(note("rounded", f"{number} rounded to {rounded}"))
        number = rounded
    problem = _bounded(number, params)
    return problem or Outcome(number, notes)


@transform("decimal")
def decimal_number(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The first set value as Decimal (numbers or German text ``1.234,56``).

    ``places`` rounds half-up (note ``rounded`` when digits go); ``min``/``max`` bound it.
    """
    places = params.get("places")
    if places is not None and (not isinstance(places, int) or places < 0):
        return _bad_params("places must be a whole number ≥ 0")
    return _decimal(values, params, places)


@transform("money")
def money(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """An amount as Decimal rounded half-up to cents (``places``, default 2), note ``rounded``.

    Float noise such as ``48.7400016784668`` becomes ``48.74``; ``min``/``max`` bound it.
    """
    places = params.get("places", 2)
    if not isinstance(places, int) or places < 0:
        return _bad_params("places must be a whole number ≥ 0")
    return _decimal(values, params, places)


@transform("integer")
def integer(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The first set value as a whole number; ``min``/``max`` bound it (``out_of_range``).

    German text with thousands dots is whole: ``1.234`` is one thousand two hundred thirty-four.
    """
    value = _first(values)
    try:
        number = _number(parse_int(value) if isinstance(value, str) else value)
    except BadValueError:
        return _fail("invalid_number", f"{value!r} is not a number")
    if number is None:
        return Outcome(None)
    if number != number.to_integral_value():
        return _fail("invalid_number", f"{value!r} is not a whole number")
    problem = _bounded(number, params)
    return problem or Outcome(int(number))


@transform("sum")
def total(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The sum of the source values (empty ones count 0) as money; None when all are empty.

    ``signs`` (one ``1`` or ``-1`` per source) subtracts: gross - paid is ``signs: [1, -1]``.
    """
    signs = params.get("signs", [1] * len(values))
    if (
        not isinstance(signs, list)
        or len(signs) != len(values)
        or any(sign not in (1, -1) for sign in signs)
    ):
        return _bad_params("signs must list 1 or -1 for each source")
    if not any(_is_set(value) for value in values):
        return Outcome(None)
    result = Decimal(0)
    for sign, value in zip(signs, values, strict=True):
        try:
            number = _number(value) if _is_set(value) else None
        except BadValueError:
            return _fail("invalid_number", f"{value!r} is not a number")
        result += sign * (number or 0)
    places = params.get("places", 2)
    if not isinstance(places, int) or places < 0:
        return _bad_params("places must be a whole number ≥ 0")
    return Outcome(result.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) + 0)


@transform("discount_amount")
def discount_amount(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """quantity x unit price - line total, in cents: the discount that reproduces the total.

    Sources ``[Anzahl, EinzPreis, GesPreis]``; a total above quantity x price by more than the
    half cent work4all's rounding makes is ``invalid_discount`` (a surcharge Dataverse lines
    cannot hold).
    """
    if len(values) != 3:
        return _bad_params("discount_amount needs three sources: quantity, unit price, total")
    try:
        quantity, price, line_total = (_number(value) for value in values)
    except BadValueError:
        return _fail("invalid_number", f"{list(values)!r} are not all numbers")
    if quantity is None or price is None or line_total is None:
        return Outcome(None)
    raw = quantity * price - line_total
    # work4all rounds each line total to cents (0.5 x 94.11 = 47.06): half a cent is no surcharge
    discount = max(raw, Decimal(0)) if raw >= Decimal("-0.005") else raw
    discount = discount.quantize(Decimal("0.01"), ROUND_HALF_UP) + 0
    if discount < 0:
        return _fail(
            "invalid_discount", f"total {line_total} is above {quantity} x {price}; not kept"
        )
    return Outcome(discount)


def _zone(params: Mapping[str, Any]) -> ZoneInfo | None:
    try:
        return ZoneInfo(str(params.get("timezone", _BERLIN)))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _moment(values: Sequence[Any]) -> tuple[datetime | None, Outcome | None]:
    """The first set value as a naive local datetime, or the Outcome that explains why not."""
    value = _first(values)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    try:
        moment = parse_datetime(value)
    except PlaceholderDateError:
        return None, Outcome(None, [note("placeholder_date", f"{value!s} means no date")])
    except BadValueError:
        return None, _fail("invalid_date", f"{value!r} is not a date")
    if moment is not None and moment.year < _DATAVERSE_MIN_YEAR:
        return None, _fail("out_of_range", f"{moment:%Y-%m-%d} is before 1753, Dataverse's first")
    return moment, None


@transform("datetime")
def datetime_utc(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A point in time as ISO 8601 UTC text (``2024-04-30T07:01:35Z``).

    work4all holds local time without zone: ``timezone`` (default Europe/Berlin) says which.
    German text and ISO text are read; placeholder dates give None with note ``placeholder_date``.
    """
    zone = _zone(params)
    if zone is None:
        return _bad_params(f"unknown timezone {params.get('timezone')!r}")
    moment, problem = _moment(values)
    if moment is None:
        return problem or Outcome(None)
    utc = moment.replace(tzinfo=zone).astimezone(UTC)
    return Outcome(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))


@transform("dateonly")
@transform("date")
def date_only(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A day as ISO text (``2024-04-30``) for DateOnly columns; the time of day is dropped.

    ``date`` is another name for ``dateonly``. Placeholder dates give None, note
    ``placeholder_date``.
    """
    moment, problem = _moment(values)
    if moment is None:
        return problem or Outcome(None)
    return Outcome(moment.date().isoformat())


@transform("duration_minutes")
def duration_minutes(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """Whole minutes from the first source (start) to the second (end); None if either is empty."""
    if len(values) != 2:
        return _bad_params("duration_minutes needs two sources: start and end")
    start, start_problem = _moment(values[:1])
    end, end_problem = _moment(values[1:])
    if start is None or end is None:
        notes = [*(start_problem.notes if start_problem else []),
                 *(end_problem.notes if end_problem else [])]  # fmt: skip
        return Outcome(None, notes)
    if end < start:
        return _fail("invalid_duration", f"end {end} is before start {start}")
    return Outcome(round((end - start).total_seconds() / 60))


@transform("country")
def country(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A country as ISO 3166 alpha-2 (``D`` → ``DE``); unknown gives None, note
    ``unknown_country``."""
    value = _first(values)
    if value is None:
        return Outcome(None)
    try:
        return Outcome(parse_country(_as_text(value)))
    except BadValueError:
        return Outcome(None, [note("unknown_country", f"{value!r} is no known country")])


def _option_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal) and value == int(value):
        return str(int(value))
    return _as_text(value).strip().casefold()


@transform("optionset")
def optionset(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A choice value from ``params.mapping`` (source value → option int).

    Keys match as text, case-insensitively (``true``/``false`` for flags, ``1`` for 1.0). An
    empty source gives ``params.empty`` (default None). An unknown value gives ``params.default``
    with note ``option_defaulted`` when there is one, else the error ``unknown_option``.
    """
    mapping = params.get("mapping")
    if not isinstance(mapping, Mapping) or not mapping:
        return _bad_params("optionset needs 'mapping': source value → option value")
    options = {_option_key(key): option for key, option in mapping.items()}
    value = _first(values)
    if value is None:
        return Outcome(params.get("empty"))
    key = _option_key(value)
    if key in options:
        return Outcome(options[key])
    if params.get("default") is not None:
        default = params["default"]
        return Outcome(default, [note("option_defaulted", f"{value!r} unknown; {default} used")])
    return _fail("unknown_option", f"{value!r} is not one of {sorted(options)}")


@transform("boolean")
def boolean(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A yes/no value (-1, 1, 0, ``Ja``, ``WAHR``, …) as bool; ``invert`` flips it."""
    value = _first(values)
    try:
        flag = parse_bool(value)
    except BadValueError:
        return _fail("invalid_boolean", f"{value!r} is not a yes/no value")
    if flag is None:
        return Outcome(None)
    return Outcome(flag != bool(params.get("invert")))


@transform("is_set")
def is_set(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """True when any source value is set (a link that is not 0/NULL); ``invert`` flips it."""
    return Outcome((_first(values) is not None) != bool(params.get("invert")))


@transform("email")
def email(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """An e-mail address, checked; ``mailto:`` dropped; of several, the first valid one is kept.

    Invalid is the error ``invalid_email`` naming the value; ``max_length`` as in ``text``.
    """
    value = _first(values)
    if value is None:
        return Outcome(None)
    raw = _as_text(value).strip()
    candidates = [
        part.strip().removeprefix("mailto:") for part in re.split(r"[;,]", raw) if part.strip()
    ]
    valid = [part for part in candidates if _EMAIL.fullmatch(part)]
    if not valid:
        return _fail("invalid_email", f"{raw!r} is not an e-mail address")
    notes = [note("multiple_values", f"{raw!r}: kept {valid[0]!r}")] if len(candidates) > 1 else []
    fitted = _fit(valid[0], params, truncate=False)
    fitted.notes[:0] = notes
    return fitted


@transform("phone")
def phone(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A telephone number as written, whitespace collapsed; digits, ``+ ( ) / - .`` only.

    Anything else (or fewer than three digits) is the error ``invalid_phone``; ``max_length`` as
    in ``text``.
    """
    value = _first(values)
    if value is None:
        return Outcome(None)
    number = _clean(_as_text(value), False)
    if not _PHONE.fullmatch(number) or sum(char.isdigit() for char in number) < 3:
        return _fail("invalid_phone", f"{number!r} is not a telephone number")
    return _fit(number, params, truncate=False)


@transform("url")
def url(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A web address; ``www.x.de`` gets ``http://`` (note ``url_scheme_added``).

    Spaces or no dotted host is the error ``invalid_url``; ``max_length`` as in ``text``.
    """
    value = _first(values)
    if value is None:
        return Outcome(None)
    address = _as_text(value).strip()
    notes: list[str] = []
    if "://" not in address:
        address = f"http://{address}"
        notes.append(note("url_scheme_added", f"{value!r} became {address!r}"))
    parts = urlsplit(address)
    host = parts.hostname or ""
    if (
        any(char.isspace() for char in address)
        or parts.scheme not in ("http", "https")
        or "." not in host
        or host.startswith(".")
        or host.endswith(".")
    ):
        return _fail("invalid_url", f"{value!r} is not a web address")
    fitted = _fit(address, params, truncate=False)
    fitted.notes[:0] = notes
    return fitted


def _anrede_text(value: Any, params: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The Anrede text for a code or text, and whether a given code was unknown."""
    if value is None:
        return None, False
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return _clean(value, False), False
    codes = params.get("codes", _DEFAULT_ANREDE)
    known = {_option_key(code): name for code, name in codes.items()}
    name = known.get(_option_key(value))
    return (None, True) if name is None else (str(name), False)


def _gender(words: str) -> int | None:
    tokens = {token.casefold() for token in words.replace(",", " ").split()}
    male, female = bool(tokens & _MALE), bool(tokens & _FEMALE)
    if male == female:
        return None
    return 1 if male else 2


@transform("salutation")
def salutation(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A contact's ``gendercode`` (1 male, 2 female) or ``salutation`` text from the Anrede.

    Sources ``[AnredeCode, Briefanrede]``: the first is an Anrede code (looked up in
    ``params.codes``, code → text; default the standard ``1 Herr, 2 Frau, 3 Firma, 4 Familie``;
    the proposer fills the installation's own ``Anrede`` table) or the Anrede text itself
    (``Herr Dr.``). When the Anrede says nothing about gender, the letter salutation ("Sehr
    geehrte Frau …") decides. ``params.part`` names the column: ``gendercode`` or ``salutation``
    (the Anrede text; none for ``Firma`` and ``-Ohne-``).
    """
    part = params.get("part")
    if part not in ("gendercode", "salutation"):
        return _bad_params("salutation needs part: gendercode or salutation")
    codes = params.get("codes", _DEFAULT_ANREDE)
    if not isinstance(codes, Mapping):
        return _bad_params("codes must map Anrede codes to texts")
    anrede, unknown = _anrede_text(values[0] if values else None, params)
    letter = _first(values[1:])
    notes = (
        [note("unknown_salutation", f"Anrede code {values[0]!r} is not known")] if unknown else []
    )
    if part == "salutation":
        keep = anrede is not None and anrede.casefold() not in _NO_PERSON
        return Outcome(anrede if keep else None, notes)
    gender = _gender(anrede) if anrede else None
    if gender is None and letter is not None:
        gender = _gender(_as_text(letter))
    return Outcome(gender, notes)


def _probability(value: Any) -> tuple[int, list[str]]:
    try:
        number = _number(value)
    except BadValueError:
        return 0, [note("invalid_number", f"probability {value!r} is not a number; 0 used")]
    if number is None:
        return 0, []
    clamped = max(Decimal(0), min(Decimal(100), number))
    notes = [note("out_of_range", f"probability {number} taken as {clamped}")] * (clamped != number)
    return int(clamped.to_integral_value(ROUND_HALF_UP)), notes


@transform("opportunity_stage")
def opportunity_stage(
    values: Sequence[Any], params: Mapping[str, Any], context: Context
) -> Outcome:
    """One pipeline column of an opportunity from work4all ``[Status, WahrscheinlichkeitProzent]``.

    Status 0 open, 1 won, 2 lost (``params.statuses`` maps other codes to ``open``/``won``/
    ``lost``). Open: ``closeprobability`` = the percentage, ``salesstage``/``stepname`` by it
    (≥ 75 Close, ≥ 50 Propose, ≥ 25 Develop, else Qualify), state 0 / status 1 In Progress.
    Won: 100 %, Close, state 1 / status 3. Lost: 0 %, Close, state 2 / status 4 Canceled.
    ``params.part`` names the column: salesstage, stepname, closeprobability, statecode or
    statuscode.
    """
    part = params.get("part")
    if part not in _STAGE_PARTS:
        return _bad_params(f"opportunity_stage needs part: one of {', '.join(_STAGE_PARTS)}")
    statuses = {"0": "open", "1": "won", "2": "lost"}
    custom = params.get("statuses", {})
    if not isinstance(custom, Mapping) or set(custom.values()) - {"open", "won", "lost"}:
        return _bad_params("statuses must map status codes to open, won or lost")
    statuses |= {_option_key(code): str(kind) for code, kind in custom.items()}
    status = values[0] if values else None
    kind = "open" if status is None else statuses.get(_option_key(status))
    if kind is None:
        return _fail("unknown_option", f"opportunity status {status!r} is not known")
    if kind == "won":
        row: dict[str, Any] = {"closeprobability": 100, "salesstage": 3, "stepname": "4-Close",
                               "statecode": 1, "statuscode": 3}  # fmt: skip
        return Outcome(row[part])
    if kind == "lost":
        row = {"closeprobability": 0, "salesstage": 3, "stepname": "4-Close",
               "statecode": 2, "statuscode": 4}  # fmt: skip
        return Outcome(row[part])
    percent, notes = _probability(values[1] if len(values) > 1 else None)
    stage, step = next((stage, step) for low, stage, step in _SALES_STAGES if percent >= low)
    row = {"closeprobability": percent, "salesstage": stage, "stepname": step,
           "statecode": 0, "statuscode": 1}  # fmt: skip
    return Outcome(row[part], notes if part == "closeprobability" else [])


@transform("lookup")
def lookup(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A :class:`Bind` to the record another map object made from the source key.

    ``params.object`` names the map object; the first source is the key. For a polymorphic link
    ``params.objects`` maps type values to objects and the sources are ``[type, key]``
    (``SDObjType`` 1 → customers, 0 → suppliers). An empty key (0/NULL) gives None; a key whose
    record is not migrated is the error ``lookup_unresolved``.
    """
    target = params.get("object")
    objects = params.get("objects")
    if isinstance(target, str) and objects is None:
        key = values[0] if values else None
    elif isinstance(objects, Mapping) and objects and target is None:
        if len(values) != 2:
            return _bad_params("a lookup with 'objects' needs two sources: type and key")
        link_type, key = values
        if key is None:
            return Outcome(None)
        target = {_option_key(kind): name for kind, name in objects.items()}.get(
            _option_key(link_type) if link_type is not None else ""
        )
        if target is None:
            return _fail("lookup_type_unknown", f"link type {link_type!r} for key {key!r}")
    else:
        return _bad_params("lookup needs 'object' (one map object) or 'objects' (type → object)")
    if not _is_set(key):
        return Outcome(None)
    bind = context.resolve(str(target), key)
    if bind is None:
        return _fail("lookup_unresolved", f"{target} has no migrated record for key {key!r}")
    return Outcome(bind)


@transform("owner")
def owner(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The owning ``systemuser`` for the first set work4all user code, with the context's notes.

    With no code, or one that matches no user, the context gives the fallback owner (and says
    so); when there is none either, the error ``owner_unresolved``.
    """
    code = _first(values)
    bind, notes = context.owner(code)
    if bind is None:
        return Outcome(
            None,
            list(notes),
            note("owner_unresolved", f"no systemuser for Mitarbeiter {code!r}, no fallback owner"),
        )
    return Outcome(bind, list(notes))


@transform("source_key")
def source_key(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """``"<params.table>:<key>"`` (``Kunden:1739201``): the record's key in ``w4a_sourcekey``."""
    table = params.get("table")
    if not isinstance(table, str) or not table:
        return _bad_params("source_key needs 'table', the work4all table name")
    key = _first(values)
    if key is None:
        return _fail("missing_key", f"a {table} record without key")
    return Outcome(f"{table}:{_as_text(key).strip()}")


@transform("mimetype")
def mimetype(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The MIME type of a file name by its extension; ``application/octet-stream`` if unknown."""
    name = _first(values)
    if name is None:
        return Outcome(None)
    guessed, _ = mimetypes.guess_type(_as_text(name), strict=False)
    return Outcome(guessed or "application/octet-stream")


@transform("file")
def file(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """A :class:`FileRef` to ``<params.folder>/<name>`` from sources ``[Dateiname, Groesse]``.

    When the recorded size, Base64-encoded, exceeds ``max_bytes`` (default 5,242,880, the
    Dataverse default upload limit) the error is ``attachment_too_large``.
    """
    folder = params.get("folder", "")
    limit = params.get("max_bytes", 5_242_880)
    if not isinstance(folder, str) or not isinstance(limit, int) or limit <= 0:
        return _bad_params("file needs 'folder' (text) and 'max_bytes' (a positive whole number)")
    name = _first(values[:1])
    if name is None:
        return Outcome(None)
    size = values[1] if len(values) > 1 and isinstance(values[1], int) else None
    if size is not None and (size + 2) // 3 * 4 > limit:
        return _fail("attachment_too_large", f"{name}: {size} bytes, Base64 over {limit}")
    path = f"{folder.rstrip('/')}/{name}" if folder else str(name)
    return Outcome(FileRef(path, size))


_RTF_SKIPPED = frozenset(
    {"fonttbl", "colortbl", "stylesheet", "info", "pict", "header", "footer", "headerl",
     "headerr", "footerl", "footerr", "generator", "listtable", "listoverridetable", "rsidtbl",
     "themedata", "datastore", "latentstyles", "xmlnstbl", "mmathPr", "object", "fldinst"}
)  # fmt: skip
_RTF_CHARACTERS = {
    "tab": " ", "emdash": "\u2014", "endash": "\u2013", "bullet": "\u2022",
    "lquote": "\u2018", "rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d",
    "emspace": " ", "enspace": " ", "~": "\u00a0",
}  # fmt: skip
_RTF_TOKEN = re.compile(
    r"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}]+)", re.S
)


def rtf_to_text(rtf: str) -> str:
    """The text of an RTF document: paragraphs separated by blank lines, ``\\line`` as newline.

    Control words are dropped, ``\\'e4`` (Windows-1252) and ``\\u228?`` become characters, and
    font tables, styles, pictures and other ``{\\*…}`` groups are skipped.
    """
    out: list[str] = []
    pending = bytearray()
    stack: list[tuple[bool, int]] = []
    skipping, skip_after_unicode, to_skip = False, 1, 0

    def flush() -> None:
        if pending:
            out.append(pending.decode("cp1252", errors="replace"))
            pending.clear()

    for match in _RTF_TOKEN.finditer(rtf):
        word, argument, hexcode, symbol, brace, plain = match.groups()
        if hexcode is None:
            flush()
        if to_skip and (plain or hexcode or symbol):
            if plain:
                plain = plain[1:] if plain[0] not in "\r\n" else plain
                to_skip -= 1
                if not plain:
                    continue
            else:
                to_skip -= 1
                continue
        if brace == "{":
            stack.append((skipping, skip_after_unicode))
        elif brace == "}":
            skipping, skip_after_unicode = stack.pop() if stack else (False, 1)
        elif symbol == "*":
            skipping = True
        elif skipping:
            continue
        elif word is not None:
            if word in _RTF_SKIPPED:
                skipping = True
            elif word == "par":
                out.append("\n\n")
            elif word == "line":
                out.append("\n")
            elif word == "uc":
                skip_after_unicode = int(argument or 1)
            elif word == "u" and argument is not None:
                out.append(chr(int(argument) % 65536))
                to_skip = skip_after_unicode
            elif word in _RTF_CHARACTERS:
                out.append(_RTF_CHARACTERS[word])
        elif hexcode is not None:
            pending.append(int(hexcode, 16))
        elif symbol is not None:
            if symbol in "\r\n":
                out.append("\n\n")
            elif symbol in "\\{}":
                out.append(symbol)
            elif symbol in _RTF_CHARACTERS:
                out.append(_RTF_CHARACTERS[symbol])
        elif plain is not None:
            out.append(plain.replace("\r", "").replace("\n", ""))
    flush()
    return "".join(out)


def _html_paragraphs(text: str) -> list[str]:
    paragraphs = [_clean(block, True) for block in _PARAGRAPH_BREAK.split(text)]
    return [
        "<p>" + "<br>".join(html.escape(line, quote=False) for line in block.split("\n")) + "</p>"
        for block in paragraphs
        if block
    ]


@transform("html_from_rtf")
def html_from_rtf(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """Simple HTML (``<p>`` per paragraph, ``<br>`` per line, text escaped) from RTF or plain text.

    For annotation ``notetext`` and activity descriptions. ``max_length`` drops whole trailing
    paragraphs to fit (note ``truncated``), or is the error ``too_long`` without ``truncate``.
    """
    value = _first(values)
    if value is None:
        return Outcome(None)
    source = _as_text(value)
    is_rtf = source.lstrip().startswith("{\\rtf")
    paragraphs = _html_paragraphs(rtf_to_text(source) if is_rtf else source)
    if not paragraphs:
        return Outcome(None)
    document = "".join(paragraphs)
    if "max_length" in params and _positive_int(params, "max_length") is None:
        return _bad_params("max_length must be a positive whole number")
    limit = _positive_int(params, "max_length")
    if limit is None or len(document) <= limit:
        return Outcome(document)
    if not params.get("truncate"):
        return _fail("too_long", f"{len(document)} characters of HTML, the column takes {limit}")
    kept: list[str] = []
    for paragraph in paragraphs:
        if len("".join(kept)) + len(paragraph) > limit:
            break
        kept.append(paragraph)
    shortened = "".join(kept) or None
    cut = note("truncated", f"{len(document)} characters of HTML cut to {len(shortened or '')}")
    return Outcome(shortened, [cut])
