"""The Metadata API (reference sections 11 and 3.3): table definitions, custom schema, `$metadata`.

`EntityDefinitions` serves the live `Schema` as `EntityMetadata`, `AttributeMetadata` and
`EntityKeyMetadata` (with `$select`, `$filter` and `$expand`, reusing `odata`'s filter parser on
small property tables). Custom columns, alternate keys and custom tables created here go straight
into the shared `Schema`, so records can use them in the next request. Metadata writes run one at
a time, as Dataverse's customization lock makes them; the emulator queues instead of failing.

What Dataverse knows but `schema.Column` does not hold (schema-name casing, labels, precision,
object type codes of custom tables) is kept here. Every definition a write adds is also saved in the
store's database (`Store.save_definition`), in order, and restored when an emulator starts on that
database, so a restarted emulator serves the same schema as well as the same rows.
"""

from __future__ import annotations

import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dataverse_emulator import odata
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.records import ApiRequest, Records, Reply, RequestContext, WebApi
from dataverse_emulator.schema import (
    AlternateKey,
    AttributeType,
    Column,
    RequiredLevel,
    State,
    Table,
)
from dataverse_emulator.store import DuplicateKeyError

PROFESSIONAL_CUSTOM_TABLE_LIMIT = 15
MAX_KEY_BYTES = 900
FIRST_CUSTOM_OBJECT_TYPE_CODE = 10000
FIRST_CUSTOM_OPTION_VALUE = 100_000_000  # the default publisher's option value prefix, 10000

INVALID_ARGUMENT = "0x80040203"
OBJECT_DOES_NOT_EXIST = "0x80040217"
ALREADY_EXISTS = "0x80044363"
INVALID_KEY_ATTRIBUTES = "0x80060891"
APP_ENTITY_LIMIT_EXCEEDED = "0x80048547"
RESOURCE_NOT_FOUND = "0x8006088a"

_CRM = "Microsoft.Dynamics.CRM."
_LANGUAGE = 1033
_IDS = uuid.UUID("0f5c1d6e-2b7a-4c39-9e1d-5a8b3c7d9e21")
_CAST = re.compile(r"^(?:Microsoft\.Dynamics\.CRM\.)?(\w+AttributeMetadata)$")
# Enum literals (`Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'`) compare as their names.
_ENUM_LITERAL = re.compile(r"Microsoft\.Dynamics\.CRM\.\w+('(?:[^']|'')*')")
_QUERY_OPTIONS = frozenset({"$select", "$filter", "$expand"})
# Kinds of saved definitions (`Store.save_definition`).
_TABLE, _COLUMN, _KEY = "table", "column", "key"

# Built-in tables: (SchemaName, ObjectTypeCode, DisplayName, DisplayCollectionName).
_BUILT_IN: dict[str, tuple[str, int, str, str]] = {
    "account": ("Account", 1, "Account", "Accounts"),
    "contact": ("Contact", 2, "Contact", "Contacts"),
    "opportunity": ("Opportunity", 3, "Opportunity", "Opportunities"),
    "annotation": ("Annotation", 5, "Note", "Notes"),
    "systemuser": ("SystemUser", 8, "User", "Users"),
    "team": ("Team", 9, "Team", "Teams"),
    "businessunit": ("BusinessUnit", 10, "Business Unit", "Business Units"),
    "activityparty": ("ActivityParty", 135, "Activity Party", "Activity Parties"),
    "pricelevel": ("PriceLevel", 1022, "Price List", "Price Lists"),
    "product": ("Product", 1024, "Product", "Products"),
    "productpricelevel": ("ProductPriceLevel", 1026, "Price List Item", "Price List Items"),
    "uom": ("UoM", 1055, "Unit", "Units"),
    "uomschedule": ("UoMSchedule", 1056, "Unit Group", "Unit Groups"),
    "opportunityproduct": ("OpportunityProduct", 1083, "Opportunity Product", "Opportunity Lines"),
    "quote": ("Quote", 1084, "Quote", "Quotes"),
    "quotedetail": ("QuoteDetail", 1085, "Quote Product", "Quote Lines"),
    "invoice": ("Invoice", 1090, "Invoice", "Invoices"),
    "invoicedetail": ("InvoiceDetail", 1091, "Invoice Product", "Invoice Lines"),
    "activitypointer": ("ActivityPointer", 4200, "Activity", "Activities"),
    "appointment": ("Appointment", 4201, "Appointment", "Appointments"),
    "email": ("Email", 4202, "Email", "Email Messages"),
    "opportunityclose": ("OpportunityClose", 4208, "Opportunity Close", "Opportunity Close"),
    "phonecall": ("PhoneCall", 4210, "Phone Call", "Phone Calls"),
    "task": ("Task", 4212, "Task", "Tasks"),
    "transactioncurrency": ("TransactionCurrency", 9105, "Currency", "Currencies"),
}

# AttributeType → (derived metadata type, AttributeTypeName value).
_ATTRIBUTE_TYPES: dict[AttributeType, tuple[str, str]] = {
    AttributeType.STRING: ("StringAttributeMetadata", "StringType"),
    AttributeType.MEMO: ("MemoAttributeMetadata", "MemoType"),
    AttributeType.INTEGER: ("IntegerAttributeMetadata", "IntegerType"),
    AttributeType.BIGINT: ("BigIntAttributeMetadata", "BigIntType"),
    AttributeType.DECIMAL: ("DecimalAttributeMetadata", "DecimalType"),
    AttributeType.DOUBLE: ("DoubleAttributeMetadata", "DoubleType"),
    AttributeType.MONEY: ("MoneyAttributeMetadata", "MoneyType"),
    AttributeType.DATETIME: ("DateTimeAttributeMetadata", "DateTimeType"),
    AttributeType.BOOLEAN: ("BooleanAttributeMetadata", "BooleanType"),
    AttributeType.PICKLIST: ("PicklistAttributeMetadata", "PicklistType"),
    AttributeType.STATE: ("StateAttributeMetadata", "StateType"),
    AttributeType.STATUS: ("StatusAttributeMetadata", "StatusType"),
    AttributeType.LOOKUP: ("LookupAttributeMetadata", "LookupType"),
    AttributeType.CUSTOMER: ("LookupAttributeMetadata", "CustomerType"),
    AttributeType.OWNER: ("LookupAttributeMetadata", "OwnerType"),
    AttributeType.UNIQUEIDENTIFIER: ("UniqueIdentifierAttributeMetadata", "UniqueidentifierType"),
}
# Properties each derived attribute type adds to AttributeMetadata.
_DERIVED_PROPERTIES: dict[str, frozenset[str]] = {
    "StringAttributeMetadata": frozenset({"MaxLength", "Format", "FormatName", "DatabaseLength"}),
    "MemoAttributeMetadata": frozenset({"MaxLength", "Format"}),
    "IntegerAttributeMetadata": frozenset({"MinValue", "MaxValue", "Format"}),
    "BigIntAttributeMetadata": frozenset({"MinValue", "MaxValue"}),
    "DecimalAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision"}),
    "DoubleAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision"}),
    "MoneyAttributeMetadata": frozenset({"MinValue", "MaxValue", "Precision", "PrecisionSource"}),
    "DateTimeAttributeMetadata": frozenset({"Format", "DateTimeBehavior"}),
    "BooleanAttributeMetadata": frozenset({"DefaultValue"}),
    "PicklistAttributeMetadata": frozenset({"DefaultFormValue"}),
    "StateAttributeMetadata": frozenset(),
    "StatusAttributeMetadata": frozenset(),
    "LookupAttributeMetadata": frozenset({"Targets"}),
    "UniqueIdentifierAttributeMetadata": frozenset(),
}
_OPTION_SET_NAVIGATIONS: dict[str, frozenset[str]] = {
    "PicklistAttributeMetadata": frozenset({"OptionSet", "GlobalOptionSet"}),
    "StateAttributeMetadata": frozenset({"OptionSet"}),
    "StatusAttributeMetadata": frozenset({"OptionSet"}),
    "BooleanAttributeMetadata": frozenset({"OptionSet"}),
}
# The column types the Web API creates through `POST .../Attributes` (lookups need a relationship).
_CREATABLE: dict[str, AttributeType] = {
    "StringAttributeMetadata": AttributeType.STRING,
    "MemoAttributeMetadata": AttributeType.MEMO,
    "IntegerAttributeMetadata": AttributeType.INTEGER,
    "DecimalAttributeMetadata": AttributeType.DECIMAL,
    "MoneyAttributeMetadata": AttributeType.MONEY,
    "DateTimeAttributeMetadata": AttributeType.DATETIME,
    "BooleanAttributeMetadata": AttributeType.BOOLEAN,
    "PicklistAttributeMetadata": AttributeType.PICKLIST,
}
# Bytes a key column takes in the unique index (nvarchar counts two bytes per character).
_KEY_BYTES: dict[AttributeType, int] = {
    AttributeType.INTEGER: 4,
    AttributeType.PICKLIST: 4,
    AttributeType.DATETIME: 8,
    AttributeType.DECIMAL: 13,
    AttributeType.LOOKUP: 16,
    AttributeType.CUSTOMER: 16,
    AttributeType.OWNER: 16,
}
_INT32 = (-2_147_483_648, 2_147_483_647)
_DECIMAL_RANGE = (-100_000_000_000, 100_000_000_000)
_MONEY_RANGE = (-922_337_203_685_477, 922_337_203_685_477)


# ----------------------------------------------------------------------------------------------
# Property tables: what each metadata type can $select, and what `odata.parse_filter` can filter.


def _property_table(type_name: str, properties: Mapping[str, AttributeType]) -> Table:
    table = Table(type_name, type_name, "MetadataId", "LogicalName")
    for name, kind in properties.items():
        table.add_column(Column(name, kind))
    return table


_S, _B, _I, _G = (
    AttributeType.STRING,
    AttributeType.BOOLEAN,
    AttributeType.INTEGER,
    AttributeType.UNIQUEIDENTIFIER,
)
_ENTITY_FILTER = _property_table(
    "EntityMetadata",
    {
        "MetadataId": _G,
        "LogicalName": _S,
        "SchemaName": _S,
        "EntitySetName": _S,
        "LogicalCollectionName": _S,
        "CollectionSchemaName": _S,
        "PrimaryIdAttribute": _S,
        "PrimaryNameAttribute": _S,
        "ObjectTypeCode": _I,
        "OwnershipType": _S,
        "TableType": _S,
        "IsCustomEntity": _B,
        "IsActivity": _B,
        "IsManaged": _B,
        "HasNotes": _B,
        "HasActivities": _B,
        "ChangeTrackingEnabled": _B,
        "IsValidForAdvancedFind": _B,
    },
)
_ENTITY_PROPERTIES = frozenset(
    {
        *_ENTITY_FILTER.columns,
        "DisplayName",
        "DisplayCollectionName",
        "Description",
        "CanCreateAttributes",
    }
)
# Tables Dataverse adds no custom columns to (EntityMetadata.CanCreateAttributes false).
_NO_CUSTOM_ATTRIBUTES = frozenset({"annotation", "activitypointer", "activityparty"})
_ATTRIBUTE_FILTER = _property_table(
    "AttributeMetadata",
    {
        "MetadataId": _G,
        "LogicalName": _S,
        "SchemaName": _S,
        "EntityLogicalName": _S,
        "AttributeType": _S,
        "AttributeOf": _S,
        "IsCustomAttribute": _B,
        "IsPrimaryId": _B,
        "IsPrimaryName": _B,
        "IsValidForCreate": _B,
        "IsValidForUpdate": _B,
        "IsValidForRead": _B,
        "IsManaged": _B,
    },
)
_ATTRIBUTE_PROPERTIES = frozenset(
    {*_ATTRIBUTE_FILTER.columns, "AttributeTypeName", "RequiredLevel", "DisplayName", "Description"}
)
_KEY_FILTER = _property_table(
    "EntityKeyMetadata",
    {
        "MetadataId": _G,
        "LogicalName": _S,
        "SchemaName": _S,
        "EntityLogicalName": _S,
        "EntityKeyIndexStatus": _S,
        "IsManaged": _B,
    },
)
_KEY_PROPERTIES = frozenset({*_KEY_FILTER.columns, "KeyAttributes", "DisplayName"})


# ----------------------------------------------------------------------------------------------
# What the emulator keeps beside the Schema


Labels = tuple[tuple[str, int], ...]
"""Localized labels as (text, language code) pairs."""


@dataclass
class _Definition:
    """Metadata of one custom table, column or key that `schema` has no place for."""

    schema_name: str
    display_name: Labels = ()
    description: Labels = ()
    display_collection_name: Labels = ()
    precision: int | None = None
    has_notes: bool = False
    has_activities: bool = False
    object_type_code: int | None = None


@dataclass(frozen=True)
class _Query:
    """Parsed `$select` / `$filter` / `$expand` of one metadata collection or item."""

    select: tuple[str, ...] | None = None
    predicate: odata.Predicate | None = None
    expand: dict[str, _Query] = field(default_factory=dict)


def register(web_api: WebApi) -> None:
    """Serve `EntityDefinitions`, `$metadata`, `PublishXml` and `PublishAllXml` on `web_api`."""
    api = MetadataApi(web_api.records)
    web_api.add_operation("EntityDefinitions", api.entity_definitions)
    web_api.add_operation("$metadata", api.csdl)
    web_api.add_operation("PublishXml", api.publish_xml)
    web_api.add_operation("PublishAllXml", api.publish_all_xml)


class MetadataApi:
    """The metadata operations of one emulator, over its `Records` (schema and store)."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.schema = records.schema
        self._lock = threading.RLock()
        self._definitions: dict[str, _Definition] = {}
        # Keys whose index build met duplicate values: listed as Failed, never enforced.
        self._failed_keys: dict[str, dict[str, AlternateKey]] = {}
        self._restore()

    # -- routing ---------------------------------------------------------------------------

    def entity_definitions(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        """`/EntityDefinitions[(key)][/Attributes|Keys[(key)][/<cast>]]`: GET, POST, DELETE."""
        with self._lock:
            segments = _split_path(request.path.rstrip("/"))
            head = segments[0]
            if head == "EntityDefinitions" and len(segments) == 1:
                if request.method == "GET":
                    return self._list_entities(request, ctx)
                if request.method == "POST":
                    return self._create_table(request, ctx)
                raise _method_not_allowed(request.method)
            table = self._entity(_key_of(head, "EntityDefinitions"))
            rest = segments[1:]
            if not rest:
                if request.method != "GET":
                    raise _method_not_allowed(request.method)
                return self._get_entity(request, table, ctx)
            name, _, _ = rest[0].partition("(")
            if name == "Attributes":
                return self._attributes(request, table, rest, ctx)
            if name == "Keys" and len(rest) == 1:
                return self._keys(request, table, rest[0], ctx)
            raise _not_found_segment(rest[0])

    def _attributes(
        self, request: ApiRequest, table: Table, rest: list[str], ctx: RequestContext
    ) -> Reply:
        if len(rest) > 2:
            raise _not_found_segment(rest[2])
        cast = None
        if len(rest) == 2:
            cast = _cast(rest[1])
            if cast is None:
                raise _not_found_segment(rest[1])
        if rest[0] == "Attributes":
            if request.method == "POST" and cast is None:
                return self._create_column(request, table, ctx)
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            return self._list_attributes(request, table, cast, ctx)
        if request.method != "GET":
            raise _method_not_allowed(request.method)
        column = self._column(table, _key_of(rest[0], "Attributes"))
        if cast is not None and _ATTRIBUTE_TYPES[column.type][0] != cast:
            raise _not_found_segment(rest[1])
        query = self._attribute_query(request.query, cast)
        payload = self._render_attribute(table, column, self._attribute_full(table, column), query)
        context = f"{ctx.base_url}$metadata#EntityDefinitions({self._entity_id(table)})/Attributes"
        if cast is not None:
            context += f"/{_CRM}{cast}"
        context += _context_select(query) + "/$entity"
        return Reply.json(200, {"@odata.context": context, **payload})

    def _keys(self, request: ApiRequest, table: Table, segment: str, ctx: RequestContext) -> Reply:
        if segment == "Keys":
            if request.method == "POST":
                return self._create_key(request, table, ctx)
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            query = _parse_query(request.query, _KEY_FILTER, _KEY_PROPERTIES, {})
            context = f"{ctx.base_url}$metadata#EntityDefinitions({self._entity_id(table)})/Keys"
            context += _context_select(query)
            return Reply.json(
                200, {"@odata.context": context, "value": self._keys_of(table, query)}
            )
        key = self._find_key(table, _key_of(segment, "Keys"))
        if request.method == "GET":
            query = _parse_query(request.query, _KEY_FILTER, _KEY_PROPERTIES, {})
            context = f"{ctx.base_url}$metadata#EntityDefinitions({self._entity_id(table)})/Keys"
            payload = _project(self._key_full(table, key), query.select)
            return Reply.json(200, {"@odata.context": context + "/$entity", **payload})
        if request.method == "DELETE":
            # Its index entries stay in the store unused; re-creating the key rebuilds them.
            table.keys.pop(key.logical_name, None)
            self._failed_keys.get(table.logical_name, {}).pop(key.logical_name, None)
            self._definitions.pop(_key_key(table, key.logical_name), None)
            self.records.store.delete_definition(_KEY, _key_key(table, key.logical_name))
            return Reply(204, {"OData-Version": "4.0"})
        raise _method_not_allowed(request.method)

    # -- reading ---------------------------------------------------------------------------

    def _list_entities(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        query = self._entity_query(request.query)
        entities = [
            self._render_entity(t, query)
            for t in self.schema.tables.values()
            if _matches(query, self._entity_full(t))
        ]
        context = f"{ctx.base_url}$metadata#EntityDefinitions{_context_select(query)}"
        return Reply.json(200, {"@odata.context": context, "value": entities})

    def _get_entity(self, request: ApiRequest, table: Table, ctx: RequestContext) -> Reply:
        query = self._entity_query(request.query)
        context = f"{ctx.base_url}$metadata#EntityDefinitions{_context_select(query)}/$entity"
        return Reply.json(200, {"@odata.context": context, **self._render_entity(table, query)})

    def _list_attributes(
        self, request: ApiRequest, table: Table, cast: str | None, ctx: RequestContext
    ) -> Reply:
        query = self._attribute_query(request.query, cast)
        columns = [
            c for c in table.columns.values() if cast is None or _ATTRIBUTE_TYPES[c.type][0] == cast
        ]
        context = f"{ctx.base_url}$metadata#EntityDefinitions({self._entity_id(table)})/Attributes"
        if cast is not None:
            context += f"/{_CRM}{cast}"
        context += _context_select(query)
        return Reply.json(
            200, {"@odata.context": context, "value": self._attributes_of(table, columns, query)}
        )

    def _entity_query(self, options: Mapping[str, str]) -> _Query:
        return _parse_query(
            options,
            _ENTITY_FILTER,
            _ENTITY_PROPERTIES,
            {
                "Attributes": lambda o: self._attribute_query(o, None),
                "Keys": lambda o: _parse_query(o, _KEY_FILTER, _KEY_PROPERTIES, {}),
            },
        )

    def _attribute_query(self, options: Mapping[str, str], cast: str | None) -> _Query:
        selectable = _ATTRIBUTE_PROPERTIES | _DERIVED_PROPERTIES.get(cast or "", frozenset())
        expandable = {
            name: (lambda o: _parse_query(o, None, _OPTION_SET_PROPERTIES, {}, "OptionSetMetadata"))
            for name in _OPTION_SET_NAVIGATIONS.get(cast or "", frozenset())
        }
        type_name = cast or "AttributeMetadata"
        return _parse_query(options, _ATTRIBUTE_FILTER, selectable, expandable, type_name)

    def _render_entity(self, table: Table, query: _Query) -> dict[str, Any]:
        payload = _project(self._entity_full(table), query.select)
        if "Attributes" in query.expand:
            columns = list(table.columns.values())
            payload["Attributes"] = self._attributes_of(table, columns, query.expand["Attributes"])
        if "Keys" in query.expand:
            payload["Keys"] = self._keys_of(table, query.expand["Keys"])
        return payload

    def _attributes_of(
        self, table: Table, columns: Iterable[Column], query: _Query
    ) -> list[dict[str, Any]]:
        return [
            self._render_attribute(table, column, full, query)
            for column in columns
            if _matches(query, full := self._attribute_full(table, column))
        ]

    def _keys_of(self, table: Table, query: _Query) -> list[dict[str, Any]]:
        return [
            _project(full, query.select)
            for key in self._all_keys(table)
            if _matches(query, full := self._key_full(table, key))
        ]

    def _render_attribute(
        self, table: Table, column: Column, full: dict[str, Any], query: _Query
    ) -> dict[str, Any]:
        # A derived type's instances always carry their @odata.type, selected or not.
        payload = {"@odata.type": full["@odata.type"], **_project(full, query.select)}
        for name, inner in query.expand.items():
            is_global = name == "GlobalOptionSet"
            payload[name] = None if is_global else self._option_set(table, column, inner)
        return payload

    def _entity_full(self, table: Table) -> dict[str, Any]:
        definition = self._definition_of_table(table)
        return {
            "MetadataId": self._entity_id(table),
            "LogicalName": table.logical_name,
            "SchemaName": definition.schema_name,
            "EntitySetName": table.entity_set,
            "LogicalCollectionName": table.entity_set,
            "CollectionSchemaName": definition.schema_name + "s",
            "PrimaryIdAttribute": table.primary_id,
            "PrimaryNameAttribute": table.primary_name,
            "ObjectTypeCode": definition.object_type_code,
            "OwnershipType": table.ownership,
            "TableType": "Standard",
            "IsCustomEntity": table.is_custom,
            "IsActivity": table.is_activity,
            "IsManaged": not table.is_custom,
            "HasNotes": definition.has_notes,
            "HasActivities": definition.has_activities,
            "ChangeTrackingEnabled": True,
            "IsValidForAdvancedFind": True,
            "CanCreateAttributes": {
                "Value": table.logical_name not in _NO_CUSTOM_ATTRIBUTES,
                "CanBeChanged": False,
                "ManagedPropertyLogicalName": "cancreateattributes",
            },
            "DisplayName": _label(definition.display_name),
            "DisplayCollectionName": _label(definition.display_collection_name),
            "Description": _label(definition.description),
        }

    def _attribute_full(self, table: Table, column: Column) -> dict[str, Any]:
        type_name, type_label = _ATTRIBUTE_TYPES[column.type]
        definition = self._definitions.get(_column_key(table, column.name))
        return {
            "@odata.type": f"#{_CRM}{type_name}",
            "MetadataId": _id("attribute", table.logical_name, column.name),
            "LogicalName": column.name,
            "SchemaName": definition.schema_name if definition else column.name,
            "EntityLogicalName": table.logical_name,
            "AttributeType": column.type.value,
            "AttributeTypeName": {"Value": type_label},
            "AttributeOf": None,
            "RequiredLevel": {
                "Value": column.required.value,
                "CanBeChanged": column.required is not RequiredLevel.SYSTEM_REQUIRED,
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "IsCustomAttribute": column.custom,
            "IsManaged": not column.custom,
            "IsPrimaryId": column.name == table.primary_id,
            "IsPrimaryName": column.name == table.primary_name,
            "IsValidForCreate": column.valid_for_create,
            "IsValidForUpdate": column.valid_for_update,
            "IsValidForRead": True,
            "DisplayName": _label(definition.display_name if definition else ()),
            "Description": _label(definition.description if definition else ()),
            **_derived(column, definition),
        }

    def _key_full(self, table: Table, key: AlternateKey) -> dict[str, Any]:
        definition = self._definitions.get(_key_key(table, key.logical_name))
        return {
            "MetadataId": _id("key", table.logical_name, key.logical_name),
            "LogicalName": key.logical_name,
            "SchemaName": definition.schema_name if definition else key.schema_name,
            "EntityLogicalName": table.logical_name,
            "KeyAttributes": list(key.columns),
            "EntityKeyIndexStatus": key.status,
            "IsManaged": False,
            "DisplayName": _label(definition.display_name if definition else ()),
        }

    def _option_set(self, table: Table, column: Column, query: _Query) -> dict[str, Any]:
        kind = column.type
        full: dict[str, Any] = {
            "MetadataId": _id("optionset", table.logical_name, column.name),
            "Name": f"{table.logical_name}_{column.name}",
            "IsGlobal": False,
            "IsCustomOptionSet": column.custom,
            "OptionSetType": kind.value,
        }
        if kind is AttributeType.BOOLEAN:
            full["TrueOption"] = _option(1, column.options.get(1, "Yes"))
            full["FalseOption"] = _option(0, column.options.get(0, "No"))
        else:
            options = []
            for value, text in column.options.items():
                option = _option(value, text)
                if kind is AttributeType.STATE:
                    option["DefaultStatus"] = table.states[value].default_status
                    option["InvariantName"] = text.replace(" ", "")
                elif kind is AttributeType.STATUS:
                    option["State"] = table.status_state.get(value)
                options.append(option)
            full["Options"] = options
        return _project(full, query.select)

    # -- writing ---------------------------------------------------------------------------

    def _create_column(self, request: ApiRequest, table: Table, ctx: RequestContext) -> Reply:
        body = _body(request)
        column, definition = _column_from(body)
        with self.records.store.transaction():
            table.add_column(column)
            self._definitions[_column_key(table, column.name)] = definition
            self._save_column(table, column, definition)
        location = (
            f"{ctx.base_url}EntityDefinitions({self._entity_id(table)})"
            f"/Attributes({_id('attribute', table.logical_name, column.name)})"
        )
        return _created(location)

    def _create_key(self, request: ApiRequest, table: Table, ctx: RequestContext) -> Reply:
        body = _body(request)
        schema_name = _required_text(body, "SchemaName")
        columns = body.get("KeyAttributes")
        if (
            not isinstance(columns, list)
            or not all(isinstance(c, str) for c in columns)
            or len(set(columns)) != len(columns)
        ):
            raise _invalid("KeyAttributes must be a list of distinct column logical names.")
        key = AlternateKey(schema_name, tuple(c.lower() for c in columns))
        if any(k.logical_name == key.logical_name for k in self._all_keys(table)):
            raise DataverseError(
                400, ALREADY_EXISTS, f"An entity key with the name {schema_name} already exists."
            )
        same = table.key_for(key.columns)
        if same is not None:
            raise DataverseError(
                400,
                ALREADY_EXISTS,
                f"The entity key {same.schema_name} already uses the attributes "
                f"{', '.join(key.columns)} on entity '{table.logical_name}'.",
            )
        size = sum(_key_bytes(table.columns[c]) for c in key.columns if c in table.columns)
        if size > MAX_KEY_BYTES:
            raise DataverseError(
                400,
                INVALID_KEY_ATTRIBUTES,
                f"The entity key {schema_name} is {size} bytes; a key can't exceed "
                f"{MAX_KEY_BYTES} bytes.",
            )
        definition = _Definition(schema_name, display_name=_labels_from(body.get("DisplayName")))
        self._definitions[_key_key(table, key.logical_name)] = definition
        try:
            # Dataverse builds the unique index in a system job; the emulator builds it now.
            with self.records.store.transaction():
                table.add_key(key)
                self._index_existing_rows(table)
                self._save_key(table, key, definition)
        except DuplicateKeyError:
            table.keys.pop(key.logical_name, None)
            failed = replace(key, status="Failed")
            self._failed_keys.setdefault(table.logical_name, {})[key.logical_name] = failed
            self._save_key(table, failed, definition)
        except DataverseError:
            self._definitions.pop(_key_key(table, key.logical_name), None)
            raise
        location = (
            f"{ctx.base_url}EntityDefinitions({self._entity_id(table)})"
            f"/Keys({_id('key', table.logical_name, key.logical_name)})"
        )
        return _created(location)

    def _index_existing_rows(self, table: Table) -> None:
        store = self.records.store
        for _, version, row in store.scan(table=table.logical_name):
            # Rewriting a row's key values with its own version leaves its etag unchanged.
            keys = self.records.keys_of(table, row)
            store.replace(
                table.space, table.logical_name, row[table.primary_id], row, version, keys
            )

    def _create_table(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        body = _body(request)
        kind = body.get("@odata.type")
        if kind is not None and str(kind).lstrip("#").removeprefix(_CRM) != "EntityMetadata":
            raise _invalid(f"The type '{kind}' is not valid for EntityDefinitions.")
        schema_name = _required_text(body, "SchemaName")
        logical_name = schema_name.lower()
        ownership = body.get("OwnershipType", "UserOwned")
        if ownership not in ("UserOwned", "OrganizationOwned"):
            raise _invalid(
                "OwnershipType must be UserOwned or OrganizationOwned for a custom table."
            )
        if body.get("IsActivity"):
            raise _invalid("The emulator doesn't create custom activity tables.")
        entity_set = body.get("EntitySetName") or _plural(logical_name)
        if logical_name in self.schema.tables:
            raise DataverseError(
                400,
                ALREADY_EXISTS,
                f"An entity with the specified name {logical_name} already exists.",
            )
        if entity_set in self.schema.by_set:
            raise DataverseError(
                400, ALREADY_EXISTS, f"An entity set with the name {entity_set} already exists."
            )
        attributes = body.get("Attributes")
        if not isinstance(attributes, list) or not all(isinstance(a, Mapping) for a in attributes):
            raise _invalid("Attributes must hold the primary name StringAttributeMetadata.")
        primary = [a for a in attributes if a.get("IsPrimaryName") is True]
        primary_type = _cast(str(primary[0].get("@odata.type", ""))) if len(primary) == 1 else None
        if primary_type != "StringAttributeMetadata":
            raise _invalid(
                "A custom table needs exactly one StringAttributeMetadata with IsPrimaryName true."
            )
        columns = [_column_from(a) for a in attributes]
        primary_name = columns[attributes.index(primary[0])][0].name
        table = _custom_table(logical_name, entity_set, primary_name, ownership)
        for column, _ in columns:
            table.add_column(column)
        if (
            self.records.config.licence == "professional"
            and self.schema.custom_table_count() >= PROFESSIONAL_CUSTOM_TABLE_LIMIT
        ):
            raise DataverseError(
                400,
                APP_ENTITY_LIMIT_EXCEEDED,
                f"The licence profile 'professional' allows at most "
                f"{PROFESSIONAL_CUSTOM_TABLE_LIMIT} custom tables; table '{logical_name}' "
                "was not created.",
            )
        self.schema.add_table(table)
        table_definition = _Definition(
            schema_name,
            display_name=_labels_from(body.get("DisplayName")),
            description=_labels_from(body.get("Description")),
            display_collection_name=_labels_from(body.get("DisplayCollectionName")),
            has_notes=bool(body.get("HasNotes", False)),
            has_activities=bool(body.get("HasActivities", False)),
            object_type_code=FIRST_CUSTOM_OBJECT_TYPE_CODE + self.schema.custom_table_count() - 1,
        )
        self._definitions[table.logical_name] = table_definition
        with self.records.store.transaction():
            self.records.store.save_definition(
                _TABLE,
                table.logical_name,
                {
                    "table": table.logical_name,
                    "entity_set": table.entity_set,
                    "primary_name": table.primary_name,
                    "ownership": table.ownership,
                    "definition": asdict(table_definition),
                },
            )
            for column, definition in columns:
                self._definitions[_column_key(table, column.name)] = definition
                self._save_column(table, column, definition)
        return _created(f"{ctx.base_url}EntityDefinitions({self._entity_id(table)})")

    # -- persistence -----------------------------------------------------------------------

    def _save_column(self, table: Table, column: Column, definition: _Definition) -> None:
        data = asdict(column)
        data["options"] = list(column.options.items())  # a list keeps the option order
        self.records.store.save_definition(
            _COLUMN,
            _column_key(table, column.name),
            {"table": table.logical_name, "column": data, "definition": asdict(definition)},
        )

    def _save_key(self, table: Table, key: AlternateKey, definition: _Definition) -> None:
        self.records.store.save_definition(
            _KEY,
            _key_key(table, key.logical_name),
            {
                "table": table.logical_name,
                "schema_name": key.schema_name,
                "columns": list(key.columns),
                "status": key.status,
                "definition": asdict(definition),
            },
        )

    def _restore(self) -> None:
        """Add back what metadata writes of earlier runs on this database defined, in order.

        Key indexes are not rebuilt: their entries were saved with the rows.
        """
        for kind, name, data in self.records.store.definitions():
            definition = _definition_of(data["definition"])
            self._definitions[name] = definition
            if kind == _TABLE:
                table = _custom_table(
                    data["table"], data["entity_set"], data["primary_name"], data["ownership"]
                )
                self.schema.add_table(table)
                continue
            table = self.schema.table(data["table"])
            if kind == _COLUMN:
                table.add_column(_column_of(data["column"]))
            elif kind == _KEY:
                key = AlternateKey(data["schema_name"], tuple(data["columns"]), data["status"])
                if key.status == "Failed":
                    self._failed_keys.setdefault(table.logical_name, {})[key.logical_name] = key
                else:
                    table.add_key(key)

    # -- publishing and CSDL ---------------------------------------------------------------

    def publish_xml(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        """`POST /PublishXml` with `ParameterXml`: accepted (changes are live already)."""
        if request.method != "POST":
            raise _method_not_allowed(request.method)
        parameter = _body(request).get("ParameterXml")
        if not isinstance(parameter, str):
            raise _invalid("The PublishXml action needs a ParameterXml string.")
        try:
            ET.fromstring(parameter)
        except ET.ParseError as exc:
            raise _invalid(f"ParameterXml is not well-formed XML: {exc}.") from None
        return Reply(204, {"OData-Version": "4.0"})

    def publish_all_xml(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        """`POST /PublishAllXml`: accepted (changes are live already)."""
        if request.method != "POST":
            raise _method_not_allowed(request.method)
        return Reply(204, {"OData-Version": "4.0"})

    def csdl(self, request: ApiRequest, ctx: RequestContext) -> Reply:
        """`GET /$metadata`: EDMX with an EntityType per table and an EntitySet per entity set."""
        if request.method != "GET":
            raise _method_not_allowed(request.method)
        with self._lock:
            document = _csdl(list(self.schema.tables.values()))
        return Reply(200, {"OData-Version": "4.0", "Content-Type": "application/xml"}, document)

    # -- lookups ---------------------------------------------------------------------------

    def _entity(self, address: str | dict[str, Any]) -> Table:
        if isinstance(address, str):
            for table in self.schema.tables.values():
                if self._entity_id(table) == address:
                    return table
            raise DataverseError(
                404, OBJECT_DOES_NOT_EXIST, f"Could not find entity with MetadataId '{address}'."
            )
        name = address.get("LogicalName")
        if list(address) != ["LogicalName"] or not isinstance(name, str):
            raise _invalid_metadata_key("EntityMetadata")
        found = self.schema.tables.get(name.lower())
        if found is None:
            raise DataverseError(
                404, OBJECT_DOES_NOT_EXIST, f"Could not find entity with name '{name}'."
            )
        return found

    def _column(self, table: Table, address: str | dict[str, Any]) -> Column:
        if isinstance(address, str):
            for column in table.columns.values():
                if _id("attribute", table.logical_name, column.name) == address:
                    return column
            wanted = f"MetadataId '{address}'"
        else:
            name = address.get("LogicalName")
            if list(address) != ["LogicalName"] or not isinstance(name, str):
                raise _invalid_metadata_key("AttributeMetadata")
            found = table.columns.get(name.lower())
            if found is not None:
                return found
            wanted = f"LogicalName '{name}'"
        raise DataverseError(
            404,
            OBJECT_DOES_NOT_EXIST,
            f"Could not find attribute with {wanted} on entity '{table.logical_name}'.",
        )

    def _find_key(self, table: Table, address: str | dict[str, Any]) -> AlternateKey:
        for key in self._all_keys(table):
            if isinstance(address, str):
                if _id("key", table.logical_name, key.logical_name) == address:
                    return key
            elif str(address.get("LogicalName", "")).lower() == key.logical_name:
                return key
        raise DataverseError(
            404,
            OBJECT_DOES_NOT_EXIST,
            f"Could not find entity key {address} on entity '{table.logical_name}'.",
        )

    def _all_keys(self, table: Table) -> list[AlternateKey]:
        failed = self._failed_keys.get(table.logical_name, {})
        return [*table.keys.values(), *failed.values()]

    def _entity_id(self, table: Table) -> str:
        return _id("entity", table.logical_name)

    def _definition_of_table(self, table: Table) -> _Definition:
        found = self._definitions.get(table.logical_name)
        if found is not None:
            return found
        schema_name, code, display, collection = _BUILT_IN.get(
            table.logical_name, (table.logical_name, None, table.logical_name, table.entity_set)
        )
        return _Definition(
            schema_name,
            display_name=((display, _LANGUAGE),),
            display_collection_name=((collection, _LANGUAGE),),
            has_notes=table.logical_name
            in _targets_of(self.schema.tables.get("annotation"), "objectid"),
            has_activities=table.logical_name in _regarding_targets(self.schema.tables.values()),
            object_type_code=code,
        )


# ----------------------------------------------------------------------------------------------
# Bodies of metadata writes


def _body(request: ApiRequest) -> Mapping[str, Any]:
    body = request.json()
    if not isinstance(body, Mapping):
        raise _invalid("The request body must be a JSON object.")
    return body


def _required_text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} is required.")
    return value


def _column_from(body: Mapping[str, Any]) -> tuple[Column, _Definition]:
    """A custom column and its extra metadata from an AttributeMetadata body (reference 11.2)."""
    odata_type = str(body.get("@odata.type", ""))
    type_name = _cast(odata_type)
    if type_name is None or type_name not in _CREATABLE:
        if type_name == "LookupAttributeMetadata":
            raise _invalid(
                "Lookup columns are created with a relationship: POST RelationshipDefinitions."
            )
        raise _invalid(
            f"The @odata.type '{odata_type}' is not a column type the Web API creates here "
            f"({', '.join(_CREATABLE)})."
        )
    kind = _CREATABLE[type_name]
    declared = body.get("AttributeType")
    if declared is not None and declared != kind.value:
        raise _invalid(f"AttributeType '{declared}' doesn't match @odata.type '{odata_type}'.")
    schema_name = _required_text(body, "SchemaName")
    required = _required_level(body.get("RequiredLevel"))
    definition = _Definition(
        schema_name,
        display_name=_labels_from(body.get("DisplayName")),
        description=_labels_from(body.get("Description")),
    )
    column = Column(schema_name.lower(), kind, required, custom=True)
    if kind is AttributeType.STRING:
        column = replace(column, max_length=_int_in(body, "MaxLength", 100, 1, 4000))
    elif kind is AttributeType.MEMO:
        column = replace(column, max_length=_int_in(body, "MaxLength", 2000, 1, 1_048_576))
    elif kind is AttributeType.INTEGER:
        lowest = _int_in(body, "MinValue", _INT32[0], *_INT32)
        highest = _int_in(body, "MaxValue", _INT32[1], lowest, _INT32[1])
        column = replace(column, min_value=lowest, max_value=highest)
    elif kind in (AttributeType.DECIMAL, AttributeType.MONEY):
        bounds = _DECIMAL_RANGE if kind is AttributeType.DECIMAL else _MONEY_RANGE
        top = 10 if kind is AttributeType.DECIMAL else 4
        definition.precision = _int_in(body, "Precision", 2, 0, top)
        low = _number_in(body, "MinValue", bounds[0], *bounds)
        high = _number_in(body, "MaxValue", bounds[1], low, bounds[1])
        column = replace(column, min_value=low, max_value=high)
    elif kind is AttributeType.DATETIME:
        behavior = body.get("DateTimeBehavior")
        behavior_value = behavior.get("Value") if isinstance(behavior, Mapping) else None
        column = replace(
            column, date_only=body.get("Format") == "DateOnly" or behavior_value == "DateOnly"
        )
    elif kind is AttributeType.BOOLEAN:
        column = replace(column, options=_boolean_options(body.get("OptionSet")))
    elif kind is AttributeType.PICKLIST:
        column = replace(column, options=_picklist_options(body.get("OptionSet")))
    return column, definition


def _required_level(value: Any) -> RequiredLevel:
    raw = value.get("Value", "None") if isinstance(value, Mapping) else "None"
    try:
        level = RequiredLevel(raw)
    except ValueError:
        raise _invalid(f"RequiredLevel '{raw}' is not a valid requirement level.") from None
    if level is RequiredLevel.SYSTEM_REQUIRED:
        raise _invalid("A custom column can't be SystemRequired.")
    return level


def _int_in(body: Mapping[str, Any], name: str, default: int, low: float, high: float) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{name} must be a whole number from {low:g} to {high:g}.")
    return value


def _number_in(
    body: Mapping[str, Any], name: str, default: float, low: float, high: float
) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _invalid(f"{name} must be a number from {low:g} to {high:g}.")
    return value


def _boolean_options(option_set: Any) -> dict[int, str]:
    options = {0: "No", 1: "Yes"}
    if isinstance(option_set, Mapping):
        for name, value in (("FalseOption", 0), ("TrueOption", 1)):
            option = option_set.get(name)
            if isinstance(option, Mapping):
                options[value] = _first_label(option.get("Label")) or options[value]
    return options


def _picklist_options(option_set: Any) -> dict[int, str]:
    if not isinstance(option_set, Mapping) or not isinstance(option_set.get("Options"), list):
        raise _invalid("A PicklistAttributeMetadata needs an OptionSet with Options.")
    if option_set.get("IsGlobal"):
        raise _invalid("The emulator doesn't create global option sets.")
    options: dict[int, str] = {}
    for index, option in enumerate(option_set["Options"]):
        if not isinstance(option, Mapping):
            raise _invalid("Each option must be an OptionMetadata object.")
        value = option.get("Value")
        if value is None:
            value = FIRST_CUSTOM_OPTION_VALUE + index
        if isinstance(value, bool) or not isinstance(value, int) or value in options:
            raise _invalid(f"Option value {value!r} is not a distinct whole number.")
        options[value] = _first_label(option.get("Label")) or str(value)
    return options


def _labels_from(label: Any) -> Labels:
    if not isinstance(label, Mapping):
        return ()
    found = []
    for item in label.get("LocalizedLabels") or ():
        if isinstance(item, Mapping) and isinstance(item.get("Label"), str):
            found.append((item["Label"], int(item.get("LanguageCode", _LANGUAGE))))
    return tuple(found)


def _first_label(label: Any) -> str | None:
    labels = _labels_from(label)
    return labels[0][0] if labels else None


def _custom_table(logical_name: str, entity_set: str, primary_name: str, ownership: str) -> Table:
    """A custom table with the system columns Dataverse adds to every standard table."""
    states = {
        0: State(0, "Active", 1, {1: "Active"}),
        1: State(1, "Inactive", 2, {2: "Inactive"}),
    }
    table = Table(
        logical_name,
        entity_set,
        f"{logical_name}id",
        primary_name,
        ownership=ownership,
        is_custom=True,
        states=states,
    )
    system = RequiredLevel.SYSTEM_REQUIRED
    table.add_column(Column(table.primary_id, AttributeType.UNIQUEIDENTIFIER, system, custom=True))
    for column in (
        _read_only(Column("createdon", AttributeType.DATETIME)),
        _read_only(Column("modifiedon", AttributeType.DATETIME)),
        _read_only(Column("createdby", AttributeType.LOOKUP, targets=("systemuser",))),
        _read_only(Column("modifiedby", AttributeType.LOOKUP, targets=("systemuser",))),
        Column("overriddencreatedon", AttributeType.DATETIME, valid_for_update=False),
        Column("importsequencenumber", AttributeType.INTEGER, valid_for_update=False),
        _read_only(Column("versionnumber", AttributeType.BIGINT)),
    ):
        table.add_column(column)
    if ownership == "UserOwned":
        table.add_column(
            Column("ownerid", AttributeType.OWNER, system, targets=("systemuser", "team"))
        )
        table.add_column(
            _read_only(
                Column("owningbusinessunit", AttributeType.LOOKUP, targets=("businessunit",))
            )
        )
    table.add_column(
        Column(
            "statecode",
            AttributeType.STATE,
            system,
            options={s.value: s.label for s in states.values()},
            valid_for_create=False,
        )
    )
    table.add_column(
        Column(
            "statuscode",
            AttributeType.STATUS,
            options={k: v for s in states.values() for k, v in s.statuses.items()},
        )
    )
    return table


def _read_only(column: Column) -> Column:
    return replace(column, valid_for_create=False, valid_for_update=False)


def _plural(name: str) -> str:
    """Dataverse's English plural for an entity set: country → countries, box → boxes."""
    if name.endswith("y") and name[-2:-1] not in ("a", "e", "i", "o", "u"):
        return name[:-1] + "ies"
    if name.endswith(("s", "x", "z", "ch", "sh")):
        return name + "es"
    return name + "s"


def _key_bytes(column: Column) -> int:
    if column.type is AttributeType.STRING:
        return 2 * (column.max_length or 100)
    return _KEY_BYTES.get(column.type, 16)


# ----------------------------------------------------------------------------------------------
# Query options and rendering


_OPTION_SET_PROPERTIES = frozenset(
    {
        "MetadataId",
        "Name",
        "IsGlobal",
        "IsCustomOptionSet",
        "OptionSetType",
        "Options",
        "TrueOption",
        "FalseOption",
    }
)


def _parse_query(
    options: Mapping[str, str],
    filterable: Table | None,
    selectable: frozenset[str],
    expandable: Mapping[str, Callable[[Mapping[str, str]], _Query]],
    type_name: str | None = None,
) -> _Query:
    type_name = type_name or (filterable.logical_name if filterable else "OptionSetMetadata")
    for option in options:
        if option.startswith("$") and option not in _QUERY_OPTIONS:
            raise odata.bad_request(
                f"The query parameter '{option}' is not supported for metadata queries."
            )
    select = None
    if "$select" in options:
        select = tuple(p.strip() for p in options["$select"].split(",") if p.strip())
        for name in select:
            if name not in selectable:
                raise _unknown_property(name, type_name)
    predicate = None
    if options.get("$filter"):
        if filterable is None:
            raise odata.bad_request("$filter is not supported here.")
        text = _ENUM_LITERAL.sub(r"\1", options["$filter"])
        predicate = odata.parse_filter(text, filterable)
    expand: dict[str, _Query] = {}
    for item in _split_top_level(options.get("$expand", "")):
        name, _, inner = item.partition("(")
        name = name.strip()
        parse = expandable.get(name)
        if parse is None:
            raise _unknown_property(name, type_name)
        expand[name] = parse(_nested_options(inner.rstrip().removesuffix(")")))
    return _Query(select, predicate, expand)


def _nested_options(text: str) -> dict[str, str]:
    nested: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip():
            nested[name.strip()] = value.strip()
    return nested


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _split_path(path: str) -> list[str]:
    segments: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "/" and depth == 0 and not quoted:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    return segments


def _key_of(segment: str, name: str) -> str | dict[str, Any]:
    if not segment.startswith(name + "(") or not segment.endswith(")"):
        raise _not_found_segment(segment)
    return odata.parse_key_predicate(segment[len(name) + 1 : -1])


def _cast(type_name: str) -> str | None:
    """The derived AttributeMetadata type named by a cast segment or `@odata.type`, if any."""
    match = _CAST.match(type_name.lstrip("#"))
    if match is None or match.group(1) not in _DERIVED_PROPERTIES:
        return None
    return match.group(1)


def _matches(query: _Query, full: dict[str, Any]) -> bool:
    return query.predicate is None or query.predicate(full)


def _project(full: dict[str, Any], select: Sequence[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(full)
    # Dataverse always returns MetadataId, selected or not.
    names = ["MetadataId", *select] if "MetadataId" in full else list(select)
    return {n: full.get(n) for n in names}


def _context_select(query: _Query) -> str:
    return f"({','.join(query.select)})" if query.select else ""


def _derived(column: Column, definition: _Definition | None) -> dict[str, Any]:
    kind = column.type
    precision = definition.precision if definition and definition.precision is not None else 2
    if kind is AttributeType.STRING:
        length = column.max_length or 100
        return {
            "MaxLength": length,
            "Format": "Text",
            "FormatName": {"Value": "Text"},
            "DatabaseLength": 2 * length,
        }
    if kind is AttributeType.MEMO:
        return {"MaxLength": column.max_length, "Format": "TextArea"}
    if kind in (AttributeType.INTEGER, AttributeType.BIGINT):
        low = _INT32[0] if column.min_value is None else int(column.min_value)
        high = _INT32[1] if column.max_value is None else int(column.max_value)
        extra = {"Format": "None"} if kind is AttributeType.INTEGER else {}
        return {"MinValue": low, "MaxValue": high, **extra}
    if kind in (AttributeType.DECIMAL, AttributeType.DOUBLE):
        return {"MinValue": column.min_value, "MaxValue": column.max_value, "Precision": precision}
    if kind is AttributeType.MONEY:
        return {
            "MinValue": column.min_value,
            "MaxValue": column.max_value,
            "Precision": precision,
            "PrecisionSource": 2,
        }
    if kind is AttributeType.DATETIME:
        return {
            "Format": "DateOnly" if column.date_only else "DateAndTime",
            "DateTimeBehavior": {"Value": "DateOnly" if column.date_only else "UserLocal"},
        }
    if kind is AttributeType.BOOLEAN:
        return {"DefaultValue": False}
    if kind is AttributeType.PICKLIST:
        return {"DefaultFormValue": -1}
    if column.is_lookup:
        return {"Targets": list(column.targets)}
    return {}


def _label(labels: Labels) -> dict[str, Any]:
    localized = [
        {"Label": text, "LanguageCode": code, "IsManaged": False, "HasChanged": None}
        for text, code in labels
    ]
    fallback = localized[0] if localized else None
    user = next((item for item in localized if item["LanguageCode"] == _LANGUAGE), fallback)
    return {"LocalizedLabels": localized, "UserLocalizedLabel": user}


def _option(value: int, text: str) -> dict[str, Any]:
    return {
        "Value": value,
        "Label": _label(((text, _LANGUAGE),)),
        "Description": _label(()),
        "Color": None,
        "IsManaged": False,
    }


def _targets_of(table: Table | None, column: str) -> tuple[str, ...]:
    found = table.columns.get(column) if table is not None else None
    return found.targets if found is not None else ()


def _regarding_targets(tables: Iterable[Table]) -> frozenset[str]:
    return frozenset(
        target
        for table in tables
        if table.is_activity
        for target in _targets_of(table, "regardingobjectid")
    )


def _id(*parts: str) -> str:
    # Stable ids: the same schema gives the same MetadataIds in every emulator run.
    return str(uuid.uuid5(_IDS, "/".join(parts)))


def _column_of(data: Mapping[str, Any]) -> Column:
    """A column as `_save_column` stored it."""
    return Column(
        **{
            **data,
            "type": AttributeType(data["type"]),
            "required": RequiredLevel(data["required"]),
            "options": {int(value): str(label) for value, label in data["options"]},
            "targets": tuple(data["targets"]),
        }
    )


def _definition_of(data: Mapping[str, Any]) -> _Definition:
    """A definition as `asdict` stored it (label pairs come back as lists)."""
    labels = ("display_name", "description", "display_collection_name")
    return _Definition(
        **{
            **data,
            **{name: tuple((str(t), int(c)) for t, c in data[name]) for name in labels},
        }
    )


def _column_key(table: Table, column: str) -> str:
    return f"{table.logical_name}.{column}"


def _key_key(table: Table, key: str) -> str:
    return f"{table.logical_name}#{key}"


def _created(location: str) -> Reply:
    return Reply(204, {"OData-Version": "4.0", "OData-EntityId": location, "Location": location})


# ----------------------------------------------------------------------------------------------
# Errors


def _invalid(message: str) -> DataverseError:
    return DataverseError(400, INVALID_ARGUMENT, message)


def _unknown_property(name: str, type_name: str) -> DataverseError:
    return odata.bad_request(
        f"Could not find a property named '{name}' on type '{_CRM}{type_name}'."
    )


def _invalid_metadata_key(type_name: str) -> DataverseError:
    return odata.bad_request(
        f"The key in the request URI is not valid for resource '{_CRM}{type_name}'. Use "
        "(<MetadataId>) or (LogicalName='<name>')."
    )


def _not_found_segment(segment: str) -> DataverseError:
    return DataverseError(
        404, RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'."
    )


def _method_not_allowed(method: str) -> DataverseError:
    return DataverseError(
        405, "0x80060888", f"The requested resource does not support http method '{method}'."
    )


# ----------------------------------------------------------------------------------------------
# $metadata


_EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
_EDM = "http://docs.oasis-open.org/odata/ns/edm"
_NAMESPACE = "Microsoft.Dynamics.CRM"


def _csdl(tables: list[Table]) -> bytes:
    """A minimal CSDL 4.0 document for `tables`, shaped like Dataverse's `$metadata`.

    The EDM elements are unqualified under `Schema`'s default `xmlns`, as Dataverse writes them.
    """
    ET.register_namespace("edmx", _EDMX)
    root = ET.Element(f"{{{_EDMX}}}Edmx", Version="4.0")
    services = ET.SubElement(root, f"{{{_EDMX}}}DataServices")
    schema = ET.SubElement(services, "Schema", Namespace=_NAMESPACE, Alias="mscrm", xmlns=_EDM)
    ET.SubElement(schema, "EntityType", Name="crmbaseentity", Abstract="true")
    principal = ET.SubElement(
        schema, "EntityType", Name="principal", BaseType="mscrm.crmbaseentity", Abstract="true"
    )
    ET.SubElement(ET.SubElement(principal, "Key"), "PropertyRef", Name="ownerid")
    ET.SubElement(principal, "Property", Name="ownerid", Type="Edm.Guid")
    by_name = {t.logical_name: t for t in tables}
    for table in tables:
        _entity_type(schema, table, by_name)
    container = ET.SubElement(schema, "EntityContainer", Name="System")
    for table in tables:
        entity_set = ET.SubElement(
            container,
            "EntitySet",
            Name=table.entity_set,
            EntityType=f"{_NAMESPACE}.{table.logical_name}",
        )
        for navigation in table.navigations.values():
            target = by_name.get(navigation.targets[0])
            if target is not None and len(navigation.targets) == 1:
                ET.SubElement(
                    entity_set,
                    "NavigationPropertyBinding",
                    Path=navigation.name,
                    Target=target.entity_set,
                )
        for collection in table.collections.values():
            target = by_name.get(collection.table)
            if target is not None:
                ET.SubElement(
                    entity_set,
                    "NavigationPropertyBinding",
                    Path=collection.name,
                    Target=target.entity_set,
                )
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _entity_type(schema: ET.Element, table: Table, by_name: Mapping[str, Table]) -> None:
    entity = ET.SubElement(
        schema, "EntityType", Name=table.logical_name, BaseType="mscrm.crmbaseentity"
    )
    key = ET.SubElement(entity, "Key")
    ET.SubElement(key, "PropertyRef", Name=table.primary_id)
    for column in table.columns.values():
        attributes = {"Name": column.read_name, "Type": odata.edm_type(column)}
        if column.type in (AttributeType.DECIMAL, AttributeType.MONEY):
            attributes["Scale"] = "Variable"
        ET.SubElement(entity, "Property", attributes)
    for navigation in table.navigations.values():
        # ownerid points at systemuser or team: Dataverse types it as their base, principal.
        target = by_name.get(navigation.targets[0]) if len(navigation.targets) == 1 else None
        type_name, referenced = (
            (navigation.targets[0], target.primary_id) if target else ("principal", "ownerid")
        )
        nav = ET.SubElement(
            entity, "NavigationProperty", Name=navigation.name, Type=f"mscrm.{type_name}"
        )
        ET.SubElement(
            nav,
            "ReferentialConstraint",
            Property=table.columns[navigation.column].read_name,
            ReferencedProperty=referenced,
        )
    for collection in table.collections.values():
        ET.SubElement(
            entity,
            "NavigationProperty",
            Name=collection.name,
            Type=f"Collection(mscrm.{collection.table})",
        )
    if table.keys:
        _alternate_keys(entity, table.keys.values())


def _alternate_keys(entity: ET.Element, keys: Iterable[AlternateKey]) -> None:
    annotation = ET.SubElement(entity, "Annotation", Term="OData.Community.Keys.V1.AlternateKeys")
    records = ET.SubElement(annotation, "Collection")
    for key in keys:
        record = ET.SubElement(records, "Record", Type="OData.Community.Keys.V1.AlternateKey")
        value = ET.SubElement(record, "PropertyValue", Property="Key")
        refs = ET.SubElement(value, "Collection")
        for column in key.columns:
            ref = ET.SubElement(refs, "Record", Type="OData.Community.Keys.V1.PropertyRef")
            ET.SubElement(ref, "PropertyValue", Property="Alias", String=column)
            ET.SubElement(ref, "PropertyValue", Property="Name", PropertyPath=column)
