"""What changed between two maps: objects and columns added, removed or changed, field by field.

Objects are matched by ``name`` and columns by ``target`` within an object, so a reordered map
shows no change; a renamed object shows as one removed and one added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from producers.mapping.model import ColumnMap, MigrationMap, ObjectMap

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference: ``where`` (``customers.telephone1.sources``), its kind and the values."""

    kind: ChangeKind
    where: str
    before: Any = None
    after: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.where}{_details(self.after)}"
        if self.kind == "removed":
            return f"- {self.where}{_details(self.before)}"
        return f"~ {self.where}: {_show(self.before)} → {_show(self.after)}"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _details(value: Any) -> str:
    if isinstance(value, dict):
        value = {
            name: item for name, item in value.items() if item not in (None, "", [], {}, False)
        }
    return f": {_show(value)}" if value not in (None, {}) else ""


def _fields(before: dict[str, Any], after: dict[str, Any], where: str) -> list[Change]:
    return [
        Change("changed", f"{where}.{name}", before.get(name), after.get(name))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


def _columns(before: ObjectMap, after: ObjectMap) -> list[Change]:
    old = {column.target: column for column in before.columns}
    new = {column.target: column for column in after.columns}
    changes: list[Change] = []
    for target in [t for t in old if t not in new]:
        changes.append(Change("removed", f"{before.name}.{target}", _dump(old[target])))
    for target in [t for t in new if t not in old]:
        changes.append(Change("added", f"{after.name}.{target}", None, _dump(new[target])))
    for target in [t for t in new if t in old]:
        changes += _fields(_dump(old[target]), _dump(new[target]), f"{after.name}.{target}")
    return changes


def _dump(column: ColumnMap) -> dict[str, Any]:
    return column.model_dump(mode="json")


def diff_maps(before: MigrationMap, after: MigrationMap) -> list[Change]:
    """Every difference between two maps, map-level first, then object by object."""
    changes = _fields(
        before.model_dump(mode="json", exclude={"objects"}),
        after.model_dump(mode="json", exclude={"objects"}),
        "map",
    )
    old = {obj.name: obj for obj in before.objects}
    new = {obj.name: obj for obj in after.objects}
    for name in [n for n in old if n not in new]:
        changes.append(Change("removed", f"object {name}", old[name].target))
    for name in [n for n in new if n not in old]:
        changes.append(Change("added", f"object {name}", None, new[name].target))
    for name in [n for n in new if n in old]:
        changes += _fields(
            old[name].model_dump(mode="json", exclude={"columns"}),
            new[name].model_dump(mode="json", exclude={"columns"}),
            name,
        )
        changes += _columns(old[name], new[name])
    return changes
