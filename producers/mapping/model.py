"""The map file format: which work4all columns become which Dataverse columns, and how.

A map is YAML. It is versioned (``format_version`` for this file format, ``map_version`` for the
content) and identified by a content hash: the SHA-256 of its canonical JSON, so comments and
layout do not change the hash but any change of meaning does. Nothing moves until a person has
confirmed that hash (``MappingConfirmed``).

Shape::

    format_version: 1
    map_version: "2026.11"
    name: work4all standard Mandant
    settings:
      fallback_owner: admin@contoso.example
      duplicate_rule: name_and_postcode
    objects:
      - name: customers                # unique within the map
        phase: 1                       # ARCHITECTURE.md section 5
        target: account                # Dataverse logical name
        sources: [Kunden]              # the first is the primary table
        key: Code                      # the source key column
        filter: {column: Code, op: not_empty}
        columns:
          - target: name
            sources: [Firma1, Firma2]
            transform: concat
            params: {separator: " "}
            required: true
          - target: w4a_customernumber
            sources: [Nummer]
            transform: text
            custom: true               # a column crmledger adds to Dataverse (schema plan)
            type: string               # for custom columns: Dataverse column type
            max_length: 20
          - target: parentcustomerid_account
            sources: [KundenCode]
            transform: lookup
            params: {object: customers}

A target column that is a lookup names the single-valued navigation property; the transform
stage turns its value into ``<navigation>@odata.bind``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT_VERSION = 1

ColumnType = Literal[
    "string", "memo", "integer", "decimal", "money", "boolean", "datetime", "dateonly", "picklist"
]
"""Dataverse attribute types a custom column may have (metadata API ``*AttributeMetadata``)."""


class MapError(Exception):
    """A map file that cannot be read or is not valid; the message names the file and place."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Strict):
    """Which source rows an object takes: ``column`` ``op`` ``value``."""

    column: str
    op: Literal["not_empty", "empty", "eq", "ne", "in", "not_in", "true", "false"]
    value: Any = None


class ColumnMap(_Strict):
    """One Dataverse column: where its value comes from and how it is made."""

    target: str
    sources: list[str] = Field(default_factory=list)
    transform: str = "copy"
    params: dict[str, Any] = Field(default_factory=dict)
    required: bool = False
    lossy: bool = False
    custom: bool = False
    type: ColumnType | None = None
    max_length: int | None = None
    options: dict[str, int] | None = None
    """for a custom picklist: option label → value."""
    note: str = ""
    """why this column maps as it does (shown in reviews and diffs)."""

    @model_validator(mode="after")
    def _custom_columns_have_a_type(self) -> ColumnMap:
        if self.custom and self.type is None:
            raise ValueError(f"custom column {self.target!r} needs a type")
        return self


class ObjectMap(_Strict):
    """One migrated object: source table(s) into one Dataverse table in one phase."""

    name: str
    phase: int = Field(ge=1, le=9)
    target: str
    sources: list[str] = Field(min_length=1)
    key: str = "Code"
    filter: Filter | None = None
    custom_table: bool = False
    """the target is a table crmledger creates (e.g. ``w4a_openitem``)."""
    columns: list[ColumnMap] = Field(default_factory=list)
    lossy: list[str] = Field(default_factory=list)
    """what this object loses on the way, in words (shown in reviews and reports)."""

    @property
    def primary_source(self) -> str:
        """The table whose rows become this object's records."""
        return self.sources[0]

    def column(self, target: str) -> ColumnMap | None:
        """The column map for ``target``, if any."""
        return next((column for column in self.columns if column.target == target), None)


class MapSettings(_Strict):
    """Map-wide choices."""

    fallback_owner: str | None = None
    """e-mail of the systemuser that owns records whose work4all owner cannot be matched."""
    duplicate_rule: Literal["none", "name_and_postcode", "name"] = "name_and_postcode"
    source_deletion: Literal["delete", "deactivate", "flag"] = "flag"
    licence: Literal["professional", "enterprise"] = "enterprise"


class MigrationMap(_Strict):
    """A whole map."""

    format_version: int = FORMAT_VERSION
    map_version: str = "1"
    name: str = ""
    settings: MapSettings = Field(default_factory=MapSettings)
    objects: list[ObjectMap] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_are_unique(self) -> MigrationMap:
        seen: set[str] = set()
        for obj in self.objects:
            if obj.name in seen:
                raise ValueError(f"object name {obj.name!r} is used twice")
            seen.add(obj.name)
            targets = [column.target for column in obj.columns]
            doubled = {target for target in targets if targets.count(target) > 1}
            if doubled:
                raise ValueError(f"object {obj.name!r} maps {sorted(doubled)} twice")
        return self

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the map's content."""
        return map_hash(self)

    def object(self, name: str) -> ObjectMap | None:
        """The object called ``name``, if any."""
        return next((obj for obj in self.objects if obj.name == name), None)

    def objects_for(self, table: str) -> list[ObjectMap]:
        """The objects whose primary source is ``table``."""
        return [obj for obj in self.objects if obj.primary_source == table]

    def phases(self) -> list[int]:
        """The phases the map uses, in order."""
        return sorted({obj.phase for obj in self.objects})


def map_hash(migration_map: MigrationMap) -> str:
    """SHA-256 (hex) of the canonical JSON of ``migration_map``."""
    canonical = json.dumps(
        migration_map.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
        ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_map(path: Path) -> MigrationMap:
    """Read and validate a map file; :class:`MapError` names the file and the bad place."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MapError(f"{path}: cannot read the map: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise MapError(f"{path}: the map is not UTF-8 text") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        place = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise MapError(f"{path}{place}: not valid YAML: {error}") from error
    return parse_map(document, str(path))


def parse_map(document: Any, source: str = "map") -> MigrationMap:
    """Validate a parsed map document."""
    if not isinstance(document, dict):
        raise MapError(f"{source}: a map is a YAML mapping with 'objects'")
    try:
        return MigrationMap.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(top)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise MapError(f"{source}: invalid map: {problems}") from error


def dump_map(migration_map: MigrationMap) -> str:
    """The map as YAML, in a stable key order, leaving out defaults that say nothing."""
    document = migration_map.model_dump(mode="json", exclude_defaults=True)
    document = {"format_version": migration_map.format_version, **document}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def save_map(migration_map: MigrationMap, path: Path) -> None:
    """Write ``migration_map`` to ``path`` as YAML."""
    path.write_text(dump_map(migration_map), encoding="utf-8")
