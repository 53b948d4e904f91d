"""The Dataverse metadata API: read table, column and key definitions; create columns, keys, tables.

Request bodies follow Microsoft's documentation ("Create and update table definitions using the
Web API", "Define alternate keys", reference sections 11 and 3.3): the derived
``*AttributeMetadata`` type in ``@odata.type``, ``AttributeType`` and ``AttributeTypeName``, a
``RequiredLevel`` managed property and ``Label`` objects with ``LocalizedLabels``. Metadata writes
take a customization lock in Dataverse, so callers send them one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.sax.saxutils import escape

from consumers.dataverse.client import DataverseClient, JsonObject
from consumers.dataverse.errors import DataverseClientError, DataverseError

ColumnKind = Literal[
    "string", "memo", "integer", "decimal", "money", "boolean", "datetime", "dateonly", "picklist"
]
"""The column types crmledger creates (lookups need relationships and are not among them)."""

KeyStatus = Literal["Pending", "InProgress", "Active", "Failed"]

LANGUAGE_CODE = 1033
_CRM = "Microsoft.Dynamics.CRM."
# kind → (derived metadata type, AttributeType, AttributeTypeName value)
_TYPES: dict[str, tuple[str, str, str]] = {
    "string": ("StringAttributeMetadata", "String", "StringType"),
    "memo": ("MemoAttributeMetadata", "Memo", "MemoType"),
    "integer": ("IntegerAttributeMetadata", "Integer", "IntegerType"),
    "decimal": ("DecimalAttributeMetadata", "Decimal", "DecimalType"),
    "money": ("MoneyAttributeMetadata", "Money", "MoneyType"),
    "boolean": ("BooleanAttributeMetadata", "Boolean", "BooleanType"),
    "datetime": ("DateTimeAttributeMetadata", "DateTime", "DateTimeType"),
    "dateonly": ("DateTimeAttributeMetadata", "DateTime", "DateTimeType"),
    "picklist": ("PicklistAttributeMetadata", "Picklist", "PicklistType"),
}
ATTRIBUTE_TYPE_OF_KIND: Mapping[str, str] = {kind: spec[1] for kind, spec in _TYPES.items()}
"""The ``AttributeType`` Dataverse reports for a column created as each kind."""


class KeyNotActiveError(DataverseClientError):
    """An alternate key's index build failed, or did not finish within the timeout."""


@dataclass(frozen=True)
class EntityInfo:
    """What crmledger reads of a table definition (``EntityMetadata``)."""

    logical_name: str
    schema_name: str
    entity_set_name: str
    primary_id: str
    primary_name: str | None
    is_custom: bool
    is_managed: bool
    metadata_id: str
    can_create_attributes: bool = True
    """False for tables Dataverse adds no custom columns to (annotation, activitypointer)."""


@dataclass(frozen=True)
class AttributeInfo:
    """What crmledger reads of a column definition (``AttributeMetadata``)."""

    logical_name: str
    schema_name: str
    attribute_type: str
    is_custom: bool


@dataclass(frozen=True)
class KeyInfo:
    """An alternate key (``EntityKeyMetadata``) and the state of its index build."""

    logical_name: str
    schema_name: str
    key_attributes: tuple[str, ...]
    status: str
    metadata_id: str


@dataclass(frozen=True)
class ColumnDefinition:
    """A column to create; :meth:`body` is its documented ``*AttributeMetadata`` JSON."""

    schema_name: str
    kind: ColumnKind
    label: str
    description: str = ""
    max_length: int | None = None
    """string and memo: characters (default 100 and 2000)."""
    precision: int | None = None
    """decimal and money: digits after the point (money without one follows the currency)."""
    options: Mapping[str, int | None] = field(default_factory=dict)
    """picklist: label → value (None lets Dataverse pick the value)."""
    is_primary_name: bool = False

    @property
    def logical_name(self) -> str:
        """The logical name Dataverse derives: the schema name in lower case."""
        return self.schema_name.lower()

    def body(self) -> JsonObject:
        """The JSON to POST to ``EntityDefinitions(...)/Attributes`` (or inside a table)."""
        metadata_type, attribute_type, type_name = _TYPES[self.kind]
        body: JsonObject = {
            "@odata.type": _CRM + metadata_type,
            "AttributeType": attribute_type,
            "AttributeTypeName": {"Value": type_name},
            "SchemaName": self.schema_name,
            "RequiredLevel": {
                "Value": "None",
                "CanBeChanged": True,
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "DisplayName": label(self.label),
            "Description": label(self.description or self.label),
        }
        if self.kind == "string":
            body["MaxLength"] = self.max_length or 100
            body["FormatName"] = {"Value": "Text"}
        elif self.kind == "memo":
            body["MaxLength"] = self.max_length or 2000
            body["Format"] = "TextArea"
        elif self.kind == "integer":
            body["Format"] = "None"
        elif self.kind == "decimal":
            body["Precision"] = 2 if self.precision is None else self.precision
        elif self.kind == "money":
            if self.precision is None:
                body["PrecisionSource"] = 2  # the record's currency decides
            else:
                body["PrecisionSource"] = 0
                body["Precision"] = self.precision
        elif self.kind in ("datetime", "dateonly"):
            date_only = self.kind == "dateonly"
            body["Format"] = "DateOnly" if date_only else "DateAndTime"
            body["DateTimeBehavior"] = {"Value": "DateOnly" if date_only else "UserLocal"}
        elif self.kind == "boolean":
            body["DefaultValue"] = False
            body["OptionSet"] = {
                "TrueOption": {"Value": 1, "Label": label("Yes")},
                "FalseOption": {"Value": 0, "Label": label("No")},
                "OptionSetType": "Boolean",
            }
        elif self.kind == "picklist":
            options = []
            for text, value in self.options.items():
                option: JsonObject = {"Label": label(text)}
                if value is not None:
                    option["Value"] = value
                options.append(option)
            body["OptionSet"] = {
                "@odata.type": _CRM + "OptionSetMetadata",
                "Options": options,
                "IsGlobal": False,
                "OptionSetType": "Picklist",
            }
        if self.is_primary_name:
            body["IsPrimaryName"] = True
        return body


@dataclass(frozen=True)
class KeyDefinition:
    """An alternate key to create over ``columns`` (logical names)."""

    schema_name: str
    columns: tuple[str, ...]
    label: str

    def body(self) -> JsonObject:
        """The JSON to POST to ``EntityDefinitions(...)/Keys`` (reference 3.3)."""
        return {
            "SchemaName": self.schema_name,
            "DisplayName": label(self.label),
            "KeyAttributes": list(self.columns),
        }


@dataclass(frozen=True)
class TableDefinition:
    """A custom table to create, with its primary name column."""

    schema_name: str
    label: str
    collection_label: str
    primary_name: ColumnDefinition
    description: str = ""
    ownership: Literal["UserOwned", "OrganizationOwned"] = "UserOwned"
    has_notes: bool = False
    has_activities: bool = False

    @property
    def logical_name(self) -> str:
        """The logical name Dataverse derives: the schema name in lower case."""
        return self.schema_name.lower()

    def body(self) -> JsonObject:
        """The JSON to POST to ``EntityDefinitions`` (the documented ``EntityMetadata``)."""
        primary = ColumnDefinition(
            self.primary_name.schema_name,
            "string",
            self.primary_name.label,
            self.primary_name.description,
            max_length=self.primary_name.max_length,
            is_primary_name=True,
        )
        return {
            "@odata.type": _CRM + "EntityMetadata",
            "SchemaName": self.schema_name,
            "DisplayName": label(self.label),
            "DisplayCollectionName": label(self.collection_label),
            "Description": label(self.description or self.label),
            "OwnershipType": self.ownership,
            "IsActivity": False,
            "HasActivities": self.has_activities,
            "HasNotes": self.has_notes,
            "Attributes": [primary.body()],
        }


def label(text: str) -> JsonObject:
    """A ``Label`` with one English ``LocalizedLabel``."""
    return {
        "@odata.type": _CRM + "Label",
        "LocalizedLabels": [
            {"@odata.type": _CRM + "LocalizedLabel", "Label": text, "LanguageCode": LANGUAGE_CODE}
        ],
    }


class MetadataApi:
    """Table, column and key definitions of one environment, read and created through ``client``.

    ``solution`` (a solution's unique name) adds every created component to that solution.
    """

    def __init__(
        self,
        client: DataverseClient,
        *,
        solution: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self._headers = {"MSCRM.SolutionUniqueName": solution} if solution else {}
        self._sleep = sleep

    # -- reading -------------------------------------------------------------------------

    def entity(self, logical_name: str) -> EntityInfo | None:
        """The table ``logical_name``, or None when the environment has no such table."""
        try:
            found = self.client.get(
                f"{_entity_path(logical_name)}", {"$select": ",".join(_ENTITY_SELECT)}
            )
        except DataverseError as error:
            if error.status == 404:
                return None
            raise
        return _entity_info(found)

    def entities(self, *, custom_only: bool = False) -> list[EntityInfo]:
        """Every table (``custom_only``: the unmanaged custom tables, i.e. the customer's own)."""
        params = {"$select": ",".join(_ENTITY_SELECT)}
        if custom_only:
            params["$filter"] = "IsCustomEntity eq true and IsManaged eq false"
        found = self.client.get("EntityDefinitions", params)
        return [_entity_info(item) for item in found.get("value", [])]

    def attributes(self, table: str) -> dict[str, AttributeInfo]:
        """The columns of ``table`` by logical name."""
        found = self.client.get(
            f"{_entity_path(table)}/Attributes",
            {"$select": "LogicalName,SchemaName,AttributeType,IsCustomAttribute"},
        )
        columns = [
            AttributeInfo(
                str(item["LogicalName"]),
                str(item.get("SchemaName") or item["LogicalName"]),
                str(item.get("AttributeType") or ""),
                bool(item.get("IsCustomAttribute")),
            )
            for item in found.get("value", [])
        ]
        return {column.logical_name: column for column in columns}

    def string_max_length(self, table: str, column: str) -> int | None:
        """``MaxLength`` of a string column (reference 11.1: the StringAttributeMetadata cast)."""
        found = self.client.get(
            f"{_entity_path(table)}/Attributes({_quoted('LogicalName', column)})"
            f"/{_CRM}StringAttributeMetadata",
            {"$select": "LogicalName,MaxLength"},
        )
        value = found.get("MaxLength")
        return int(value) if isinstance(value, int) else None

    def keys(self, table: str) -> list[KeyInfo]:
        """The alternate keys of ``table`` with their index status."""
        found = self.client.get(
            f"{_entity_path(table)}/Keys",
            {"$select": "LogicalName,SchemaName,KeyAttributes,EntityKeyIndexStatus"},
        )
        return [_key_info(item) for item in found.get("value", [])]

    # -- creating ------------------------------------------------------------------------

    def create_column(self, table: str, column: ColumnDefinition) -> str:
        """Create ``column`` on ``table``; returns the new column's OData-EntityId."""
        reply = self.client.post(
            f"{_entity_path(table)}/Attributes", column.body(), headers=self._headers
        )
        return str(reply.get("@odata.id", ""))

    def create_key(self, table: str, key: KeyDefinition) -> str:
        """Start building alternate ``key`` on ``table``; see :meth:`wait_for_key`."""
        reply = self.client.post(f"{_entity_path(table)}/Keys", key.body(), headers=self._headers)
        return str(reply.get("@odata.id", ""))

    def create_table(self, table: TableDefinition) -> str:
        """Create custom ``table`` with its primary name column; returns its OData-EntityId."""
        reply = self.client.post("EntityDefinitions", table.body(), headers=self._headers)
        return str(reply.get("@odata.id", ""))

    def publish(self, tables: Sequence[str]) -> None:
        """``PublishXml`` for ``tables``, so model-driven apps show the changes."""
        entities = "".join(f"<entity>{escape(name)}</entity>" for name in tables)
        xml = f"<importexportxml><entities>{entities}</entities></importexportxml>"
        self.client.post("PublishXml", {"ParameterXml": xml})

    def publish_all(self) -> None:
        """``PublishAllXml``: publish every unpublished customization."""
        self.client.post("PublishAllXml")

    def wait_for_key(
        self, table: str, schema_name: str, *, timeout_s: float = 600.0, poll_s: float = 2.0
    ) -> KeyInfo:
        """Poll the key's ``EntityKeyIndexStatus`` until it is Active (reference 3.2).

        Raises :class:`KeyNotActiveError` when the build failed (existing rows hold duplicate
        values) or is still Pending/InProgress after ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        wanted = schema_name.lower()
        while True:
            key = next((k for k in self.keys(table) if k.logical_name == wanted), None)
            if key is None:
                raise KeyNotActiveError(f"alternate key {schema_name} on {table} does not exist")
            if key.status == "Active":
                return key
            if key.status == "Failed":
                raise KeyNotActiveError(
                    f"alternate key {schema_name} on {table}: the index build failed (do rows "
                    f"already hold duplicate {', '.join(key.key_attributes)} values?); fix the "
                    "data, then reactivate the key (ReactivateEntityKey)"
                )
            if time.monotonic() >= deadline:
                raise KeyNotActiveError(
                    f"alternate key {schema_name} on {table} is still {key.status} after "
                    f"{timeout_s:g} s; run the command again later"
                )
            self._sleep(poll_s)


_ENTITY_SELECT = (
    "LogicalName",
    "SchemaName",
    "EntitySetName",
    "PrimaryIdAttribute",
    "PrimaryNameAttribute",
    "IsCustomEntity",
    "IsManaged",
    "CanCreateAttributes",
)


def _quoted(name: str, value: str) -> str:
    escaped = value.replace("'", "''")
    return f"{name}='{escaped}'"


def _entity_path(logical_name: str) -> str:
    return f"EntityDefinitions({_quoted('LogicalName', logical_name)})"


def _entity_info(item: Mapping[str, Any]) -> EntityInfo:
    return EntityInfo(
        logical_name=str(item["LogicalName"]),
        schema_name=str(item.get("SchemaName") or item["LogicalName"]),
        entity_set_name=str(item.get("EntitySetName") or ""),
        primary_id=str(item.get("PrimaryIdAttribute") or ""),
        primary_name=item.get("PrimaryNameAttribute"),
        is_custom=bool(item.get("IsCustomEntity")),
        is_managed=bool(item.get("IsManaged")),
        metadata_id=str(item.get("MetadataId") or ""),
        can_create_attributes=_managed_flag(item.get("CanCreateAttributes"), default=True),
    )


def _managed_flag(value: Any, *, default: bool) -> bool:
    """The ``Value`` of a BooleanManagedProperty (``{"Value": true, "CanBeChanged": ...}``)."""
    if isinstance(value, Mapping) and isinstance(value.get("Value"), bool):
        return bool(value["Value"])
    return default


def _key_info(item: Mapping[str, Any]) -> KeyInfo:
    return KeyInfo(
        logical_name=str(item.get("LogicalName") or item["SchemaName"]).lower(),
        schema_name=str(item["SchemaName"]),
        key_attributes=tuple(str(a) for a in item.get("KeyAttributes") or ()),
        status=str(item.get("EntityKeyIndexStatus") or "Pending"),
        metadata_id=str(item.get("MetadataId") or ""),
    )
