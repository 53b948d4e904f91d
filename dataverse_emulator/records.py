"""Record operations: a Python API (`Records`) and the Web API dispatcher (`WebApi`) on top of it.

`Records` validates and writes rows the way Dataverse does (reference sections 2, 3, 4, 8, 9, 10
and the checklist in 13); it raises `DataverseError`. `WebApi.execute` turns one Web API request
(method, URL, headers, body) into a `Reply`; the HTTP routes and `$batch` both use it, and other
modules plug in operations (`$batch`, `WinOpportunity`, `EntityDefinitions`…) and bound actions
(`CreateMultiple`…) with `add_operation` / `add_bound_action`.

Threading: every method here is synchronous and never yields to an event loop. A caller that needs
several operations to be atomic runs them in one thread inside `records.store.transaction()`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from dataverse_emulator import odata
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.schema import (
    ACTIVITY_SPACE,
    AttributeType,
    Column,
    Navigation,
    RequiredLevel,
    Schema,
    Table,
)
from dataverse_emulator.store import DuplicateIdError, DuplicateKeyError, Row, Store, key_value

API_PREFIX = "/api/data/v9.2/"
EUR_ID = "5a4a8e7b-0000-0000-0000-000000000978"  # ISO 4217 numeric code of EUR in the tail
ROOT_BUSINESS_UNIT_ID = "5a4a8e7b-0000-0000-0000-000000000001"
_USER_NAMESPACE = uuid.UUID("7d3b1c5e-4a8e-4f0b-9a61-3c1e2f4d5a6b")
_JSON = "application/json; odata.metadata=minimal"
_DRAFT_EDITABLE_STATES = (2, 3)  # product: Draft, Under Revision

Address = str | Mapping[str, Any]
"""A row address: its primary-key GUID, or alternate-key column → value."""


@dataclass(frozen=True)
class RecordRef:
    """A row: its table's logical name and its primary-key GUID (lower case)."""

    table: str
    id: str


class Ticket(Protocol):
    """What the service-protection guard hands each request to charge execution time to."""

    def charge(self, requests: int = 0, records: int = 0) -> None:
        """Add requests or records to the caller's usage."""


@dataclass
class RequestContext:
    """Who is calling and what a request may refer to.

    `content_ids` maps a changeset's Content-ID (without `$`) to the row its request created, so
    `$1` works in URLs and `@odata.bind` values. `base_url` ends in `/api/data/v9.2/`.
    """

    client_id: str
    user_id: str
    base_url: str = "http://127.0.0.1" + API_PREFIX
    ticket: Ticket | None = None
    content_ids: dict[str, RecordRef] = field(default_factory=dict)

    def charge(self, *, requests: int = 0, records: int = 0) -> None:
        """Charge modelled execution time to the caller (no-op when limits are off)."""
        if self.ticket is not None:
            self.ticket.charge(requests=requests, records=records)


@dataclass(frozen=True)
class ApiRequest:
    """One Web API request; `path` is relative to the API root, with its query split off."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    @classmethod
    def parse(
        cls, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> ApiRequest:
        """Build from an absolute URL, a path under `/api/data/v9.2/`, or a relative path."""
        parts = urlsplit(url)
        path = parts.path
        if API_PREFIX in path:
            path = path.split(API_PREFIX, 1)[1]
        elif path.rstrip("/") + "/" == API_PREFIX:
            path = ""
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(
            method.upper(),
            unquote(path.lstrip("/")),
            query,
            {k.lower(): v for k, v in headers.items()},
            body,
        )

    def json(self) -> Any:
        """The body parsed as JSON (400 if it is not)."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise DataverseError(
                400, "0x80048d19", f"Error identified in Payload provided by the user: {exc}"
            ) from None

    @property
    def prefer(self) -> dict[str, str]:
        """`Prefer` preferences as name → value (value "" when the preference has none)."""
        found: dict[str, str] = {}
        for item in self.headers.get("prefer", "").split(","):
            name, _, value = item.strip().partition("=")
            if name:
                found[name.strip()] = value.strip().strip('"')
        return found


@dataclass
class Reply:
    """An HTTP reply; `entity` is the row a write created or touched (for Content-ID refs)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    entity: RecordRef | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply with OData headers."""
        merged = {"OData-Version": "4.0", "Content-Type": _JSON, **(headers or {})}
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, merged, body)

    @classmethod
    def error(cls, error: DataverseError) -> Reply:
        """The documented error body for a DataverseError."""
        reply = cls.json(error.status, error.body(), error.headers)
        reply.headers["Content-Type"] = "application/json; charset=utf-8"
        return reply


Operation = Callable[[ApiRequest, RequestContext], Reply]
BoundAction = Callable[[ApiRequest, Table, RequestContext], Reply]


def now_text() -> str:
    """The current UTC time as Dataverse writes DateTime values."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_id_for_client(client_id: str) -> str:
    """The systemuserid of the application user that stands for an OAuth client id."""
    return str(uuid.uuid5(_USER_NAMESPACE, client_id))


def not_found(table: str, row_id: str) -> DataverseError:
    """The documented 404 for a missing row (0x80040217 ObjectDoesNotExist)."""
    return DataverseError(404, "0x80040217", f"{table} With Id = {row_id} Does Not Exist")


def _payload_error(entity_set: str, detail: str) -> DataverseError:
    return DataverseError(
        400,
        "0x80048d19",
        f"Error identified in Payload provided by the user for Entity :'{entity_set}', For more "
        "information on this error please follow this help link "
        "https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : "
        f"Microsoft.OData.ODataException: {detail}",
    )


def _invalid_value(column: Column, value: Any) -> DataverseError:
    return odata.bad_request(
        f"Cannot convert the literal '{value}' to the expected type '{odata.edm_type(column)}'."
    )


# Table rules with their documented codes (reference 8.2 and 10.4).
_REQUIRED_CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("product", "productnumber"): ("0x80043b05", "The product number can not be null."),
    ("product", "defaultuomscheduleid"): (
        "0x80043b13",
        "The unit schedule id of the product is missing.",
    ),
    ("product", "defaultuomid"): (
        "0x80043b14",
        "The specified unit is not valid for this product.",
    ),
    ("pricelevel", "name"): ("0x80043b0e", "The name can not be null."),
}
# Uniqueness the platform enforces without a defined alternate key: (columns, code, message).
_IMPLICIT_UNIQUE: dict[str, tuple[tuple[str, ...], str, str]] = {
    "product": (
        ("productnumber",),
        "0x80043b06",
        "The specified product ID conflicts with the product ID of an existing record. "
        "Specify a different product ID.",
    ),
    "pricelevel": (("name",), "0x80043b0f", "The name of the price list already exists."),
    "productpricelevel": (
        ("pricelevelid", "productid", "uomid"),
        "0x80043b08",
        "This product and unit combination has a price for this price list.",
    ),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "product": {"productstructure": 1, "producttypecode": 1, "quantitydecimal": 0},
    "quotedetail": {"producttypecode": 1},
    "uom": {"quantity": 1},
    "productpricelevel": {"pricingmethodcode": 1, "quantitysellingcode": 1},
    "transactioncurrency": {"currencyprecision": 2},
    "systemuser": {"isdisabled": False, "accessmode": 0},
    "phonecall": {"directioncode": True, "prioritycode": 1},
    "task": {"prioritycode": 1, "percentcomplete": 0},
    "appointment": {"prioritycode": 1},
    "email": {"prioritycode": 1, "directioncode": True},
}
_CLOSING_MESSAGES = {1: "WinOpportunity", 2: "LoseOpportunity"}
_NUMBERED = {"quote": ("quotenumber", "QUO"), "invoice": ("invoicenumber", "INV")}


class Records:
    """Create, read, update, upsert and delete rows with Dataverse's validation rules."""

    def __init__(self, schema: Schema, store: Store, config: EmulatorConfig) -> None:
        self.schema = schema
        self.store = store
        self.config = config
        self._known_users: set[str] = set()
        # SystemRequired column names per table, rebuilt when the table gains columns
        self._required: dict[str, tuple[int, tuple[str, ...]]] = {}

    # -- setup -----------------------------------------------------------------------------

    def seed(self) -> None:
        """Create the root business unit, the EUR base currency, client and configured users."""
        ctx = RequestContext("system", user_id_for_client("system"))
        with self.store.transaction():
            if self.get("businessunit", ROOT_BUSINESS_UNIT_ID) is None:
                self._insert_system(
                    "businessunit",
                    ROOT_BUSINESS_UNIT_ID,
                    {"name": "crmledger", "isdisabled": False},
                )
            if self.get("transactioncurrency", EUR_ID) is None:
                self.create(
                    "transactioncurrency",
                    {
                        "transactioncurrencyid": EUR_ID,
                        "currencyname": "Euro",
                        "isocurrencycode": "EUR",
                        "currencysymbol": "€",
                        "exchangerate": 1.0,
                        "currencyprecision": 2,
                    },
                    ctx=ctx,
                )
            for client_id in ("system", *self.config.clients):
                self.ensure_application_user(client_id)
            for email, name, disabled in self.config.seed_users:
                user_id = str(uuid.uuid5(_USER_NAMESPACE, email.lower()))
                if self.get("systemuser", user_id) is None:
                    first, _, last = name.rpartition(" ")
                    self._insert_system(
                        "systemuser",
                        user_id,
                        {
                            "internalemailaddress": email,
                            "domainname": email,
                            "fullname": name,
                            "firstname": first or None,
                            "lastname": last,
                            "isdisabled": disabled,
                            "islicensed": True,
                            "accessmode": 0,
                        },
                    )

    def ensure_application_user(self, client_id: str) -> str:
        """The systemuserid of the application user for this client, created on first use."""
        user_id = user_id_for_client(client_id)
        if user_id in self._known_users:
            return user_id
        if self.get("systemuser", user_id) is None:
            self._insert_system(
                "systemuser",
                user_id,
                {
                    "fullname": f"# {client_id}",
                    "lastname": client_id,
                    "applicationid": str(uuid.uuid5(_USER_NAMESPACE, "app:" + client_id)),
                    "domainname": f"{client_id}@emulator.local",
                    "isdisabled": False,
                    "islicensed": False,
                    "accessmode": 4,
                },
            )
        self._known_users.add(user_id)
        return user_id

    def context_for(
        self, client_id: str, *, base_url: str, ticket: Ticket | None = None
    ) -> RequestContext:
        """A request context for a client, with its application user in place."""
        return RequestContext(client_id, self.ensure_application_user(client_id), base_url, ticket)

    def _insert_system(self, table_name: str, row_id: str, values: Row) -> None:
        table = self.schema.table(table_name)
        stamp = now_text()
        row: Row = {table.primary_id: row_id, "createdon": stamp, "modifiedon": stamp, **values}
        if "businessunitid" in table.columns:
            row["businessunitid"] = ROOT_BUSINESS_UNIT_ID
        version = self.store.next_version()
        row["versionnumber"] = version
        self.store.insert(table.space, table.logical_name, row_id, row, version)

    # -- reading ---------------------------------------------------------------------------

    def table(self, name: str) -> Table:
        """The table with this logical name (404 0x8006088a if unknown)."""
        table = self.schema.tables.get(name)
        if table is None:
            raise DataverseError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
        return table

    def get(self, table: str, row_id: str) -> Row | None:
        """The stored row (raw values, lookups by column name) or None."""
        found = self._get(self.table(table), row_id)
        return None if found is None else found[1]

    def version(self, table: str, row_id: str) -> int | None:
        """The row's version (its etag number) or None."""
        found = self._get(self.table(table), row_id)
        return None if found is None else found[0]

    def _get(self, table: Table, row_id: str) -> tuple[int, Row] | None:
        found = self.store.get(table.space, row_id.lower())
        if found is None:
            return None
        stored_table, version, row = found
        if table.logical_name not in (stored_table, ACTIVITY_SPACE):
            return None
        return version, row

    def resolve(self, table: str, address: Address) -> RecordRef | None:
        """The row at this address (primary key or alternate key), or None if there is none."""
        target = self.table(table)
        row_id = self._resolve_id(target, address)
        if row_id is None or self._get(target, row_id) is None:
            return None
        return RecordRef(target.logical_name, row_id)

    def _resolve_id(self, table: Table, address: Address) -> str | None:
        if isinstance(address, str):
            return _guid(address, table)
        values = self._key_values(table, address)
        if list(values) == [table.primary_id]:
            return _guid(str(values[table.primary_id]), table)
        key = table.key_for(values)
        if key is None:
            raise _invalid_key(table)
        return self.store.find_by_key(
            table.logical_name, key.logical_name, key_value(tuple(values[c] for c in key.columns))
        )

    def _key_values(self, table: Table, address: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, raw in address.items():
            column = table.readable.get(name)
            if column is None:
                raise _invalid_key(table)
            try:
                values[column.name] = odata.literal_for(column, raw)
            except ValueError:
                raise _invalid_value(column, raw) from None
        return values

    def retrieve(
        self,
        table: str,
        address: Address,
        *,
        ctx: RequestContext,
        select: str | None = None,
        expand: str | None = None,
        annotations: bool = False,
    ) -> dict[str, Any]:
        """One row as the Web API returns it (etag, `_x_value` lookups); 404 if missing."""
        target = self.table(table)
        row_id = self._resolve_id(target, address)
        found = None if row_id is None else self._get(target, row_id)
        if found is None:
            raise _missing(target, address)
        columns = odata.parse_select(select, target)
        expands = odata.parse_expand(expand, target, self.schema)
        ctx.charge(records=1)
        return self._represent(target, found[1], found[0], columns, expands, annotations)

    def query(
        self,
        table: str,
        options: Mapping[str, str],
        *,
        ctx: RequestContext,
        max_page_size: int | None = None,
        annotations: bool = False,
    ) -> tuple[list[dict[str, Any]], odata.PageCookie | None, int | None]:
        """Rows matching the query options: (page, cookie for the next page or None, count)."""
        target = self.table(table)
        for option in options:
            if option.startswith("$") and option not in _QUERY_OPTIONS:
                raise odata.bad_request(f"The query parameter '{option}' is not supported.")
        columns = odata.parse_select(options.get("$select"), target)
        parsed = odata.plan_filter(options.get("$filter"), target)
        predicate = parsed.predicate if parsed is not None else None
        order = odata.parse_orderby(options.get("$orderby"), target)
        expands = odata.parse_expand(options.get("$expand"), target, self.schema)
        want_count = options.get("$count", "false").lower() == "true"
        cookie = None
        if "$skiptoken" in options:
            cookie = odata.PageCookie.decode(options["$skiptoken"])
        top = None
        if "$top" in options and max_page_size is None:
            try:
                top = int(options["$top"])
            except ValueError:
                raise odata.bad_request(f"Invalid value '{options['$top']}' for $top.") from None
        size = top if top is not None else (max_page_size or odata.MAX_PAGE_SIZE)

        # In id order the next page starts after the last id, so later pages skip the scan head.
        after = cookie.after_id if cookie is not None and not order and not want_count else None
        equality = parsed.equality if parsed is not None else None
        rows: list[Row] = []
        versions: dict[str, int] = {}
        for _, version, row in self._rows(target, equality, after):
            if predicate is None or predicate(row):
                rows.append(row)
                versions[row[target.primary_id]] = version
        count = len(rows) if want_count else None
        start = 0
        if order:
            odata.sort_rows(rows, order)
            start = cookie.offset if cookie is not None else 0
        elif cookie is not None and after is None:
            start = _index_after(rows, target, cookie.after_id)
        page = rows[start : start + size]
        next_cookie = None
        if top is None and start + size < len(rows):
            page_number = (cookie.page if cookie else 1) + 1
            if order:
                next_cookie = odata.PageCookie(page_number, offset=start + size)
            else:
                next_cookie = odata.PageCookie(page_number, after_id=page[-1][target.primary_id])
        ctx.charge(records=len(page))
        result = [
            self._represent(
                target, row, versions[row[target.primary_id]], columns, expands, annotations
            )
            for row in page
        ]
        return result, next_cookie, count

    def _rows(
        self, table: Table, equality: odata.Equality | None, after: str | None
    ) -> Iterable[tuple[str, int, Row]]:
        """(table, version, row) of `table` in id order, after the id `after` if given.

        With `equality`, an index may leave out rows that can't satisfy it; else all are read.
        """
        found = self._candidates(table, equality) if equality is not None else None
        if found is None:
            scan = (
                {"space": ACTIVITY_SPACE}
                if table.logical_name == ACTIVITY_SPACE
                else {"table": table.logical_name}
            )
            return self.store.scan(after=after, **scan)
        if after is None:
            return found
        return [item for item in found if item[2][table.primary_id] > after]

    def _candidates(
        self, table: Table, equality: odata.Equality
    ) -> list[tuple[str, int, Row]] | None:
        """The rows of `table` that may satisfy `equality`, in id order, read through an index.

        None when no index serves the column.
        """
        column = equality.column
        if column.name == table.primary_id:
            found = self.store.get_many(table.space, equality.values)
        elif column.type in _TERM_INDEXED and table.logical_name != ACTIVITY_SPACE:
            # Built on the first equality query of a column, then kept up to date by every write.
            self.store.index_column(table.logical_name, column.name)
            row_ids = self.store.ids_with_terms(table.logical_name, column.name, equality.values)
            found = self.store.get_many(table.space, row_ids)
        else:
            return None
        if table.logical_name == ACTIVITY_SPACE:
            return found  # the view holds every activity
        return [item for item in found if item[0] == table.logical_name]

    def _represent(
        self,
        table: Table,
        row: Row,
        version: int,
        columns: list[Column] | None,
        expands: list[odata.Expand],
        annotations: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": f'W/"{version}"'}
        for column in columns if columns is not None else table.columns.values():
            value = row.get(column.name)
            if column.is_lookup:
                name = column.read_name
                out[name] = value
                if annotations and value is not None:
                    target = row.get(f"{column.name}@type") or column.targets[0]
                    out[f"{name}@Microsoft.Dynamics.CRM.lookuplogicalname"] = target
                    label = self._primary_name(target, value)
                    if label is not None:
                        out[f"{name}@OData.Community.Display.V1.FormattedValue"] = label
            else:
                out[column.name] = value
                if annotations and value is not None and column.options:
                    label = column.options.get(int(value))
                    if label is not None:
                        out[f"{column.name}@OData.Community.Display.V1.FormattedValue"] = label
        out[table.primary_id] = row.get(table.primary_id)
        for expand in expands:
            out[expand.navigation.name] = self._expanded(row, expand, annotations)
        return out

    def _expanded(self, row: Row, expand: odata.Expand, annotations: bool) -> Any:
        navigation = expand.navigation
        value = row.get(navigation.column)
        target_name = row.get(f"{navigation.column}@type") or navigation.targets[0]
        if value is None or target_name not in navigation.targets:
            return None
        target = self.schema.table(target_name)
        found = self._get(target, value)
        if found is None:
            return None
        return self._represent(
            target, found[1], found[0], expand.select[target_name], [], annotations
        )

    def _primary_name(self, table_name: str, row_id: str) -> str | None:
        table = self.schema.tables.get(table_name)
        if table is None or table.primary_name is None:
            return None
        found = self._get(table, row_id)
        return None if found is None else found[1].get(table.primary_name)

    # -- writing ---------------------------------------------------------------------------

    def create(
        self,
        table: str,
        body: Mapping[str, Any],
        *,
        ctx: RequestContext,
        key: Address | None = None,
    ) -> RecordRef:
        """Insert a row from a Web API body; `key` (from an upsert URL) supplies the id or keys.

        Raises DataverseError for invalid bodies: 412 0x80040237 for an existing id, 412
        0x80060892 for a taken alternate-key value, 400 for validation errors.
        """
        target = self.table(table)
        if target.logical_name == ACTIVITY_SPACE:
            raise DataverseError(
                400, "0x80040203", "The activitypointer table can't be created directly."
            )
        children: list[tuple[str, list[Any]]] = []
        row = self._apply_body(target, body, ctx, create=True, children=children)
        if isinstance(key, str):
            row[target.primary_id] = _guid(key, target)
        elif key is not None:
            for name, value in self._key_values(target, key).items():
                row[name] = value
                if target.columns[name].is_lookup:
                    row[f"{name}@type"] = target.columns[name].targets[0]
        if not children:
            return self._insert(target, row, ctx)
        with self.store.transaction():
            ref = self._insert(target, row, ctx)
            for collection_name, items in children:
                collection = target.collections[collection_name]
                for item in items:
                    if not isinstance(item, Mapping):
                        raise _payload_error(
                            target.entity_set, f"'{collection_name}' must hold objects."
                        )
                    child = dict(item)
                    child[f"{collection.column}@odata.bind"] = f"/{target.entity_set}({ref.id})"
                    self.create(collection.table, child, ctx=ctx)
        return ref

    def _insert(self, table: Table, row: Row, ctx: RequestContext) -> RecordRef:
        row_id = row.get(table.primary_id) or str(uuid.uuid4())
        row[table.primary_id] = row_id
        stamp = now_text()
        overridden = row.pop("overriddencreatedon", None)
        # Dataverse stores a migrated creation time in createdon, and the real one here.
        row["createdon"] = overridden or stamp
        if overridden is not None:
            row["overriddencreatedon"] = stamp
        row["modifiedon"] = stamp
        row["createdby"] = row["modifiedby"] = ctx.user_id
        for name, value in _DEFAULTS.get(table.logical_name, {}).items():
            row.setdefault(name, value)
        if table.states:
            state = table.states[table.default_state]
            status = row.get("statuscode")
            if status is None:
                row["statuscode"] = state.default_status
            elif status not in state.statuses:
                raise _invalid_status(table, status, state.label, row_id)
            row["statecode"] = state.value
        if "ownerid" in table.columns and row.get("ownerid") is None:
            row["ownerid"], row["ownerid@type"] = ctx.user_id, "systemuser"
        if "owningbusinessunit" in table.columns:
            row["owningbusinessunit"] = ROOT_BUSINESS_UNIT_ID
        if "businessunitid" in table.columns and row.get("businessunitid") is None:
            row["businessunitid"] = ROOT_BUSINESS_UNIT_ID
        if table.primary_id != "transactioncurrencyid" and "transactioncurrencyid" in table.columns:
            # the org base currency, as Dataverse fills in when the caller sends none
            if row.get("transactioncurrencyid") is None:
                row["transactioncurrencyid"] = EUR_ID
                row["transactioncurrencyid@type"] = "transactioncurrency"
            row["exchangerate"] = 1.0
        if table.logical_name in _NUMBERED:
            column, prefix = _NUMBERED[table.logical_name]
            number = uuid.uuid5(_USER_NAMESPACE, f"{column}:{row_id}").hex[:5].upper()
            row.setdefault(column, f"{prefix}-{number}-{row_id[:4].upper()}")
        if table.is_activity:
            row["activitytypecode"] = table.logical_name
        self._derive(table, row)
        self._check_required(table, row)
        self._check_create_rules(table, row)
        version = self.store.next_version()
        row["versionnumber"] = version
        keys = self.keys_of(table, row) if self._has_keys(table) else None
        try:
            if table.logical_name == "uomschedule":
                with self.store.transaction():
                    self.store.insert(table.space, table.logical_name, row_id, row, version, keys)
                    self._create_base_unit(row, ctx)
            else:
                self.store.insert(table.space, table.logical_name, row_id, row, version, keys)
        except DuplicateIdError:
            raise DataverseError(412, "0x80040237", "Cannot insert duplicate key.", {}) from None
        except DuplicateKeyError as exc:
            raise self._duplicate_key_error(table, exc.key) from None
        ctx.charge(records=1)
        return RecordRef(table.logical_name, row_id)

    def update(
        self,
        table: str,
        address: Address,
        body: Mapping[str, Any],
        *,
        ctx: RequestContext,
        if_match: str | None = None,
    ) -> RecordRef:
        """Change an existing row (404 if missing; 412 0x80060882 if `if_match` is stale)."""
        target = self.table(table)
        row_id = self._resolve_id(target, address)
        found = None if row_id is None else self._get(target, row_id)
        if found is None or row_id is None:
            raise _missing(target, address)
        version, old = found
        if if_match is not None and if_match != "*" and if_match != f'W/"{version}"':
            raise DataverseError(
                412,
                "0x80060882",
                "The version of the existing record doesn't match the RowVersion property "
                "provided.",
            )
        changes = self._apply_body(target, body, ctx, create=False, children=[])
        if isinstance(address, Mapping):
            for name in self._key_values(target, address):
                changes.pop(name, None)
        return self._write_update(target, row_id, old, changes, ctx)

    def _write_update(
        self, table: Table, row_id: str, old: Row, changes: Row, ctx: RequestContext
    ) -> RecordRef:
        row = {**old, **changes}
        self._check_state_change(table, old, changes, row, row_id)
        self._check_update_rules(table, old, changes)
        row["modifiedon"] = now_text()
        row["modifiedby"] = ctx.user_id
        self._derive(table, row)
        self._check_required(table, row)
        version = self.store.next_version()
        row["versionnumber"] = version
        try:
            self.store.replace(
                table.space,
                table.logical_name,
                row_id,
                row,
                version,
                self.keys_of(table, row) if self._has_keys(table) else None,
            )
        except DuplicateKeyError as exc:
            raise self._duplicate_key_error(table, exc.key) from None
        ctx.charge(records=1)
        return RecordRef(table.logical_name, row_id)

    def upsert(
        self,
        table: str,
        address: Address,
        body: Mapping[str, Any],
        *,
        ctx: RequestContext,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[bool, RecordRef]:
        """Create or update by primary or alternate key: (created, row).

        `if_match="*"` only updates (404 when missing); `if_none_match="*"` only creates (412 when
        present); an etag in `if_match` must match the current row.
        """
        target = self.table(table)
        with self.store.transaction():
            ref = self.resolve(target.logical_name, address)
            if ref is not None:
                if if_none_match == "*":
                    raise DataverseError(
                        412, "0x80040237", "A record with matching key values already exists."
                    )
                return False, self.update(
                    target.logical_name,
                    ref.id,
                    _without_keys(body, address),
                    ctx=ctx,
                    if_match=if_match,
                )
            if if_match is not None:
                raise _missing(target, address)
            return True, self.create(target.logical_name, body, ctx=ctx, key=address)

    def set_state(
        self,
        table: str,
        row_id: str,
        statecode: int,
        statuscode: int,
        *,
        ctx: RequestContext,
        values: Mapping[str, Any] | None = None,
    ) -> RecordRef:
        """Move a row to a state with stored `values`, bypassing the PATCH-only rules.

        For messages such as WinOpportunity that may close what a PATCH may not; `values` are
        raw stored values (no validation beyond the state/status pair).
        """
        target = self.table(table)
        found = self._get(target, row_id)
        if found is None:
            raise not_found(target.logical_name, row_id)
        state = target.states.get(statecode)
        if state is None or statuscode not in state.statuses:
            raise _invalid_status(
                target, statuscode, state.label if state else str(statecode), row_id
            )
        old = found[1]
        row = {**old, **(values or {}), "statecode": statecode, "statuscode": statuscode}
        row["modifiedon"] = now_text()
        row["modifiedby"] = ctx.user_id
        version = self.store.next_version()
        row["versionnumber"] = version
        self.store.replace(target.space, target.logical_name, row_id, row, version)
        ctx.charge(records=1)
        return RecordRef(target.logical_name, row_id)

    def delete(self, table: str, address: Address, *, ctx: RequestContext) -> RecordRef:
        """Delete a row (404 0x80040217 if missing); an activity's parties go with it."""
        target = self.table(table)
        row_id = self._resolve_id(target, address)
        if row_id is None or self._get(target, row_id) is None:
            raise _missing(target, address)
        with self.store.transaction():
            stored = self.store.get(target.space, row_id)
            assert stored is not None
            self.store.delete(target.space, stored[0], row_id)
            if target.is_activity:
                party = self.schema.table("activityparty")
                equality = odata.Equality(party.columns["activityid"], frozenset({row_id}))
                parties = [
                    r["activitypartyid"]
                    for _, _, r in self._rows(party, equality, None)
                    if r.get("activityid") == row_id
                ]
                for party_id in parties:
                    self.store.delete("activityparty", "activityparty", party_id)
        ctx.charge(records=1)
        return RecordRef(target.logical_name, row_id)

    def clear_lookup(
        self, table: str, row_id: str, navigation: str, *, ctx: RequestContext
    ) -> None:
        """Remove a single-valued lookup (`DELETE …/<nav>/$ref`)."""
        target = self.table(table)
        nav = target.navigations.get(navigation)
        if nav is None:
            raise odata.unknown_property(navigation, target)
        found = self._get(target, row_id)
        if found is None:
            raise not_found(target.logical_name, row_id)
        self._write_update(target, row_id, found[1], {nav.column: None}, ctx)

    # -- validation ------------------------------------------------------------------------

    def _apply_body(
        self,
        table: Table,
        body: Mapping[str, Any],
        ctx: RequestContext,
        *,
        create: bool,
        children: list[tuple[str, list[Any]]],
    ) -> Row:
        if not isinstance(body, Mapping):
            raise _payload_error(table.entity_set, "The request body must be a JSON object.")
        row: Row = {}
        for name, value in body.items():
            if name.startswith("@"):
                if (
                    name == "@odata.type"
                    and value != f"Microsoft.Dynamics.CRM.{table.logical_name}"
                ):
                    raise _payload_error(
                        table.entity_set, f"The type '{value}' is not valid for this entity set."
                    )
                continue
            if "@" in name:
                prop, _, annotation = name.partition("@")
                if annotation == "odata.bind":
                    self._bind(table, prop, value, row, ctx)
                continue
            column = table.columns.get(name)
            if column is None or column.is_lookup:
                if name in table.navigations and isinstance(value, Mapping):
                    self._deep_insert(table, table.navigations[name], value, row, ctx)
                    continue
                if name in table.collections and create and isinstance(value, list):
                    children.append((name, value))
                    continue
                raise odata.bad_request(
                    f"Invalid property '{name}' was found in entity "
                    f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
                )
            if name == "statuscode" or (name == "statecode" and not create):
                row[name] = self._coerce(table, column, value)
                continue
            if not (column.valid_for_create if create else column.valid_for_update):
                continue
            row[name] = self._coerce(table, column, value)
        return row

    def _coerce(self, table: Table, column: Column, value: Any) -> Any:
        if value is None:
            if column.required is RequiredLevel.SYSTEM_REQUIRED:
                raise _required_error(table, column.name)
            return None
        kind = column.type
        if kind in (AttributeType.STRING, AttributeType.MEMO):
            if not isinstance(value, str):
                raise _invalid_value(column, value)
            if column.name == "documentbody" and table.logical_name == "annotation":
                if len(value) > self.config.max_attachment_bytes:
                    raise DataverseError(400, "0x80044a02", "Attachment file size is too big.")
            elif column.max_length is not None and len(value) > column.max_length:
                raise DataverseError(
                    400,
                    "0x80044331",
                    f"A validation error occurred.  The length of the '{column.name}' attribute "
                    f"of the '{table.logical_name}' entity exceeded the maximum allowed length of "
                    f"'{column.max_length}'.",
                )
            return value
        if kind in (AttributeType.PICKLIST, AttributeType.STATE, AttributeType.STATUS):
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid_value(column, value)
            if kind is AttributeType.PICKLIST and value not in column.options:
                accepted = ",".join(str(v) for v in column.options)
                raise DataverseError(
                    400,
                    "0x8004431A",
                    f"A validation error occurred. The value {value} of '{column.name}' on record "
                    f"of type '{table.logical_name}' is outside the valid range. "
                    f"Accepted Values: {accepted}",
                )
            return value
        if kind is AttributeType.DATETIME:
            try:
                return odata.normalize_datetime(value, date_only=column.date_only)
            except ValueError:
                raise _invalid_value(column, value) from None
        if kind is AttributeType.UNIQUEIDENTIFIER:
            if not isinstance(value, str) or not odata.GUID.match(value):
                raise _invalid_value(column, value)
            return value.lower()
        if kind is AttributeType.BOOLEAN:
            if not isinstance(value, bool):
                raise _invalid_value(column, value)
            return value
        number = _number(value)
        if number is None or (kind is AttributeType.INTEGER and not isinstance(number, int)):
            raise _invalid_value(column, value)
        if (column.min_value is not None and number < column.min_value) or (
            column.max_value is not None and number > column.max_value
        ):
            raise DataverseError(
                400,
                "0x80044330",
                f"A validation error occurred. The value {value} of '{column.name}' on record of "
                f"type '{table.logical_name}' is outside the valid range.",
            )
        return number

    def _bind(self, table: Table, prop: str, value: Any, row: Row, ctx: RequestContext) -> None:
        navigation = table.navigations.get(prop)
        if navigation is None:
            raise _payload_error(
                table.entity_set,
                f"An undeclared property '{prop}' which only has property annotations in the "
                "payload but no property value was found in the payload. In OData, only declared "
                "navigation properties and declared named streams can be represented as "
                "properties without values.",
            )
        if value is None:
            row[navigation.column] = None
            row[f"{navigation.column}@type"] = None
            return
        if not isinstance(value, str):
            raise _payload_error(table.entity_set, f"The value of '{prop}@odata.bind' is invalid.")
        ref = self.reference(value, ctx)
        activity = self.schema.table(ref.table).is_activity
        if ref.table not in navigation.targets and not (
            activity and ACTIVITY_SPACE in navigation.targets
        ):
            raise _payload_error(
                table.entity_set,
                f"The entity set of '{value}' is not valid for navigation property '{prop}'.",
            )
        if navigation.column == "ownerid" and ref.table == "systemuser":
            owner = self.get("systemuser", ref.id)
            if owner is not None and owner.get("isdisabled"):
                raise DataverseError(
                    400,
                    "0x80040225",
                    f"The specified user(Id = {ref.id}) is disabled. Consider enabling this user. "
                    "Additional Details: The specified user is either disabled or is not a member "
                    "of any business unit.",
                )
        row[navigation.column] = ref.id
        row[f"{navigation.column}@type"] = ref.table

    def reference(self, value: str, ctx: RequestContext) -> RecordRef:
        """Resolve an entity reference (`/set(id)`, `set(key='v')`, absolute URL or `$n`).

        404 0x80040217 when the row does not exist.
        """
        text = value.strip()
        if text.startswith("$") and text[1:].isdigit():
            found = ctx.content_ids.get(text[1:])
            if found is None:
                raise odata.bad_request(
                    f"Content-ID Reference: '{text}' does not exist in the batch context."
                )
            return found
        if API_PREFIX in text:
            text = text.split(API_PREFIX, 1)[1]
        text = unquote(text.lstrip("/"))
        entity_set, paren, rest = text.partition("(")
        table = self.schema.by_set.get(entity_set)
        if table is None or not paren or not rest.endswith(")"):
            raise odata.bad_request(f"The entity reference '{value}' is not valid.", "0x80048d19")
        address = odata.parse_key_predicate(rest[:-1])
        ref = self.resolve(table.logical_name, address)
        if ref is None:
            raise _missing(table, address)
        return ref

    def _deep_insert(
        self,
        table: Table,
        navigation: Navigation,
        body: Mapping[str, Any],
        row: Row,
        ctx: RequestContext,
    ) -> None:
        if len(navigation.targets) != 1:
            raise _payload_error(
                table.entity_set, f"Deep insert through '{navigation.name}' needs a single target."
            )
        ref = self.create(navigation.targets[0], body, ctx=ctx)
        row[navigation.column] = ref.id
        row[f"{navigation.column}@type"] = ref.table

    def _check_required(self, table: Table, row: Row) -> None:
        cached = self._required.get(table.logical_name)
        if cached is None or cached[0] != len(table.columns):
            names = tuple(
                c.name
                for c in table.columns.values()
                if c.required is RequiredLevel.SYSTEM_REQUIRED and c.valid_for_create
            )
            cached = self._required[table.logical_name] = (len(table.columns), names)
        for name in cached[1]:
            if row.get(name) is None:
                raise _required_error(table, name)
        if table.logical_name == "product":
            for name in ("defaultuomscheduleid", "defaultuomid"):
                if row.get(name) is None:
                    raise _required_error(table, name)

    def _check_create_rules(self, table: Table, row: Row) -> None:
        if table.logical_name == "product":
            unit = self.get("uom", row["defaultuomid"])
            if unit is None or unit.get("uomscheduleid") != row["defaultuomscheduleid"]:
                code, message = _REQUIRED_CODES[("product", "defaultuomid")]
                raise DataverseError(400, code, message)

    def _check_update_rules(self, table: Table, old: Row, changes: Row) -> None:
        if (
            table.logical_name == "product"
            and old.get("statecode") not in _DRAFT_EDITABLE_STATES
            and set(changes) - {"statecode", "statuscode"}
        ):
            raise DataverseError(
                400,
                "0x8004F995",
                "Only products in Draft or Under Revision state can be updated.",
            )

    def _check_state_change(
        self, table: Table, old: Row, changes: Row, row: Row, row_id: str
    ) -> None:
        if "statecode" not in changes and "statuscode" not in changes:
            return
        if not table.states:
            return
        statecode = changes.get("statecode", old.get("statecode"))
        state = table.states.get(statecode) if isinstance(statecode, int) else None
        if state is None:
            raise DataverseError(
                400,
                "0x80048408",
                "State code is invalid or state code is valid but status code is invalid for a "
                "specified state code.",
            )
        if table.logical_name == "opportunity" and statecode in _CLOSING_MESSAGES:
            label, message = state.label, _CLOSING_MESSAGES[statecode]
            raise DataverseError(
                400,
                "0x80040516",
                f"This message can not be used to set the state of opportunity to {label}. In "
                f"order to set state of opportunity to {label} use the {message}Request message.",
            )
        status = changes.get("statuscode")
        if status is None:
            status = state.default_status if "statecode" in changes else old.get("statuscode")
        if status not in state.statuses:
            raise _invalid_status(table, status, state.label, row_id)
        row["statecode"], row["statuscode"] = state.value, status

    def _derive(self, table: Table, row: Row) -> None:
        name = table.logical_name
        if name == "contact":
            parts = [row.get("firstname"), row.get("lastname")]
            row["fullname"] = " ".join(p for p in parts if p) or None
        elif name == "annotation":
            body = row.get("documentbody")
            row["isdocument"] = bool(body)
            row["filesize"] = len(base64.b64decode(body + "==")) if body else 0
            row["objecttypecode"] = row.get("objectid@type")
        elif name == "productpricelevel" and row.get("pricelevelid"):
            price_list = self.get("pricelevel", row["pricelevelid"])
            if price_list is not None:
                row["transactioncurrencyid"] = price_list.get("transactioncurrencyid")

    def _create_base_unit(self, schedule: Row, ctx: RequestContext) -> None:
        # Dataverse picks the id; derived from the group here, so equal writes give equal rows.
        unit_id = str(uuid.uuid5(_USER_NAMESPACE, "baseuom:" + str(schedule["uomscheduleid"])))
        unit = {
            "uomid": unit_id,
            "name": schedule.get("baseuomname") or "Primary Unit",
            "uomscheduleid": schedule["uomscheduleid"],
            "uomscheduleid@type": "uomschedule",
            "baseuom": unit_id,
            "baseuom@type": "uom",
            "quantity": 1,
            "isschedulebaseuom": True,
        }
        self._insert(self.schema.table("uom"), unit, ctx)

    def _has_keys(self, table: Table) -> bool:
        return bool(table.keys) or table.logical_name in _IMPLICIT_UNIQUE

    def keys_of(self, table: Table, row: Row) -> dict[str, str]:
        """The alternate-key index entries of ``row``: key name → encoded values."""
        found: dict[str, str] = {}
        for key in table.keys.values():
            values = tuple(row.get(c) for c in key.columns)
            if all(v is not None for v in values):
                found[key.logical_name] = key_value(values)
        implicit = _IMPLICIT_UNIQUE.get(table.logical_name)
        if implicit is not None:
            values = tuple(
                v.casefold() if isinstance(v := row.get(c), str) else v for c in implicit[0]
            )
            if all(v is not None for v in values):
                found["#implicit"] = key_value(values)
        return found

    def _duplicate_key_error(self, table: Table, key_name: str) -> DataverseError:
        if key_name == "#implicit":
            _, code, message = _IMPLICIT_UNIQUE[table.logical_name]
            return DataverseError(400, code, message)
        key = table.keys[key_name]
        return DataverseError(
            412,
            "0x80060892",
            f"Entity Key {key.schema_name} violated. A record with the same value for "
            f"{', '.join(key.columns)} already exists. A duplicate record cannot be created. "
            "Try again with a different value.",
        )


_QUERY_OPTIONS = frozenset(
    {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken"}
)
# Column types whose equality filters are answered from the store's term index.
_TERM_INDEXED = frozenset(
    {
        AttributeType.STRING,
        AttributeType.LOOKUP,
        AttributeType.CUSTOMER,
        AttributeType.OWNER,
        AttributeType.UNIQUEIDENTIFIER,
    }
)


def _index_after(rows: list[Row], table: Table, after_id: str | None) -> int:
    for index, row in enumerate(rows):
        if after_id is None or row[table.primary_id] > after_id:
            return index
    return len(rows)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return None
    return None


def _guid(text: str, table: Table) -> str:
    if not odata.GUID.match(text):
        raise odata.bad_request(
            f"The key in the request URI is not valid for resource "
            f"'Microsoft.Dynamics.CRM.{table.logical_name}'. Ensure that the names and number of "
            "key properties match the declared or alternate key properties for the resource "
            f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
        )
    return text.lower()


def _invalid_key(table: Table) -> DataverseError:
    return odata.bad_request(
        "The key in the request URI is not valid for resource "
        f"'Microsoft.Dynamics.CRM.{table.logical_name}'. Ensure that the names and number of key "
        "properties match the declared or alternate key properties for the resource "
        f"'Microsoft.Dynamics.CRM.{table.logical_name}'."
    )


def _missing(table: Table, address: Address) -> DataverseError:
    if isinstance(address, str):
        return not_found(table.logical_name, address.lower())
    return DataverseError(
        404,
        "0x80040217",
        f"A record with the specified key values does not exist in {table.logical_name} entity",
    )


def _invalid_status(table: Table, status: Any, state_label: str, row_id: str) -> DataverseError:
    return DataverseError(
        400,
        "0x80048408",
        f"{status} is not a valid status code for state code "
        f"{table.state_type_name}.{state_label.replace(' ', '')} on {table.logical_name} "
        f"with Id {row_id}.",
    )


def _required_error(table: Table, column: str) -> DataverseError:
    documented = _REQUIRED_CODES.get((table.logical_name, column))
    if documented is not None:
        return DataverseError(400, *documented)
    return DataverseError(
        400,
        "0x80040203",
        f"A validation error occurred. A value for the required attribute '{column}' of the "
        f"'{table.logical_name}' entity is missing.",
    )


def _without_keys(body: Mapping[str, Any], address: Address) -> Mapping[str, Any]:
    if isinstance(address, str):
        return body
    return {k: v for k, v in body.items() if k not in address}


# ----------------------------------------------------------------------------------------------
# The Web API dispatcher


class WebApi:
    """Executes Web API requests against `Records`; other modules add operations to it."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self._operations: dict[str, Operation] = {}
        self._bound_actions: dict[str, BoundAction] = {}

    def add_operation(self, segment: str, operation: Operation) -> None:
        """Route requests whose first path segment (before any `(`) is `segment`.

        E.g. `$batch`, `$metadata`, `WinOpportunity`, `EntityDefinitions`, `PublishXml`.
        """
        self._operations[segment] = operation

    def add_bound_action(self, name: str, action: BoundAction) -> None:
        """Route `POST /<set>/Microsoft.Dynamics.CRM.<name>` (e.g. CreateMultiple)."""
        self._bound_actions[name] = action

    async def handle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, ctx: RequestContext
    ) -> Reply:
        """Execute one request (an awaitable wrapper around `execute`, which does not yield)."""
        return self.execute(ApiRequest.parse(method, url, headers, body), ctx)

    def execute(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        """Execute one request; Dataverse errors become their documented error replies."""
        try:
            return self._dispatch(request, ctx)
        except DataverseError as error:
            return Reply.error(error)

    def _dispatch(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        path = request.path.rstrip("/")
        if path == "":
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            return self._service_document(ctx)
        segments = _split_path(path)
        head = segments[0]
        name = head.partition("(")[0]
        if name in self._operations:
            return self._operations[name](request, ctx)
        if head.startswith("$") and head[1:].isdigit():
            ref = self.records.reference(head, ctx)
            referenced = self.records.schema.table(ref.table)
            return self._on_record(request, referenced, ref.id, segments[1:], ctx)
        table = self.records.schema.by_set.get(name)
        if table is None:
            raise DataverseError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
        if "(" not in head:
            return self._on_collection(request, table, segments[1:], ctx)
        if not head.endswith(")"):
            raise odata.bad_request(f"Bad Request - Error in query syntax: '{head}'.")
        address = odata.parse_key_predicate(head[len(name) + 1 : -1])
        return self._on_record(request, table, address, segments[1:], ctx)

    def _service_document(self, ctx: RequestContext) -> Reply:
        sets = sorted(self.records.schema.by_set)
        return Reply.json(
            200,
            {
                "@odata.context": f"{ctx.base_url}$metadata",
                "value": [{"name": s, "kind": "EntitySet", "url": s} for s in sets],
            },
        )

    def _on_collection(
        self, request: ApiRequest, table: Table, rest: list[str], ctx: RequestContext
    ) -> Reply:
        if rest:
            action = rest[0].removeprefix("Microsoft.Dynamics.CRM.")
            if len(rest) == 1 and action in self._bound_actions and request.method == "POST":
                return self._bound_actions[action](request, table, ctx)
            if rest == ["$count"] and request.method == "GET":
                rows, _, count = self.records.query(
                    table.logical_name, {"$count": "true", "$select": table.primary_id}, ctx=ctx
                )
                return Reply(
                    200,
                    {"OData-Version": "4.0", "Content-Type": "text/plain"},
                    str(count if count is not None else len(rows)).encode(),
                )
            raise DataverseError(
                404, "0x8006088a", f"Resource not found for the segment '{rest[0]}'."
            )
        if request.method == "GET":
            return self._query(request, table, ctx)
        if request.method == "POST":
            ref = self.records.create(table.logical_name, request.json(), ctx=ctx)
            return self._write_reply(request, table, ref, created=True, ctx=ctx)
        raise _method_not_allowed(request.method)

    def _query(self, request: ApiRequest, table: Table, ctx: RequestContext) -> Reply:
        prefer = request.prefer
        size = odata.page_size(prefer)
        annotations = "odata.include-annotations" in prefer
        rows, cookie, count = self.records.query(
            table.logical_name,
            request.query,
            ctx=ctx,
            max_page_size=size,
            annotations=annotations,
        )
        select = request.query.get("$select")
        context = f"{ctx.base_url}$metadata#{table.entity_set}"
        if select:
            context += f"({select})"
        payload: dict[str, Any] = {"@odata.context": context}
        if count is not None:
            payload["@odata.count"] = min(count, odata.MAX_PAGE_SIZE)
            if count > odata.MAX_PAGE_SIZE:
                payload["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = True
        payload["value"] = rows
        if cookie is not None:
            params = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            params["$skiptoken"] = cookie.encode()
            payload["@odata.nextLink"] = (
                f"{ctx.base_url}{table.entity_set}?{urlencode(params, quote_via=quote, safe='$,')}"
            )
        headers = {}
        applied = [f"odata.maxpagesize={size}"] if size is not None else []
        if annotations:
            applied.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
        if applied:
            headers["Preference-Applied"] = ",".join(applied)
        return Reply.json(200, payload, headers)

    def _on_record(
        self,
        request: ApiRequest,
        table: Table,
        address: Address,
        rest: list[str],
        ctx: RequestContext,
    ) -> Reply:
        records = self.records
        if rest:
            return self._on_property(request, table, address, rest, ctx)
        method = request.method
        if method == "GET":
            payload = records.retrieve(
                table.logical_name,
                address,
                ctx=ctx,
                select=request.query.get("$select"),
                expand=request.query.get("$expand"),
                annotations="odata.include-annotations" in request.prefer,
            )
            context = f"{ctx.base_url}$metadata#{table.entity_set}/$entity"
            return Reply.json(200, {"@odata.context": context, **payload})
        if method == "PATCH":
            created, ref = records.upsert(
                table.logical_name,
                address,
                request.json(),
                ctx=ctx,
                if_match=request.headers.get("if-match"),
                if_none_match=request.headers.get("if-none-match"),
            )
            return self._write_reply(request, table, ref, created=created, ctx=ctx, upsert=True)
        if method == "DELETE":
            ref = records.delete(table.logical_name, address, ctx=ctx)
            return Reply(204, {"OData-Version": "4.0"}, entity=ref)
        raise _method_not_allowed(method)

    def _on_property(
        self,
        request: ApiRequest,
        table: Table,
        address: Address,
        rest: list[str],
        ctx: RequestContext,
    ) -> Reply:
        records = self.records
        ref = records.resolve(table.logical_name, address)
        if ref is None:
            raise _missing(table, address)
        name = rest[0]
        if len(rest) == 2 and rest[1] == "$ref" and request.method == "DELETE":
            records.clear_lookup(table.logical_name, ref.id, name, ctx=ctx)
            return Reply(204, {"OData-Version": "4.0"}, entity=ref)
        column = table.columns.get(name)
        if column is None or column.is_lookup:
            raise odata.unknown_property(name, table)
        if request.method == "GET":
            row = records.get(table.logical_name, ref.id) or {}
            if rest[1:] == ["$value"]:
                return Reply(200, {"Content-Type": "text/plain"}, str(row.get(name, "")).encode())
            context = f"{ctx.base_url}$metadata#{table.entity_set}({ref.id})/{name}"
            return Reply.json(200, {"@odata.context": context, "value": row.get(name)})
        if request.method == "PUT":
            records.update(table.logical_name, ref.id, {name: request.json().get("value")}, ctx=ctx)
            return Reply(204, {"OData-Version": "4.0"}, entity=ref)
        if request.method == "DELETE":
            records.update(table.logical_name, ref.id, {name: None}, ctx=ctx)
            return Reply(204, {"OData-Version": "4.0"}, entity=ref)
        raise _method_not_allowed(request.method)

    def _write_reply(
        self,
        request: ApiRequest,
        table: Table,
        ref: RecordRef,
        *,
        created: bool,
        ctx: RequestContext,
        upsert: bool = False,
    ) -> Reply:
        entity_id = f"{ctx.base_url}{table.entity_set}({ref.id})"
        if request.prefer.get("return") == "representation":
            payload = self.records.retrieve(
                table.logical_name,
                ref.id,
                ctx=ctx,
                select=request.query.get("$select"),
                expand=None if request.method == "PATCH" else request.query.get("$expand"),
            )
            context = f"{ctx.base_url}$metadata#{table.entity_set}/$entity"
            reply = Reply.json(
                201 if created else 200,
                {"@odata.context": context, **payload},
                {"Preference-Applied": "return=representation"},
            )
        else:
            headers = {"OData-Version": "4.0"}
            if created or upsert:
                headers["OData-EntityId"] = entity_id
                headers["Location"] = entity_id
            reply = Reply(204, headers)
        reply.entity = ref
        return reply


def _split_path(path: str) -> list[str]:
    segments: list[str] = []
    depth = 0
    current: list[str] = []
    quoted = False
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "/" and depth == 0 and not quoted:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def _method_not_allowed(method: str) -> DataverseError:
    return DataverseError(
        405, "0x80060888", f"The requested resource does not support http method '{method}'."
    )
