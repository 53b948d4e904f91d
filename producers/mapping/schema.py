"""Schema provisioning: the custom tables, columns and alternate keys a map needs in Dataverse.

:func:`plan` compares what the map asks for with what the environment already has and lists
only the missing changes: custom tables (``custom_table: true``), custom columns (``custom:
true``), and on every target table the ``w4a_sourcekey`` column with an alternate key on it,
which makes every migrated row addressable by its work4all key (not on the few tables that take
no custom columns, such as ``annotation``: their rows are addressed by their deterministic ids).
:func:`apply` makes those changes through the metadata API, one at a time, and records each as
``SchemaChangeApplied``; applying again plans nothing and changes nothing.

A Professional licence allows at most 15 custom tables (reference 11.3, a contractual limit the
API does not enforce); the plan counts the environment's own custom tables (unmanaged custom
tables) plus the planned ones and :func:`apply` stops before changing anything when the cap
would be exceeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from consumers.dataverse.metadata import (
    ATTRIBUTE_TYPE_OF_KIND,
    AttributeInfo,
    ColumnDefinition,
    ColumnKind,
    EntityInfo,
    KeyDefinition,
    KeyInfo,
    MetadataApi,
    TableDefinition,
)
from ledger.event_types import SchemaChangeApplied
from ledger.events import Event
from ledger.log import EventLog
from producers.mapping.gate import MapNotConfirmedError, confirmations
from producers.mapping.model import ColumnMap, MapError, MigrationMap, ObjectMap

SOURCE_KEY_COLUMN = "w4a_sourcekey"
SOURCE_KEY_LENGTH = 100
"""characters; a key may hold 900 bytes and Dataverse counts two per character."""
PROFESSIONAL_CUSTOM_TABLE_CAP = 15
MAX_KEYS_PER_TABLE = 10
DEFAULT_KEY_TIMEOUT_S = 600.0

ChangeKind = Literal["table", "column", "key", "key_index"]
"""``key_index``: a key that exists but whose index is still being built; apply waits for it."""


class SchemaPlanError(MapError):
    """The map cannot be provisioned as it stands (conflicts, missing tables, failed keys)."""


class LicenceCapError(SchemaPlanError):
    """Provisioning would exceed the licence's custom-table cap; nothing was changed."""


class MetadataReader(Protocol):
    """What :func:`plan` reads of an environment (``MetadataApi`` provides it)."""

    def entity(self, logical_name: str) -> EntityInfo | None:
        """The table, or None when it does not exist."""
        ...

    def entities(self, *, custom_only: bool = False) -> list[EntityInfo]:
        """Every table, or only the environment's own custom tables."""
        ...

    def attributes(self, table: str) -> dict[str, AttributeInfo]:
        """The columns of a table by logical name."""
        ...

    def string_max_length(self, table: str, column: str) -> int | None:
        """MaxLength of a string column."""
        ...

    def keys(self, table: str) -> list[KeyInfo]:
        """The alternate keys of a table."""
        ...


@dataclass(frozen=True)
class SchemaChange:
    """One missing piece of schema: a table, a column or an alternate key."""

    kind: ChangeKind
    table: str
    name: str
    definition: TableDefinition | ColumnDefinition | KeyDefinition | None
    reason: str

    @property
    def detail(self) -> str:
        """A short description of what is created, e.g. ``string(100)``."""
        definition = self.definition
        if isinstance(definition, ColumnDefinition):
            if definition.kind in ("string", "memo"):
                return f"{definition.kind}({definition.max_length})"
            return definition.kind
        if isinstance(definition, KeyDefinition):
            return f"key on {', '.join(definition.columns)}"
        if isinstance(definition, TableDefinition):
            return f"custom table, primary name {definition.primary_name.logical_name}"
        return "wait for the key's index to become Active"


@dataclass(frozen=True)
class SchemaPlan:
    """The changes a map needs, the problems that block them, and notes worth reading."""

    map_hash: str
    licence: str
    changes: tuple[SchemaChange, ...]
    custom_tables_existing: int
    problems: tuple[str, ...] = ()
    licence_problem: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        """Whether nothing needs to change."""
        return not self.changes

    @property
    def new_tables(self) -> list[str]:
        """The custom tables the plan creates."""
        return [change.table for change in self.changes if change.kind == "table"]


def plan(migration_map: MigrationMap, metadata_reader: MetadataReader) -> SchemaPlan:
    """The schema changes ``migration_map`` needs that the environment does not have yet."""
    problems: list[str] = []
    notes: list[str] = []
    changes: list[SchemaChange] = []
    targets = _targets(migration_map)
    custom_tables = {obj.target for obj in migration_map.objects if obj.custom_table}
    wanted, conflicts = _wanted_columns(migration_map)
    problems.extend(conflicts)
    existing: dict[str, EntityInfo | None] = {t: metadata_reader.entity(t) for t in targets}

    for table in targets:
        if existing[table] is None and table not in custom_tables:
            problems.append(
                f"table {table} does not exist in the environment and the map does not mark it "
                "custom_table: true"
            )
        elif existing[table] is None:
            changes.append(_table_change(table, wanted[table], migration_map))
    closed = {t for t, e in existing.items() if e is not None and not e.can_create_attributes}
    for table in sorted(closed):
        declared = sorted(set(wanted[table]) - {SOURCE_KEY_COLUMN})
        if declared:
            problems.append(
                f"{table} takes no custom columns (CanCreateAttributes is false), but the map "
                f"declares {', '.join(declared)}"
            )
        notes.append(
            f"{table} takes no custom columns: no {SOURCE_KEY_COLUMN} key there; its rows are "
            "addressed by their deterministic ids"
        )
    for table in targets:
        entity = existing[table]
        if (entity is None and table not in custom_tables) or table in closed:
            continue
        columns = metadata_reader.attributes(table) if entity is not None else {}
        primary = _primary_name(table) if entity is None else None
        for column in wanted[table].values():
            if column.logical_name == primary:
                continue  # created with the table
            found = columns.get(column.logical_name)
            if found is None:
                changes.append(
                    SchemaChange("column", table, column.logical_name, column, _why(column))
                )
                continue
            problems.extend(_type_conflict(table, column, found))
            if column.kind == "string" and found.attribute_type == "String":
                length = metadata_reader.string_max_length(table, column.logical_name)
                if length is not None and column.max_length and length < column.max_length:
                    notes.append(
                        f"{table}.{column.logical_name} exists with MaxLength {length}, the map "
                        f"asks for {column.max_length}: longer values will be rejected"
                    )
    for table in targets:
        entity = existing[table]
        if (entity is None and table not in custom_tables) or table in closed:
            continue
        keys = metadata_reader.keys(table) if entity is not None else []
        change, problem = _key_change(table, keys)
        if change is not None:
            changes.append(change)
        if problem:
            problems.append(problem)

    custom_count = (
        len(metadata_reader.entities(custom_only=True))
        if migration_map.settings.licence == "professional"
        else 0
    )
    new_tables = sum(1 for change in changes if change.kind == "table")
    licence_problem = _licence_problem(migration_map.settings.licence, custom_count, new_tables)
    if licence_problem:
        problems.append(licence_problem)
    order = {"table": 0, "column": 1, "key": 2, "key_index": 3}
    return SchemaPlan(
        map_hash=migration_map.content_hash,
        licence=migration_map.settings.licence,
        changes=tuple(sorted(changes, key=lambda c: order[c.kind])),
        custom_tables_existing=custom_count,
        problems=tuple(problems),
        licence_problem=licence_problem,
        notes=tuple(notes),
    )


def apply(
    plan: SchemaPlan,
    client: MetadataApi,
    log: EventLog,
    run_id: str,
    *,
    key_timeout_s: float = DEFAULT_KEY_TIMEOUT_S,
) -> list[Event]:
    """Make the planned changes; append one ``SchemaChangeApplied`` per change; return them.

    Refuses, before changing anything, a plan with problems, a map that has not been
    confirmed, and a plan that would exceed the licence's custom-table cap (counted again
    here, as the environment may have changed since the plan). Tables and columns are created
    first and published, then the keys, each awaited until its index is Active.
    """
    if plan.licence_problem:
        raise LicenceCapError(plan.licence_problem + "; nothing was changed")
    if plan.problems:
        raise SchemaPlanError(
            "the schema plan has problems; nothing was changed:\n- " + "\n- ".join(plan.problems)
        )
    if plan.map_hash not in confirmations(log):
        raise MapNotConfirmedError(
            f"the map (hash {plan.map_hash[:12]}) has not been confirmed; nothing was changed. "
            "Review it, then run 'crmledger map confirm MAP --by NAME'."
        )
    if plan.licence == "professional" and plan.new_tables:
        now = len(client.entities(custom_only=True))
        problem = _licence_problem(plan.licence, now, len(plan.new_tables))
        if problem:
            raise LicenceCapError(problem + "; nothing was changed")

    events: list[Event] = []
    structural = [c for c in plan.changes if c.kind in ("table", "column")]
    for change in structural:
        if isinstance(change.definition, TableDefinition):
            client.create_table(change.definition)
        elif isinstance(change.definition, ColumnDefinition):
            client.create_column(change.table, change.definition)
        events.append(_record(log, change, plan, run_id))
    if structural:
        client.publish(sorted({change.table for change in structural}))
    for change in plan.changes:
        if change.kind not in ("key", "key_index"):
            continue
        if isinstance(change.definition, KeyDefinition):
            client.create_key(change.table, change.definition)
        client.wait_for_key(change.table, change.name, timeout_s=key_timeout_s)
        events.append(_record(log, change, plan, run_id))
    return events


# -- planning helpers -----------------------------------------------------------------------


def _targets(migration_map: MigrationMap) -> list[str]:
    seen: dict[str, None] = {}
    for obj in migration_map.objects:
        seen.setdefault(obj.target, None)
    return list(seen)


def _source_key_column() -> ColumnDefinition:
    return ColumnDefinition(
        SOURCE_KEY_COLUMN,
        "string",
        "work4all source key",
        "The work4all table and key this row was migrated from (crmledger alternate key).",
        max_length=SOURCE_KEY_LENGTH,
    )


def _wanted_columns(
    migration_map: MigrationMap,
) -> tuple[dict[str, dict[str, ColumnDefinition]], list[str]]:
    """Per target table, the columns crmledger provisions; and conflicting declarations."""
    wanted: dict[str, dict[str, ColumnDefinition]] = {}
    conflicts: list[str] = []
    for obj in migration_map.objects:
        columns = wanted.setdefault(obj.target, {SOURCE_KEY_COLUMN: _source_key_column()})
        for column_map in obj.columns:
            if not column_map.custom:
                continue
            column, problem = _column_of(obj, column_map)
            if problem:
                conflicts.append(problem)
                continue
            assert column is not None
            earlier = columns.get(column.logical_name)
            if earlier is None:
                columns[column.logical_name] = column
            elif earlier.kind != column.kind or dict(earlier.options) != dict(column.options):
                conflicts.append(
                    f"{obj.target}.{column.logical_name} is declared twice with different "
                    f"types or options ({earlier.kind}, {column.kind}); make them agree"
                )
            elif (column.max_length or 0) > (earlier.max_length or 0):
                columns[column.logical_name] = column
    return wanted, conflicts


def _column_of(obj: ObjectMap, column_map: ColumnMap) -> tuple[ColumnDefinition | None, str]:
    name = column_map.target.lower()
    where = f"object {obj.name}: custom column {column_map.target}"
    prefix, sep, rest = name.partition("_")
    if not sep or not prefix or not rest:
        return None, f"{where} needs a publisher prefix (e.g. w4a_)"
    kind: ColumnKind | None = column_map.type
    if kind is None:
        return None, f"{where} has no type"
    if kind == "picklist" and not column_map.options:
        return None, f"{where} is a picklist without options"
    sources = ", ".join(f"{obj.primary_source}.{source}" for source in column_map.sources)
    description = column_map.note or (f"work4all {sources}" if sources else "added by crmledger")
    definition = ColumnDefinition(
        name,
        kind,
        _label_of(name),
        description,
        max_length=column_map.max_length,
        options=dict(column_map.options or {}),
    )
    return definition, ""


def _label_of(logical_name: str) -> str:
    text = logical_name.partition("_")[2].replace("_", " ")
    return text[:1].upper() + text[1:]


def _primary_name(table: str) -> str:
    return f"{table.partition('_')[0]}_name"


def _table_change(
    table: str, columns: dict[str, ColumnDefinition], migration_map: MigrationMap
) -> SchemaChange:
    primary_name = _primary_name(table)
    declared = columns.get(primary_name)
    primary = ColumnDefinition(
        primary_name,
        "string",
        "Name",
        declared.description if declared else "The primary name of the row.",
        max_length=(declared.max_length if declared else None) or 100,
    )
    objects = [obj.name for obj in migration_map.objects if obj.target == table]
    label = _label_of(table)
    definition = TableDefinition(
        schema_name=table,
        label=label,
        collection_label=label + "s",
        primary_name=primary,
        description=f"Migrated from work4all by crmledger ({', '.join(objects)}).",
    )
    return SchemaChange("table", table, table, definition, f"custom table of {', '.join(objects)}")


def _why(column: ColumnDefinition) -> str:
    if column.logical_name == SOURCE_KEY_COLUMN:
        return "source key (alternate key column)"
    return f"custom column: {column.description}"


def _type_conflict(table: str, column: ColumnDefinition, found: AttributeInfo) -> list[str]:
    expected = ATTRIBUTE_TYPE_OF_KIND[column.kind]
    if found.attribute_type == expected:
        return []
    return [
        f"{table}.{column.logical_name} exists as {found.attribute_type}, the map needs "
        f"{expected}; a column's type cannot change: rename the map's column or the existing one"
    ]


def _key_name(table: str) -> str:
    return f"w4a_{table.removeprefix('w4a_')}_sourcekey"


def _key_change(table: str, keys: Sequence[KeyInfo]) -> tuple[SchemaChange | None, str]:
    for key in keys:
        if key.key_attributes != (SOURCE_KEY_COLUMN,):
            continue
        if key.status == "Active":
            return None, ""
        if key.status == "Failed":
            return None, (
                f"alternate key {key.schema_name} on {table} failed to build (duplicate "
                f"{SOURCE_KEY_COLUMN} values?); fix the data and reactivate it"
            )
        return SchemaChange("key_index", table, key.logical_name, None, key.status), ""
    if len(keys) >= MAX_KEYS_PER_TABLE:
        return None, (
            f"{table} already has {len(keys)} alternate keys, the most a table can have; "
            f"remove one to add the {SOURCE_KEY_COLUMN} key"
        )
    name = _key_name(table)
    definition = KeyDefinition(name, (SOURCE_KEY_COLUMN,), "work4all source key")
    return SchemaChange("key", table, name, definition, "source key (upsert by work4all key)"), ""


def _licence_problem(licence: str, existing: int, planned: int) -> str | None:
    if licence != "professional" or planned == 0:
        return None
    if existing + planned <= PROFESSIONAL_CUSTOM_TABLE_CAP:
        return None
    return (
        f"the Professional licence allows {PROFESSIONAL_CUSTOM_TABLE_CAP} custom tables: the "
        f"environment has {existing} and the map adds {planned} "
        f"({existing + planned} > {PROFESSIONAL_CUSTOM_TABLE_CAP}); use an Enterprise licence "
        "(settings.licence: enterprise) or map those objects to standard tables"
    )


def _record(log: EventLog, change: SchemaChange, plan: SchemaPlan, run_id: str) -> Event:
    definition = change.definition.body() if change.definition is not None else {}
    payload = SchemaChangeApplied(
        table=change.table,
        change=f"create_{change.kind}" if change.kind != "key_index" else "key_activated",
        definition={"name": change.name, "map_hash": plan.map_hash, "body": definition},
    )
    event = Event.create(
        payload,
        run_id=run_id,
        key=f"schema:{change.table}:{change.name}",
        cause=f"{plan.map_hash}|{change.kind}",
    )
    log.append([event])
    return event
