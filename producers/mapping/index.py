"""Pass 1 of the transform stage: what every decision needs to know about the whole run.

One read of a run's ``SourceRecordExtracted`` events collects, in plain dicts and sets of keys:

- which source keys each map object holds (after its filter), so lookups resolve within the run;
- the ``Mitarbeiter`` (owners are matched by e-mail; a user who left is not an owner);
- the sum of the ``RABezSumme`` payments of each open item;
- groups of partner rows that are the same company (duplicates, and a company that is both
  customer and supplier), with the surviving record of each group;
- how each table writes its dates, so a date written differently is seen as a text date.

Records of mapped tables are spooled to JSON-lines files, one per (phase, object), so pass 2
decides parents before children whatever order the log returns them in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from producers.mapping import rules
from producers.mapping.model import Filter, MigrationMap, ObjectMap
from producers.work4all.tables import TABLES, Kind

PARTNER_TARGET = "account"
"""Objects with this target take part in duplicate detection and customer/supplier merging."""

_MERGE_LINKS = {
    "Kunden": ("AdresseWirdGepflegtBeiLieferantCode", "Lieferanten"),
    "Lieferanten": ("AdresseWirdGepflegtBeiKundeCode", "Kunden"),
}
"""work4all's own record that one company is kept both as customer and as supplier."""


@dataclass(frozen=True, slots=True)
class User:
    """One work4all ``Mitarbeiter``, as an owner candidate."""

    code: int
    email: str | None
    first: str
    last: str
    departed: bool

    @property
    def name(self) -> str:
        """First and last name."""
        return f"{self.first} {self.last}".strip()


Member = tuple[str, str]
"""(object name, source key) of one record."""


@dataclass(slots=True)
class _GroupEntry:
    rank: int
    nummer: int
    key: str
    object_name: str


def matches(record_filter: Filter | None, values: Mapping[str, Any]) -> bool:
    """Whether a record's normalised ``values`` pass an object's filter."""
    if record_filter is None:
        return True
    value = values.get(record_filter.column)
    op, wanted = record_filter.op, record_filter.value
    empty = value is None or value == ""
    if op == "not_empty":
        return not empty
    if op == "empty":
        return empty
    if op == "true":
        return value is True
    if op == "false":
        return value is False or value is None
    if op in ("eq", "ne"):
        equal = _same(value, wanted)
        return equal if op == "eq" else not equal
    options = wanted if isinstance(wanted, list | tuple | set) else [wanted]
    found = any(_same(value, option) for option in options)
    return found if op == "in" else not found


def _same(value: Any, wanted: Any) -> bool:
    if value == wanted:
        return True
    return value is not None and wanted is not None and str(value) == str(wanted)


@dataclass
class RunIndex:
    """Everything pass 1 learns about a run."""

    migration_map: MigrationMap
    ranks: dict[str, int] = field(default_factory=dict)
    """object name → position in decision order (phase, then map order)."""
    object_keys: dict[str, set[str]] = field(default_factory=dict)
    extracted: Counter[str] = field(default_factory=Counter)
    """records per object (filtered-out records count for the table's first object)."""
    reference: Counter[str] = field(default_factory=Counter)
    """records of tables no object maps (read for owners, payments, …; not decided)."""
    users: dict[int, User] = field(default_factory=dict)
    payments: dict[int, int] = field(default_factory=dict)
    """open item ``Code`` → Σ RABezSumme.Summe in cents."""
    redirects: dict[Member, Member] = field(default_factory=dict)
    """a duplicate or merged record → the record whose target row it becomes."""
    merged: set[Member] = field(default_factory=set)
    """records of another partner object (suppliers) merged into a survivor's account."""
    absorbed: dict[Member, list[Member]] = field(default_factory=dict)
    """survivor → the records redirected to it."""
    date_shapes: dict[str, rules.DateShape] = field(default_factory=dict)
    """table → how most of its raw dates are written."""
    _groups: dict[tuple[str, ...], list[_GroupEntry]] = field(default_factory=dict)
    _links: list[tuple[Member, tuple[str, str]]] = field(default_factory=list)
    _shapes: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ordered = sorted(
            enumerate(self.migration_map.objects), key=lambda item: (item[1].phase, item[0])
        )
        self.ranks = {obj.name: rank for rank, (_, obj) in enumerate(ordered)}
        self.object_keys = {obj.name: set() for obj in self.migration_map.objects}

    def object_for(self, table: str, values: Mapping[str, Any]) -> tuple[ObjectMap | None, bool]:
        """The object a record of ``table`` belongs to, and whether it passed that filter.

        ``(None, False)`` for a table no object maps; ``(first object, False)`` for a record
        every object's filter leaves out.
        """
        candidates = self.migration_map.objects_for(table)
        if not candidates:
            return None, False
        for obj in sorted(candidates, key=lambda o: self.ranks[o.name]):
            if matches(obj.filter, values):
                return obj, True
        return candidates[0], False

    def add(self, payload: Mapping[str, Any]) -> ObjectMap | None:
        """Learn from one ``SourceRecordExtracted`` payload; the object it is decided under."""
        table = str(payload["table"])
        values: Mapping[str, Any] = payload["normalised"]
        key = str(payload["source_key"])
        self._learn_reference(table, values)
        self._learn_dates(table, payload.get("raw") or {})
        obj, passed = self.object_for(table, values)
        if obj is None:
            self.reference[table] += 1
            return None
        self.extracted[obj.name] += 1
        if passed:
            self.object_keys[obj.name].add(key)
            if obj.target == PARTNER_TARGET:
                self._learn_partner(obj, key, table, values)
        return obj

    def _learn_reference(self, table: str, values: Mapping[str, Any]) -> None:
        if table == "Mitarbeiter":
            code = values.get("Code")
            if isinstance(code, int):
                email = values.get("eMail")
                self.users[code] = User(
                    code,
                    email.strip() if isinstance(email, str) and email.strip() else None,
                    str(values.get("Vorname") or ""),
                    str(values.get("Name") or ""),
                    values.get("Ausgeschieden") is True,
                )
        elif table == "RABezSumme":
            item = values.get("RACode")
            if isinstance(item, int):
                self.payments[item] = self.payments.get(item, 0) + rules.cents(values.get("Summe"))

    def _learn_dates(self, table: str, raw: Mapping[str, Any]) -> None:
        spec = TABLES.get(table)
        if spec is None:
            return
        shapes = self._shapes.setdefault(table, Counter())
        for column in spec.columns:
            if column.kind is Kind.DATETIME:
                shape = rules.date_shape(raw.get(column.name))
                if shape is not None:
                    shapes[shape] += 1

    def _learn_partner(
        self, obj: ObjectMap, key: str, table: str, values: Mapping[str, Any]
    ) -> None:
        rule = self.migration_map.settings.duplicate_rule
        print_ = rules.fingerprint(values, rule)
        nummer = values.get("Nummer")
        entry = _GroupEntry(
            self.ranks[obj.name], nummer if isinstance(nummer, int) else 0, key, obj.name
        )
        if print_ is not None:
            self._groups.setdefault(print_, []).append(entry)
        else:
            self._groups.setdefault(("\x00", obj.name, key), []).append(entry)
        link = _MERGE_LINKS.get(table)
        if link is not None:
            other = values.get(link[0])
            if isinstance(other, int):
                self._links.append(((obj.name, key), (link[1], str(other))))

    def finish(self) -> None:
        """Settle duplicate groups and native date formats once every record was seen."""
        for table, shapes in self._shapes.items():
            if shapes:
                shape = shapes.most_common(1)[0][0]
                self.date_shapes[table] = shape  # type: ignore[assignment]
        self._shapes.clear()
        groups = self._merge_linked_groups()
        for entries in groups:
            if len(entries) < 2:
                continue
            entries.sort(key=lambda e: (e.rank, e.nummer, _int_key(e.key)))
            survivor = (entries[0].object_name, entries[0].key)
            first_per_object: dict[str, Member] = {entries[0].object_name: survivor}
            for entry in entries[1:]:
                member = (entry.object_name, entry.key)
                if entry.object_name in first_per_object:
                    self.redirects[member] = survivor
                else:
                    first_per_object[entry.object_name] = member
                    self.redirects[member] = survivor
                    self.merged.add(member)
                self.absorbed.setdefault(survivor, []).append(member)
        self._groups.clear()

    def _merge_linked_groups(self) -> list[list[_GroupEntry]]:
        groups = list(self._groups.values())
        if not self._links:
            return groups
        where: dict[Member, int] = {}
        for number, entries in enumerate(groups):
            for entry in entries:
                where[(entry.object_name, entry.key)] = number
        parent = list(range(len(groups)))

        def root(number: int) -> int:
            while parent[number] != number:
                parent[number] = parent[parent[number]]
                number = parent[number]
            return number

        tables = {obj.name: obj.primary_source for obj in self.migration_map.objects}
        by_table: dict[tuple[str, str], int] = {
            (tables[name], key): number for (name, key), number in where.items()
        }
        for member, (table, key) in self._links:
            first, second = where.get(member), by_table.get((table, key))
            if first is not None and second is not None:
                parent[root(first)] = root(second)
        merged: dict[int, list[_GroupEntry]] = {}
        for number, entries in enumerate(groups):
            merged.setdefault(root(number), []).extend(entries)
        self._links.clear()
        return list(merged.values())


def _int_key(key: str) -> int:
    try:
        return int(key)
    except ValueError:
        return 0


class Spool:
    """Records of mapped tables, one JSON-lines file per object, read back in decision order."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[int, IO[str]] = {}

    def add(self, rank: int, event_id: str, key: str, payload: Mapping[str, Any]) -> None:
        """Keep one record for the object at ``rank``."""
        spool = self._files.get(rank)
        if spool is None:
            spool = (self._directory / f"{rank:04d}.jsonl").open("w", encoding="utf-8")
            self._files[rank] = spool
        spool.write(json.dumps([event_id, key, payload], ensure_ascii=False) + "\n")

    def ranks(self) -> list[int]:
        """The ranks that hold records, in order."""
        return sorted(self._files)

    def read(self, rank: int) -> Any:
        """Yield ``(event_id, key, payload)`` of the object at ``rank``, in extraction order."""
        self._files[rank].close()
        with (self._directory / f"{rank:04d}.jsonl").open(encoding="utf-8") as spool:
            for line in spool:
                event_id, key, payload = json.loads(line)
                yield str(event_id), str(key), payload

    def close(self) -> None:
        """Close every file (the directory is removed by its owner)."""
        for spool in self._files.values():
            spool.close()
