"""OData query options on emulator rows: $select, $filter, $orderby, $expand, keys, paging.

Each option is parsed once per request into plain Python callables and columns, then applied to
row dictionaries as the store returns them. String comparisons ignore case, as Dataverse's SQL
collation does; a null never satisfies a comparison with a value, as in SQL.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from dataverse_emulator.errors import DataverseError
from dataverse_emulator.schema import AttributeType, Column, Navigation, Schema, Table

Row = dict[str, Any]
Predicate = Callable[[Row], bool]

MAX_PAGE_SIZE = 5000
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
    |(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))
    |(?P<dt>\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?(?![\w-]))
    |(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<eq>=)
    |(?P<name>[A-Za-z_$][\w.$/]*)
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"contains", "startswith", "endswith"}
_EDM = {
    AttributeType.STRING: "Edm.String",
    AttributeType.MEMO: "Edm.String",
    AttributeType.INTEGER: "Edm.Int32",
    AttributeType.BIGINT: "Edm.Int64",
    AttributeType.DECIMAL: "Edm.Decimal",
    AttributeType.DOUBLE: "Edm.Double",
    AttributeType.MONEY: "Edm.Decimal",
    AttributeType.DATETIME: "Edm.DateTimeOffset",
    AttributeType.BOOLEAN: "Edm.Boolean",
    AttributeType.PICKLIST: "Edm.Int32",
    AttributeType.STATE: "Edm.Int32",
    AttributeType.STATUS: "Edm.Int32",
    AttributeType.LOOKUP: "Edm.Guid",
    AttributeType.CUSTOMER: "Edm.Guid",
    AttributeType.OWNER: "Edm.Guid",
    AttributeType.UNIQUEIDENTIFIER: "Edm.Guid",
}


def bad_request(message: str, code: str = "0x0") -> DataverseError:
    """A 400 with the OData framework code that Dataverse uses for query syntax errors."""
    return DataverseError(400, code, message)


def unknown_property(name: str, table: Table) -> DataverseError:
    """The documented 400 for a property in a query that the table does not have."""
    return bad_request(
        f"Could not find a property named '{name}' on type "
        f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
    )


def edm_type(column: Column) -> str:
    """The Edm type name of a column, as shown in OData messages."""
    if column.type is AttributeType.DATETIME and column.date_only:
        return "Edm.Date"
    return _EDM.get(column.type, "Edm.String")


# ----------------------------------------------------------------------------------------------
# Literals and values


@dataclass(frozen=True)
class _Guid:
    value: str


@dataclass(frozen=True)
class _DateLiteral:
    text: str


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        return text[1:-1].replace("''", "'")
    if kind == "guid":
        return _Guid(text.lower())
    if kind == "dt":
        return _DateLiteral(text)
    if kind == "num":
        return float(text) if any(c in text for c in ".eE") else int(text)
    raise bad_request(f"Syntax error at '{text}'.")


def normalize_datetime(value: Any, *, date_only: bool) -> str:
    """Canonical text of a DateTime (`2021-05-04T13:00:00Z`) or DateOnly (`2021-05-04`) value."""
    if not isinstance(value, str):
        raise ValueError(value)
    text = value.strip()
    if date_only:
        return date.fromisoformat(text[:10]).isoformat()
    if len(text) == 10:
        parsed = datetime.fromisoformat(text).replace(tzinfo=UTC)
    else:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def literal_for(column: Column, value: Any) -> Any:
    """A parsed literal converted to how the row stores this column; ValueError if incompatible."""
    if value is None:
        return None
    kind = column.type
    if kind is AttributeType.DATETIME:
        text = value.text if isinstance(value, _DateLiteral) else value
        return normalize_datetime(text, date_only=column.date_only)
    if column.is_lookup or kind is AttributeType.UNIQUEIDENTIFIER:
        if isinstance(value, _Guid):
            return value.value
        if isinstance(value, str) and GUID.match(value):
            return value.lower()
        raise ValueError(value)
    if isinstance(value, (_Guid, _DateLiteral)):
        raise ValueError(value)
    if kind in (AttributeType.STRING, AttributeType.MEMO):
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    if kind is AttributeType.BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    return value


def _literal_edm(value: Any) -> str:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32"
    if isinstance(value, float):
        return "Edm.Double"
    if isinstance(value, _Guid):
        return "Edm.Guid"
    if isinstance(value, _DateLiteral):
        return "Edm.DateTimeOffset"
    return "Edm.String"


# ----------------------------------------------------------------------------------------------
# Tokens


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        position = 0
        text = text.rstrip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise bad_request(f"Syntax error at position {position} in '{text}'.")
            kind = match.lastgroup or ""
            self.items.append((kind, match.group(kind)))
            position = match.end()
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise bad_request("Syntax error: unexpected end of expression.")
        self.position += 1
        return token

    def expect(self, kind: str) -> str:
        found, text = self.take()
        if found != kind:
            raise bad_request(f"Syntax error: '{text}' found where {kind} was expected.")
        return text

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "name" and token[1] == word


def _value_token(tokens: _Tokens) -> Any:
    kind, text = tokens.take()
    if kind == "name":
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        raise bad_request(f"Syntax error: '{text}' is not a literal.")
    return _literal(kind, text)


# ----------------------------------------------------------------------------------------------
# Key predicates: accounts(<guid>), accounts(accountnumber='A-1',name='x')


def parse_key_predicate(text: str) -> str | dict[str, Any]:
    """The inside of `set(...)`: a GUID string, or property name → raw literal value."""
    text = text.strip()
    if GUID.match(text):
        return text.lower()
    tokens = _Tokens(text)
    values: dict[str, Any] = {}
    while tokens.peek() is not None:
        name = tokens.expect("name")
        tokens.expect("eq")
        value = _value_token(tokens)
        values[name] = value.value if isinstance(value, _Guid) else value
        if isinstance(value, _DateLiteral):
            values[name] = value.text
        if tokens.peek() is not None:
            tokens.expect("comma")
    if not values:
        raise bad_request(f"Bad Request - Error in query syntax: '({text})'.")
    return values


# ----------------------------------------------------------------------------------------------
# $select, $orderby, $expand


def _readable(table: Table, name: str) -> Column:
    column = table.readable.get(name)
    if column is None:
        raise unknown_property(name, table)
    return column


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_select(text: str | None, table: Table) -> list[Column] | None:
    """The selected columns (lookups named `_x_value`), or None for all."""
    if text is None:
        return None
    return [_readable(table, name) for name in _split_top_level(text)]


def parse_orderby(text: str | None, table: Table) -> list[tuple[Column, bool]]:
    """(column, descending) pairs."""
    if not text:
        return []
    order: list[tuple[Column, bool]] = []
    for part in _split_top_level(text):
        name, _, direction = part.partition(" ")
        direction = direction.strip().lower()
        if direction not in ("", "asc", "desc"):
            raise bad_request(f"Syntax error in $orderby: '{part}'.")
        order.append((_readable(table, name.strip()), direction == "desc"))
    return order


@dataclass(frozen=True)
class Expand:
    """A single-valued navigation property to expand, with the target's selected columns."""

    navigation: Navigation
    select: dict[str, list[Column] | None]  # per possible target table


def parse_expand(text: str | None, table: Table, schema: Schema) -> list[Expand]:
    """The `$expand` items; only single-valued navigation properties and nested $select."""
    if not text:
        return []
    expands: list[Expand] = []
    for part in _split_top_level(text):
        name, _, options = part.partition("(")
        name = name.strip()
        navigation = table.navigations.get(name)
        if navigation is None:
            raise unknown_property(name, table)
        nested: str | None = None
        inner = options.strip()
        if inner.endswith(")"):
            inner = inner[:-1]
        for option in inner.split(";"):
            if not option.strip():
                continue
            key, _, value = option.partition("=")
            if key.strip() != "$select":
                raise bad_request(f"The query option '{key.strip()}' is not supported in $expand.")
            nested = value
        select = {t: parse_select(nested, schema.table(t)) for t in navigation.targets}
        expands.append(Expand(navigation, select))
    return expands


# ----------------------------------------------------------------------------------------------
# $filter


@dataclass(frozen=True)
class Equality:
    """What a filter implies: every row it matches holds one of `values` in `column`.

    Values are case-folded text (GUIDs are lower case already), so a store can find the candidate
    rows through an index and test only those. `exact` says the filter is nothing but this test.
    """

    column: Column
    values: frozenset[str]
    exact: bool = True


@dataclass(frozen=True)
class Filter:
    """A parsed `$filter`: the predicate over stored rows, and an equality it implies, if any."""

    predicate: Predicate
    equality: Equality | None = None


def parse_filter(text: str | None, table: Table) -> Predicate | None:
    """A predicate over stored rows, or None when there is no filter."""
    parsed = plan_filter(text, table)
    return None if parsed is None else parsed.predicate


def plan_filter(text: str | None, table: Table) -> Filter | None:
    """The filter's predicate and the equality it implies, or None when there is no filter."""
    if not text:
        return None
    tokens = _Tokens(text)
    parsed = _or(tokens, table)
    if tokens.peek() is not None:
        raise bad_request(f"Syntax error at '{tokens.peek()[1]}' in $filter.")  # type: ignore[index]
    return parsed


def _or(tokens: _Tokens, table: Table) -> Filter:
    left = _and(tokens, table)
    while tokens.at_word("or"):
        tokens.take()
        right = _and(tokens, table)
        left = _either(left, right)
    return left


def _either(left: Filter, right: Filter) -> Filter:
    a, b = left.equality, right.equality
    if a is None or b is None or a.column.name != b.column.name:
        return Filter((lambda p, q: lambda row: p(row) or q(row))(left.predicate, right.predicate))
    equality = Equality(a.column, a.values | b.values, a.exact and b.exact)
    if equality.exact:
        # `x eq 1 or x eq 2 or …` as one set lookup, not a chain of a hundred comparisons.
        return Filter(_one_of(equality), equality)
    return Filter(
        (lambda p, q: lambda row: p(row) or q(row))(left.predicate, right.predicate), equality
    )


def _and(tokens: _Tokens, table: Table) -> Filter:
    left = _not(tokens, table)
    while tokens.at_word("and"):
        tokens.take()
        right = _not(tokens, table)
        predicate = (lambda p, q: lambda row: p(row) and q(row))(left.predicate, right.predicate)
        left = Filter(predicate, _narrower(left.equality, right.equality, table))
    return left


def _narrower(a: Equality | None, b: Equality | None, table: Table) -> Equality | None:
    """Either equality holds for a conjunction; the primary key's, or else the fewer values."""
    if a is None or b is None:
        return a or b
    if b.column.name == table.primary_id and a.column.name != table.primary_id:
        narrow = b
    elif a.column.name == table.primary_id or len(a.values) <= len(b.values):
        narrow = a
    else:
        narrow = b
    return Equality(narrow.column, narrow.values, exact=False)


def _not(tokens: _Tokens, table: Table) -> Filter:
    if tokens.at_word("not"):
        tokens.take()
        inner = _not(tokens, table).predicate
        return Filter(lambda row: not inner(row))
    return _primary(tokens, table)


def _primary(tokens: _Tokens, table: Table) -> Filter:
    token = tokens.peek()
    if token is not None and token[0] == "lp":
        tokens.take()
        inner = _or(tokens, table)
        tokens.expect("rp")
        return inner
    if token is not None and token[0] == "name" and token[1] in _FUNCTIONS:
        return Filter(_function(tokens, table))
    return _comparison(tokens, table)


def _function(tokens: _Tokens, table: Table) -> Predicate:
    name = tokens.expect("name")
    tokens.expect("lp")
    column = _readable(table, tokens.expect("name"))
    tokens.expect("comma")
    needle = _value_token(tokens)
    tokens.expect("rp")
    if column.type not in (AttributeType.STRING, AttributeType.MEMO) or not isinstance(needle, str):
        raise bad_request(f"The function '{name}' needs a string property and a string literal.")
    key, wanted = column.name, needle.casefold()
    if name == "contains":
        return lambda row: (v := row.get(key)) is not None and wanted in v.casefold()
    if name == "startswith":
        return lambda row: (v := row.get(key)) is not None and v.casefold().startswith(wanted)
    return lambda row: (v := row.get(key)) is not None and v.casefold().endswith(wanted)


def _comparison(tokens: _Tokens, table: Table) -> Filter:
    kind, text = tokens.peek() or ("", "")
    if kind == "name" and text not in ("true", "false", "null"):
        column = _readable(table, tokens.take()[1])
        operator = tokens.expect("name")
        raw = _value_token(tokens)
    else:
        raw = _value_token(tokens)
        operator = _MIRROR.get(tokens.expect("name"), "")
        column = _readable(table, tokens.expect("name"))
    if operator not in _COMPARISONS:
        raise bad_request(f"Syntax error: unknown operator '{operator}' in $filter.")
    try:
        value = literal_for(column, raw)
    except ValueError:
        raise bad_request(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{edm_type(column)}' and '{_literal_edm(raw)}' for operator kind '{operator}'.",
            "0x80060888",
        ) from None
    if operator == "eq" and isinstance(value, str):
        equality = Equality(column, frozenset({value.casefold()}))
        return Filter(_one_of(equality), equality)
    return Filter(_compare(column, operator, value))


def _one_of(equality: Equality) -> Predicate:
    key, values = equality.column.name, equality.values
    return lambda row: isinstance(v := row.get(key), str) and v.casefold() in values


_MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def _compare(column: Column, operator: str, value: Any) -> Predicate:
    key = column.name
    if value is None:
        if operator == "eq":
            return lambda row: row.get(key) is None
        if operator == "ne":
            return lambda row: row.get(key) is not None
        return lambda row: False
    if isinstance(value, str):
        value = value.casefold()

        def get(row: Row) -> Any:
            found = row.get(key)
            return found.casefold() if isinstance(found, str) else found
    else:

        def get(row: Row) -> Any:
            return row.get(key)

    def test(row: Row) -> bool:
        found = get(row)
        if found is None:
            return False
        if operator == "eq":
            return bool(found == value)
        if operator == "ne":
            return bool(found != value)
        if operator == "gt":
            return bool(found > value)
        if operator == "ge":
            return bool(found >= value)
        if operator == "lt":
            return bool(found < value)
        return bool(found <= value)

    return test


# ----------------------------------------------------------------------------------------------
# Sorting and paging


def sort_rows(rows: list[Row], order: list[tuple[Column, bool]]) -> list[Row]:
    """Rows sorted by the $orderby columns (nulls first ascending); ties keep id order."""
    for column, descending in reversed(order):
        key = column.name
        rows.sort(
            key=lambda row: (
                (v := row.get(key)) is not None,
                v.casefold() if isinstance(v, str) else (v if v is not None else 0),
            ),
            reverse=descending,
        )
    return rows


@dataclass(frozen=True)
class PageCookie:
    """Where the next page starts: after an id (id order) or at an offset (any other order)."""

    page: int
    after_id: str | None = None
    offset: int = 0

    def encode(self) -> str:
        """The `$skiptoken` value, shaped like Dataverse's paging cookie."""
        state = base64.urlsafe_b64encode(
            json.dumps({"a": self.after_id, "o": self.offset}).encode()
        ).decode()
        return f'<cookie pagenumber="{self.page}" pagingcookie="{state}" istracking="False" />'

    @classmethod
    def decode(cls, token: str) -> PageCookie:
        """Parse a `$skiptoken` made by `encode`."""
        match = re.match(r'<cookie pagenumber="(\d+)" pagingcookie="([^"]*)"', token)
        if match is None:
            raise bad_request("The $skiptoken value is not valid.")
        try:
            state = json.loads(base64.urlsafe_b64decode(match.group(2)))
            return cls(int(match.group(1)), state["a"], int(state["o"]))
        except (ValueError, KeyError):
            raise bad_request("The $skiptoken value is not valid.") from None


def page_size(prefer: dict[str, str]) -> int | None:
    """The `odata.maxpagesize` preference (capped at 5,000), or None if not sent."""
    raw = prefer.get("odata.maxpagesize")
    if raw is None:
        return None
    try:
        size = int(raw)
    except ValueError:
        raise bad_request(f"The odata.maxpagesize preference '{raw}' is not valid.") from None
    if size <= 0:
        raise bad_request(f"The odata.maxpagesize preference '{raw}' is not valid.")
    return min(size, MAX_PAGE_SIZE)
