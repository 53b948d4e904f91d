"""Table definitions as data: the Sales tables of reference sections 4, 9 and 10.

A `Schema` is a plain collection of `Table`s holding `Column`s, single-valued `Navigation`s,
collection-valued `Collection`s and `AlternateKey`s. Nothing here talks HTTP or SQL, so the metadata
API can serve it and add custom columns, keys and tables at runtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from dataverse_emulator.errors import DataverseError

MAX_KEYS_PER_TABLE = 10
MAX_COLUMNS_PER_KEY = 16
ACTIVITY_SPACE = "activitypointer"
# A publisher customization prefix: 2-8 alphanumerics starting with a letter, then "_".
_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,7}_[a-z0-9_]+$")
_RESERVED_PREFIXES = ("msdyn_", "mscrm_", "adx_", "msft_")


class AttributeType(StrEnum):
    """Dataverse `AttributeTypeCode` names for the column types the emulator stores."""

    STRING = "String"
    MEMO = "Memo"
    INTEGER = "Integer"
    BIGINT = "BigInt"
    DECIMAL = "Decimal"
    DOUBLE = "Double"
    MONEY = "Money"
    DATETIME = "DateTime"
    BOOLEAN = "Boolean"
    PICKLIST = "Picklist"
    STATE = "State"
    STATUS = "Status"
    LOOKUP = "Lookup"
    CUSTOMER = "Customer"
    OWNER = "Owner"
    UNIQUEIDENTIFIER = "Uniqueidentifier"


LOOKUP_TYPES = frozenset({AttributeType.LOOKUP, AttributeType.CUSTOMER, AttributeType.OWNER})
OPTION_TYPES = frozenset({AttributeType.PICKLIST, AttributeType.STATE, AttributeType.STATUS})
NUMBER_TYPES = frozenset(
    {
        AttributeType.INTEGER,
        AttributeType.BIGINT,
        AttributeType.DECIMAL,
        AttributeType.DOUBLE,
        AttributeType.MONEY,
    }
)


class RequiredLevel(StrEnum):
    """`RequiredLevel.Value`: only SystemRequired is enforced on API calls (reference 8.3)."""

    NONE = "None"
    SYSTEM_REQUIRED = "SystemRequired"
    APPLICATION_REQUIRED = "ApplicationRequired"
    RECOMMENDED = "Recommended"


@dataclass(frozen=True)
class Column:
    """One attribute of a table."""

    name: str
    type: AttributeType
    required: RequiredLevel = RequiredLevel.NONE
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    options: dict[int, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    valid_for_create: bool = True
    valid_for_update: bool = True
    date_only: bool = False
    custom: bool = False

    @property
    def is_lookup(self) -> bool:
        """True for Lookup, Customer and Owner columns (read as `_<name>_value`)."""
        return self.type in LOOKUP_TYPES

    @property
    def read_name(self) -> str:
        """The property name in responses and queries: `_x_value` for lookups."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass(frozen=True)
class Navigation:
    """A single-valued navigation property bound with `<name>@odata.bind`."""

    name: str
    column: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Collection:
    """A collection-valued navigation property: rows of `table` whose `column` points here."""

    name: str
    table: str
    column: str


@dataclass(frozen=True)
class AlternateKey:
    """An alternate key; the emulator builds its index synchronously, so it is Active at once."""

    schema_name: str
    columns: tuple[str, ...]
    status: str = "Active"

    @property
    def logical_name(self) -> str:
        """Lower-cased schema name, as Dataverse derives it."""
        return self.schema_name.lower()


@dataclass(frozen=True)
class State:
    """A statecode value with its label, default statuscode and allowed statuscodes."""

    value: int
    label: str
    default_status: int
    statuses: dict[int, str]


@dataclass
class Table:
    """A Dataverse table: names, columns, navigation properties, keys and state model."""

    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    ownership: str = "UserOwned"  # UserOwned | OrganizationOwned | BusinessOwned | None
    is_activity: bool = False
    is_custom: bool = False
    default_state: int = 0
    states: dict[int, State] = field(default_factory=dict)
    columns: dict[str, Column] = field(default_factory=dict)
    navigations: dict[str, Navigation] = field(default_factory=dict)
    collections: dict[str, Collection] = field(default_factory=dict)
    keys: dict[str, AlternateKey] = field(default_factory=dict)
    # read name (`_x_value` for lookups) → column, precomputed for queries
    readable: dict[str, Column] = field(default_factory=dict)
    status_state: dict[int, int] = field(default_factory=dict)

    @property
    def space(self) -> str:
        """The primary-key space: all activities share one, like activitypointer."""
        return ACTIVITY_SPACE if self.is_activity else self.logical_name

    @property
    def state_type_name(self) -> str:
        """The enum type name used in state/status messages, e.g. `TaskState`."""
        return f"{self.logical_name.capitalize()}State"

    def add_column(self, column: Column) -> Column:
        """Add a column (custom ones need a publisher prefix) and derive its navigation names."""
        if column.custom:
            _check_prefix(column.name)
        if column.name in self.columns:
            raise DataverseError(
                400,
                "0x80044363",
                f"An attribute with the specified name {column.name} already exists.",
            )
        # Copy-on-write: a request iterating the old dicts meanwhile keeps a consistent snapshot.
        self.columns = {**self.columns, column.name: column}
        self.readable = {**self.readable, column.read_name: column}
        if column.is_lookup:
            self.navigations = {
                **self.navigations,
                **{nav.name: nav for nav in _navigations_for(self.logical_name, column)},
            }
        if column.type is AttributeType.STATUS:
            for state in self.states.values():
                for status in state.statuses:
                    self.status_state[status] = state.value
        return column

    def add_key(self, key: AlternateKey) -> AlternateKey:
        """Add an alternate key over existing key-capable columns (reference 3.1)."""
        _check_prefix(key.logical_name)
        if len(self.keys) >= MAX_KEYS_PER_TABLE:
            raise DataverseError(
                400,
                "0x80060890",
                f"The maximum number of keys ({MAX_KEYS_PER_TABLE}) for entity "
                f"'{self.logical_name}' has been reached.",
            )
        if not key.columns or len(key.columns) > MAX_COLUMNS_PER_KEY:
            raise DataverseError(
                400, "0x80060891", f"An entity key must have 1 to {MAX_COLUMNS_PER_KEY} columns."
            )
        for name in key.columns:
            column = self.columns.get(name)
            if column is None or column.type not in _KEY_TYPES:
                raise DataverseError(
                    400,
                    "0x80060891",
                    f"Attribute '{name}' of entity '{self.logical_name}' can't be part of a key.",
                )
        self.keys = {**self.keys, key.logical_name: key}
        return key

    def key_for(self, names: Iterable[str]) -> AlternateKey | None:
        """The alternate key made of exactly these columns, if one is defined."""
        wanted = frozenset(names)
        for key in self.keys.values():
            if frozenset(key.columns) == wanted:
                return key
        return None


_KEY_TYPES = frozenset(
    {
        AttributeType.STRING,
        AttributeType.INTEGER,
        AttributeType.DECIMAL,
        AttributeType.DATETIME,
        AttributeType.PICKLIST,
        AttributeType.LOOKUP,
        AttributeType.CUSTOMER,
        AttributeType.OWNER,
    }
)


def _check_prefix(name: str) -> None:
    if not _PREFIX.match(name) or name.startswith(_RESERVED_PREFIXES):
        raise DataverseError(
            400,
            "0x80044366",
            f"The schema name '{name}' must start with a valid customization prefix "
            "(for example 'new_') followed by an underscore.",
        )


def _navigations_for(table: str, column: Column) -> Iterator[Navigation]:
    if column.name == "ownerid" or len(column.targets) == 1:
        yield Navigation(column.name, column.name, column.targets)
        return
    for target in column.targets:
        if column.name == "regardingobjectid":
            name = f"regardingobjectid_{target}_{table}"
        else:
            name = f"{column.name}_{target}"
        yield Navigation(name, column.name, (target,))


class Schema:
    """All tables, addressable by logical name and by entity set name."""

    def __init__(self, tables: Iterable[Table] = ()) -> None:
        self.tables: dict[str, Table] = {}
        self.by_set: dict[str, Table] = {}
        for table in tables:
            self.add_table(table)

    def add_table(self, table: Table) -> Table:
        """Register a table (custom tables need a publisher prefix)."""
        if table.is_custom:
            _check_prefix(table.logical_name)
        if table.logical_name in self.tables:
            raise DataverseError(
                400,
                "0x80044363",
                f"An entity with the specified name {table.logical_name} already exists.",
            )
        self.tables[table.logical_name] = table
        self.by_set[table.entity_set] = table
        return table

    def table(self, logical_name: str) -> Table:
        """The table with this logical name (KeyError if unknown)."""
        return self.tables[logical_name]

    def custom_table_count(self) -> int:
        """How many custom tables exist (the licence profile caps this)."""
        return sum(1 for t in self.tables.values() if t.is_custom)


# ----------------------------------------------------------------------------------------------
# Column builders: short names keep the table definitions below readable as data.

_SR = RequiredLevel.SYSTEM_REQUIRED
_AR = RequiredLevel.APPLICATION_REQUIRED


def _s(name: str, max_length: int, required: RequiredLevel = RequiredLevel.NONE) -> Column:
    return Column(name, AttributeType.STRING, required, max_length=max_length)


def _memo(name: str, max_length: int = 2000) -> Column:
    return Column(name, AttributeType.MEMO, max_length=max_length)


def _int(name: str, lo: float = -2147483648, hi: float = 2147483647) -> Column:
    return Column(name, AttributeType.INTEGER, min_value=lo, max_value=hi)


def _dec(name: str, required: RequiredLevel = RequiredLevel.NONE) -> Column:
    return Column(name, AttributeType.DECIMAL, required, min_value=-1e11, max_value=1e11)


def _money(name: str) -> Column:
    return Column(name, AttributeType.MONEY, min_value=-922337203685477, max_value=922337203685477)


def _dt(name: str) -> Column:
    return Column(name, AttributeType.DATETIME)


def _date(name: str) -> Column:
    return Column(name, AttributeType.DATETIME, date_only=True)


def _bool(name: str) -> Column:
    return Column(name, AttributeType.BOOLEAN, options={0: "No", 1: "Yes"})


def _pick(
    name: str, options: dict[int, str], required: RequiredLevel = RequiredLevel.NONE
) -> Column:
    return Column(name, AttributeType.PICKLIST, required, options=options)


def _lookup(name: str, *targets: str, required: RequiredLevel = RequiredLevel.NONE) -> Column:
    kind = AttributeType.CUSTOMER if targets == ("account", "contact") else AttributeType.LOOKUP
    return Column(name, kind, required, targets=targets)


def _ro(column: Column) -> Column:
    return replace(column, valid_for_create=False, valid_for_update=False)


def _create_only(column: Column) -> Column:
    return replace(column, valid_for_update=False)


def _states(*states: State) -> dict[int, State]:
    return {s.value: s for s in states}


_ACTIVE_INACTIVE = _states(
    State(0, "Active", 1, {1: "Active"}), State(1, "Inactive", 2, {2: "Inactive"})
)


def _table(
    logical_name: str,
    entity_set: str,
    primary_name: str | None,
    columns: Iterable[Column],
    *,
    ownership: str = "UserOwned",
    states: dict[int, State] | None = None,
    default_state: int = 0,
    is_activity: bool = False,
    primary_id: str | None = None,
    audit: bool = True,
    currency: bool = False,
) -> Table:
    table = Table(
        logical_name,
        entity_set,
        primary_id or f"{logical_name}id",
        primary_name,
        ownership=ownership,
        is_activity=is_activity,
        default_state=default_state,
        states=states or {},
    )
    table.add_column(Column(table.primary_id, AttributeType.UNIQUEIDENTIFIER, _SR))
    for column in columns:
        table.add_column(column)
    if audit:
        for column in (
            _ro(_dt("createdon")),
            _ro(_dt("modifiedon")),
            _ro(_lookup("createdby", "systemuser")),
            _ro(_lookup("modifiedby", "systemuser")),
            _create_only(_dt("overriddencreatedon")),
            _create_only(_int("importsequencenumber")),
            _ro(Column("versionnumber", AttributeType.BIGINT)),
        ):
            table.add_column(column)
    if ownership == "UserOwned":
        table.add_column(
            Column("ownerid", AttributeType.OWNER, _SR, targets=("systemuser", "team"))
        )
        table.add_column(_ro(_lookup("owningbusinessunit", "businessunit")))
    if currency:
        table.add_column(_lookup("transactioncurrencyid", "transactioncurrency"))
        table.add_column(_ro(Column("exchangerate", AttributeType.DECIMAL)))
    if states:
        state_options = {s.value: s.label for s in states.values()}
        status_options = {k: v for s in states.values() for k, v in s.statuses.items()}
        table.add_column(
            Column(
                "statecode", AttributeType.STATE, _SR, options=state_options, valid_for_create=False
            )
        )
        table.add_column(Column("statuscode", AttributeType.STATUS, options=status_options))
    return table


def _address(prefix: str) -> list[Column]:
    return [
        _s(f"{prefix}_name", 200),
        _s(f"{prefix}_line1", 250),
        _s(f"{prefix}_line2", 250),
        _s(f"{prefix}_line3", 250),
        _s(f"{prefix}_city", 80),
        _s(f"{prefix}_stateorprovince", 50),
        _s(f"{prefix}_postalcode", 20),
        _s(f"{prefix}_country", 80),
        _s(f"{prefix}_county", 50),
        _s(f"{prefix}_fax", 50),
        _s(f"{prefix}_telephone1", 50),
        _pick(f"{prefix}_addresstypecode", {1: "Bill To", 2: "Ship To", 3: "Primary", 4: "Other"}),
    ]


_PRIORITY = {0: "Low", 1: "Normal", 2: "High"}
_REGARDING = ("account", "contact", "opportunity", "quote", "invoice")
_PRODUCT_TYPE = {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"}


def _activity_columns(subject_length: int = 200, description_length: int = 2000) -> list[Column]:
    return [
        _s("subject", subject_length, _AR),
        _memo("description", description_length),
        _dt("scheduledstart"),
        _dt("scheduledend"),
        _dt("actualstart"),
        _dt("actualend"),
        _int("actualdurationminutes", 0),
        _int("scheduleddurationminutes", 0),
        _pick("prioritycode", _PRIORITY),
        _lookup("regardingobjectid", *_REGARDING),
        _ro(_s("activitytypecode", 64)),
    ]


def _line_columns(header: str) -> list[Column]:
    return [
        _lookup(f"{header}id", header, required=_SR),
        _lookup("productid", "product"),
        _bool("isproductoverridden"),
        _s("productdescription", 500),
        _lookup("uomid", "uom"),
        Column("quantity", AttributeType.DECIMAL, _AR, min_value=0, max_value=1e9),
        _money("priceperunit"),
        _bool("ispriceoverridden"),
        _money("manualdiscountamount"),
        _money("tax"),
        _ro(_money("baseamount")),
        _ro(_money("extendedamount")),
        _int("lineitemnumber"),
        _int("sequencenumber"),
        _memo("description"),
    ]


def _activity(
    logical_name: str,
    entity_set: str,
    states: dict[int, State],
    extra: list[Column],
    **kwargs: int,
) -> Table:
    return _table(
        logical_name,
        entity_set,
        "subject",
        _activity_columns(**kwargs) + extra,
        states=states,
        is_activity=True,
        primary_id="activityid",
    )


def sales_schema() -> Schema:
    """A fresh schema holding the standard tables the migration writes (reference 4, 9, 10)."""
    account = _table(
        "account",
        "accounts",
        "name",
        [
            _s("name", 160, _AR),
            _s("accountnumber", 20),
            _pick(
                "customertypecode",
                {
                    1: "Competitor",
                    2: "Consultant",
                    3: "Customer",
                    4: "Investor",
                    5: "Partner",
                    6: "Influencer",
                    7: "Press",
                    8: "Prospect",
                    9: "Reseller",
                    10: "Supplier",
                    11: "Vendor",
                    12: "Other",
                },
            ),
            _pick("accountcategorycode", {1: "Preferred Customer", 2: "Standard"}),
            _pick("paymenttermscode", {1: "Net 30", 2: "2% 10, Net 30", 3: "Net 45", 4: "Net 60"}),
            *_address("address1"),
            *_address("address2"),
            _s("telephone1", 50),
            _s("telephone2", 50),
            _s("fax", 50),
            _s("emailaddress1", 100),
            _s("emailaddress2", 100),
            _s("websiteurl", 200),
            _memo("description"),
            _money("revenue"),
            _money("creditlimit"),
            _bool("creditonhold"),
            _bool("donotemail"),
            _bool("donotphone"),
            _int("numberofemployees", 0, 1_000_000_000),
            _lookup("parentaccountid", "account"),
            _lookup("primarycontactid", "contact"),
        ],
        states=_ACTIVE_INACTIVE,
        currency=True,
    )
    contact = _table(
        "contact",
        "contacts",
        "fullname",
        [
            _s("firstname", 50),
            _s("lastname", 50, _AR),
            _s("middlename", 50),
            _ro(_s("fullname", 160)),
            _s("salutation", 100),
            _s("jobtitle", 100),
            _s("department", 100),
            _s("emailaddress1", 100),
            _s("emailaddress2", 100),
            _s("telephone1", 50),
            _s("telephone2", 50),
            _s("mobilephone", 50),
            _s("fax", 50),
            _date("birthdate"),
            _pick("gendercode", {1: "Male", 2: "Female"}),
            *_address("address1"),
            _memo("description"),
            _bool("donotemail"),
            _bool("donotphone"),
            _lookup("parentcustomerid", "account", "contact"),
        ],
        states=_ACTIVE_INACTIVE,
        currency=True,
    )
    opportunity = _table(
        "opportunity",
        "opportunities",
        "name",
        [
            _s("name", 300, _AR),
            Column("customerid", AttributeType.CUSTOMER, _AR, targets=("account", "contact")),
            _lookup("parentaccountid", "account"),
            _lookup("parentcontactid", "contact"),
            _lookup("pricelevelid", "pricelevel"),
            _money("estimatedvalue"),
            _date("estimatedclosedate"),
            _int("closeprobability", 0, 100),
            _money("actualvalue"),
            _date("actualclosedate"),
            _money("budgetamount"),
            _pick(
                "purchasetimeframe",
                {
                    0: "Immediate",
                    1: "This Quarter",
                    2: "Next Quarter",
                    3: "This Year",
                    4: "Unknown",
                },
            ),
            _pick("salesstage", {0: "Qualify", 1: "Develop", 2: "Propose", 3: "Close"}),
            _pick("salesstagecode", {1: "Default Value"}),
            _s("stepname", 200),
            _pick(
                "msdyn_forecastcategory",
                {
                    100000001: "Pipeline",
                    100000002: "Best case",
                    100000003: "Committed",
                    100000004: "Omitted",
                    100000005: "Won",
                    100000006: "Lost",
                },
            ),
            _memo("description"),
        ],
        states=_states(
            State(0, "Open", 1, {1: "In Progress", 2: "On Hold"}),
            State(1, "Won", 3, {3: "Won"}),
            State(2, "Lost", 4, {4: "Canceled", 5: "Out-Sold"}),
        ),
        currency=True,
    )
    closed_activity = {
        0: State(0, "Open", 1, {1: "Open"}),
        1: State(1, "Completed", 2, {2: "Completed"}),
        2: State(2, "Canceled", 3, {3: "Canceled"}),
    }
    opportunityclose = _activity(
        "opportunityclose",
        "opportunitycloses",
        closed_activity,
        [_lookup("opportunityid", "opportunity"), _money("actualrevenue")],
    )
    phonecall = _activity(
        "phonecall",
        "phonecalls",
        _states(
            State(0, "Open", 1, {1: "Open"}),
            State(1, "Completed", 2, {2: "Made", 4: "Received"}),
            State(2, "Canceled", 3, {3: "Canceled"}),
        ),
        [_s("phonenumber", 200), _bool("directioncode")],
    )
    task = _activity(
        "task",
        "tasks",
        _states(
            State(
                0,
                "Open",
                2,
                {2: "Not Started", 3: "In Progress", 4: "Waiting on someone else", 7: "Deferred"},
            ),
            State(1, "Completed", 5, {5: "Completed"}),
            State(2, "Canceled", 6, {6: "Canceled"}),
        ),
        [_int("percentcomplete", 0, 100), _s("category", 250), _s("subcategory", 250)],
    )
    appointment = _activity(
        "appointment",
        "appointments",
        _states(
            State(0, "Open", 1, {1: "Free", 2: "Tentative"}),
            State(1, "Completed", 3, {3: "Completed"}),
            State(2, "Canceled", 4, {4: "Canceled"}),
            State(3, "Scheduled", 5, {5: "Busy", 6: "Out of Office"}),
        ),
        [_s("location", 200), _bool("isalldayevent")],
    )
    email = _activity(
        "email",
        "emails",
        _states(
            State(0, "Open", 1, {1: "Draft", 8: "Failed"}),
            State(
                1,
                "Completed",
                2,
                {2: "Completed", 3: "Sent", 4: "Received", 6: "Pending Send", 7: "Sending"},
            ),
            State(2, "Canceled", 5, {5: "Canceled"}),
        ),
        [_bool("directioncode"), _s("sender", 250), _s("torecipients", 500)],
        description_length=1_048_576,
    )
    activitypointer = _table(
        "activitypointer",
        "activitypointers",
        "subject",
        _activity_columns(),
        states=_states(
            State(0, "Open", 1, {}),
            State(1, "Completed", 2, {}),
            State(2, "Canceled", 3, {}),
            State(3, "Scheduled", 5, {}),
        ),
        is_activity=True,
        primary_id="activityid",
    )
    activityparty = _table(
        "activityparty",
        "activityparties",
        None,
        [
            _lookup("activityid", ACTIVITY_SPACE, required=_SR),
            _lookup("partyid", "account", "contact", "systemuser"),
            _pick(
                "participationtypemask",
                {
                    1: "Sender",
                    2: "To Recipient",
                    3: "CC Recipient",
                    4: "BCC Recipient",
                    5: "Required attendee",
                    6: "Optional attendee",
                    7: "Organizer",
                    8: "Regarding",
                    9: "Owner",
                    10: "Resource",
                    11: "Customer",
                },
                _SR,
            ),
            _s("addressused", 200),
        ],
        ownership="None",
        audit=False,
    )
    for activity in (phonecall, task, appointment, email, opportunityclose):
        activity.collections[f"{activity.logical_name}_activity_parties"] = Collection(
            f"{activity.logical_name}_activity_parties", "activityparty", "activityid"
        )
    annotation = _table(
        "annotation",
        "annotations",
        "subject",
        [
            _s("subject", 500),
            _memo("notetext", 100_000),
            _s("filename", 255),
            _s("mimetype", 256),
            # its size limit is the configured attachment limit, checked by the records layer
            Column("documentbody", AttributeType.MEMO),
            _ro(_int("filesize", 0)),
            _ro(_bool("isdocument")),
            _ro(_s("objecttypecode", 64)),
            _lookup(
                "objectid",
                "account",
                "contact",
                "opportunity",
                "quote",
                "invoice",
                "product",
                "phonecall",
                "task",
                "appointment",
                "email",
            ),
        ],
    )
    uomschedule = _table(
        "uomschedule",
        "uomschedules",
        "name",
        [_s("name", 200, _SR), _s("baseuomname", 100), _memo("description")],
        ownership="OrganizationOwned",
        states=_ACTIVE_INACTIVE,
    )
    uom = _table(
        "uom",
        "uoms",
        "name",
        [
            _s("name", 100, _SR),
            _lookup("uomscheduleid", "uomschedule", required=_SR),
            _lookup("baseuom", "uom"),
            Column("quantity", AttributeType.DECIMAL, min_value=0, max_value=1e9),
            _ro(_bool("isschedulebaseuom")),
        ],
        ownership="OrganizationOwned",
    )
    product = _table(
        "product",
        "products",
        "name",
        [
            _s("name", 100, _AR),
            _s("productnumber", 100, _SR),
            _memo("description"),
            _lookup("defaultuomscheduleid", "uomschedule", required=_AR),
            _lookup("defaultuomid", "uom", required=_AR),
            _int("quantitydecimal", 0, 5),
            _create_only(
                _pick(
                    "productstructure",
                    {1: "Product", 2: "Product Family", 3: "Product Bundle"},
                    _SR,
                )
            ),
            _pick("producttypecode", _PRODUCT_TYPE),
            replace(_lookup("pricelevelid", "pricelevel"), valid_for_create=False),
            _money("price"),
            _money("standardcost"),
            _money("currentcost"),
        ],
        ownership="OrganizationOwned",
        states=_states(
            State(0, "Active", 1, {1: "Active"}),
            State(1, "Retired", 2, {2: "Retired"}),
            State(2, "Draft", 0, {0: "Draft"}),
            State(3, "Under Revision", 3, {3: "Under Revision"}),
        ),
        default_state=2,
        currency=True,
    )
    pricelevel = _table(
        "pricelevel",
        "pricelevels",
        "name",
        [
            _s("name", 100, _SR),
            _date("begindate"),
            _date("enddate"),
            _memo("description"),
        ],
        ownership="OrganizationOwned",
        states=_states(
            State(0, "Active", 100001, {100001: "Active"}),
            State(1, "Inactive", 100002, {100002: "Inactive"}),
        ),
        currency=True,
    )
    productpricelevel = _table(
        "productpricelevel",
        "productpricelevels",
        None,
        [
            _lookup("pricelevelid", "pricelevel", required=_SR),
            _lookup("productid", "product", required=_SR),
            _lookup("uomid", "uom", required=_AR),
            _lookup("uomscheduleid", "uomschedule"),
            _money("amount"),
            _pick(
                "pricingmethodcode",
                {
                    1: "Currency Amount",
                    2: "Percent of List",
                    3: "Markup - Current Cost",
                    4: "Margin - Current Cost",
                    5: "Markup - Standard Cost",
                    6: "Margin - Standard Cost",
                },
            ),
            _pick(
                "quantitysellingcode",
                {1: "No Control", 2: "Whole", 3: "Whole and Fractional"},
            ),
            _dec("percentage"),
        ],
        ownership="None",
        currency=True,
    )
    quote = _table(
        "quote",
        "quotes",
        "name",
        [
            _s("name", 300, _AR),
            _s("quotenumber", 100, _SR),
            Column("customerid", AttributeType.CUSTOMER, _AR, targets=("account", "contact")),
            _lookup("pricelevelid", "pricelevel", required=_AR),
            _lookup("opportunityid", "opportunity"),
            _dt("effectivefrom"),
            _dt("effectiveto"),
            _dt("expireson"),
            _memo("description"),
            _ro(_money("totalamount")),
        ],
        states=_states(
            State(0, "Draft", 1, {1: "In Progress"}),
            State(1, "Active", 2, {2: "In Progress", 3: "Open"}),
            State(2, "Won", 4, {4: "Won"}),
            State(3, "Closed", 5, {5: "Lost", 6: "Canceled", 7: "Revised"}),
        ),
        currency=True,
    )
    quotedetail = _table(
        "quotedetail",
        "quotedetails",
        "quotedetailname",
        [
            _s("quotedetailname", 100),
            _pick("producttypecode", _PRODUCT_TYPE, _SR),
            *_line_columns("quote"),
        ],
        ownership="None",
        currency=True,
    )
    opportunityproduct = _table(
        "opportunityproduct",
        "opportunityproducts",
        "opportunityproductname",
        [_s("opportunityproductname", 100), *_line_columns("opportunity")],
        ownership="None",
        currency=True,
    )
    invoice = _table(
        "invoice",
        "invoices",
        "name",
        [
            _s("name", 300, _AR),
            _s("invoicenumber", 100, _SR),
            Column("customerid", AttributeType.CUSTOMER, _AR, targets=("account", "contact")),
            _lookup("pricelevelid", "pricelevel", required=_AR),
            _lookup("opportunityid", "opportunity"),
            _dt("datedelivered"),
            _date("duedate"),
            _memo("description"),
            _ro(_money("totalamount")),
        ],
        states=_states(
            State(
                0,
                "Active",
                1,
                {1: "New", 2: "Partially Shipped", 4: "Billed", 5: "Booked", 6: "Installed"},
            ),
            State(1, "Closed", 3, {3: "Canceled", 7: "Paid in Full"}),
            State(2, "Paid", 100001, {100001: "Complete", 100002: "Partial"}),
            State(3, "Canceled", 100003, {100003: "Canceled"}),
        ),
        currency=True,
    )
    invoicedetail = _table(
        "invoicedetail",
        "invoicedetails",
        "invoicedetailname",
        [_s("invoicedetailname", 100), *_line_columns("invoice")],
        ownership="None",
        currency=True,
    )
    systemuser = _table(
        "systemuser",
        "systemusers",
        "fullname",
        [
            _s("firstname", 256),
            _s("lastname", 256),
            _s("fullname", 200),
            _s("internalemailaddress", 100),
            _s("domainname", 1024),
            _bool("isdisabled"),
            _bool("islicensed"),
            Column("azureactivedirectoryobjectid", AttributeType.UNIQUEIDENTIFIER),
            Column("applicationid", AttributeType.UNIQUEIDENTIFIER),
            _lookup("businessunitid", "businessunit", required=_SR),
            _pick(
                "accessmode",
                {
                    0: "Read-Write",
                    1: "Administrative",
                    2: "Read",
                    3: "Support User",
                    4: "Non-interactive",
                    5: "Delegated Admin",
                },
            ),
        ],
        ownership="BusinessOwned",
    )
    team = _table(
        "team",
        "teams",
        "name",
        [
            _s("name", 160, _SR),
            _pick("teamtype", {0: "Owner", 1: "Access", 2: "Security Group", 3: "Office Group"}),
            _lookup("businessunitid", "businessunit", required=_SR),
            _lookup("administratorid", "systemuser"),
            _memo("description"),
        ],
        ownership="BusinessOwned",
    )
    transactioncurrency = _table(
        "transactioncurrency",
        "transactioncurrencies",
        "currencyname",
        [
            _s("currencyname", 100, _SR),
            _s("isocurrencycode", 5, _SR),
            _s("currencysymbol", 10, _SR),
            Column("exchangerate", AttributeType.DECIMAL, _SR, min_value=0, max_value=1e11),
            _int("currencyprecision", 0, 4),
        ],
        ownership="OrganizationOwned",
        states=_ACTIVE_INACTIVE,
    )
    businessunit = _table(
        "businessunit",
        "businessunits",
        "name",
        [
            _s("name", 160, _SR),
            _lookup("parentbusinessunitid", "businessunit"),
            _s("divisionname", 100),
            _bool("isdisabled"),
        ],
        ownership="BusinessOwned",
    )
    return Schema(
        [
            account,
            contact,
            opportunity,
            opportunityclose,
            product,
            uomschedule,
            uom,
            pricelevel,
            productpricelevel,
            quote,
            quotedetail,
            opportunityproduct,
            invoice,
            invoicedetail,
            phonecall,
            task,
            appointment,
            email,
            activitypointer,
            activityparty,
            annotation,
            systemuser,
            team,
            transactioncurrency,
            businessunit,
        ]
    )
