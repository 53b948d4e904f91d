"""The proposer: the default map, completed for one export.

``propose(export)`` starts from the default map (:func:`producers.mapping.default.default_map`)
and looks at every column of every table the map reads:

- a column the map uses is left alone;
- a column the map uses but the export lacks was most likely **renamed**: it is matched to one
  of the export's unexpected columns by name (German and English synonyms, abbreviations, edit
  and trigram similarity, see :mod:`.similarity`) and by values (a phone column should hold phone
  numbers, see :mod:`.profile`), and the map's source name is replaced by the export's;
- a **custom field** (``Feld<N>``, labelled by ``IndividualFields``) becomes a standard Dataverse
  column when its label clearly means one (``Mitarbeiterzahl`` → ``numberofemployees``), else a
  new custom column ``w4a_<label>`` typed by its control (a combo becomes an option set);
- an **unexpected** column becomes a free standard column of the object's target table when its
  name and values fit one, else a new custom column typed by its values;
- a column of the work4all schema the map deliberately leaves out is left out.

Every proposal carries sample values, a confidence (0..1), a one-line rationale and notes on what
may be lost. Nothing here is final: a person reviews the map and confirms it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from producers.mapping.model import ColumnMap, ColumnType, MapError, MigrationMap, ObjectMap
from producers.mapping.profile import SAMPLE_ROWS, ColumnProfile, compatibility, profile_export
from producers.mapping.similarity import (
    concept_semantic,
    concepts,
    name_similarity,
    slug,
    string_similarity,
)
from producers.mapping.targets import TargetColumn, catalogue
from producers.mapping.transforms import TRANSFORMS
from producers.work4all.normalise import CustomField, Normaliser
from producers.work4all.readers import Export, fold_name, open_export
from producers.work4all.tables import TABLES, Column, Kind

ProposalKind = Literal[
    "renamed", "custom_field", "unexpected", "missing", "not_migrated", "parameter"
]

RENAME_THRESHOLD = 0.5
"""A renamed-column match below this confidence is not made."""

STANDARD_THRESHOLD = 0.6
"""An unexpected column or custom field goes to a standard column only from this score on."""

OPTION_BASE = 100_000_000
"""First value of a custom option set (Dataverse's default publisher prefix range)."""

_FELD = re.compile(r"Feld(\d+)", re.IGNORECASE)
_LENGTHS = (50, 100, 250, 500, 1000, 2000, 4000)
_KIND_SEMANTIC = {
    Kind.CODE: "integer", Kind.INT: "integer", Kind.BOOL: "boolean", Kind.MONEY: "money",
    Kind.FLOAT: "number", Kind.DATETIME: "date",
}  # fmt: skip
_TYPE_SEMANTIC: dict[str, str] = {
    "integer": "integer", "decimal": "number", "money": "money", "boolean": "boolean",
    "datetime": "date", "dateonly": "date", "picklist": "text",
}  # fmt: skip
_CONTROL_TYPES: dict[str, ColumnType] = {
    "combo": "picklist", "check": "boolean", "checkbox": "boolean", "date": "dateonly",
    "number": "decimal", "text": "string", "memo": "memo",
}  # fmt: skip
_MONEY_CONCEPTS = frozenset({"revenue", "value", "price", "cost", "creditlimit"})
# What a transform is called, by preference: the first registered name is used.
_TRANSFORMS: dict[str, tuple[str, ...]] = {
    "string": ("trim", "text"),
    "memo": ("trim", "text"),
    "picklist": ("option_set", "optionset", "option_map", "options"),
    "boolean": ("boolean", "bool"),
    "dateonly": ("german_date", "date"),
    "datetime": ("german_date", "datetime", "date"),
    "money": ("german_decimal", "money", "decimal"),
    "decimal": ("german_decimal", "decimal"),
    "integer": ("integer", "int", "german_decimal"),
}


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the proposer suggests for one source column, and why."""

    table: str
    """the source table, as the export spells it."""
    column: str
    """the source column, as the export spells it."""
    kind: ProposalKind
    samples: tuple[str, ...]
    object: str | None
    """the map object the column joins (``customers``), if any."""
    target_table: str | None
    target: str | None
    """the Dataverse column (logical name), or ``None`` when nothing is proposed."""
    confidence: float
    rationale: str
    custom: bool = False
    type: ColumnType | None = None
    max_length: int | None = None
    options: dict[str, int] | None = None
    lossy: tuple[str, ...] = ()
    replaces: str | None = None
    """for a renamed column: the name the default map expected."""
    label: str | None = None
    """for a custom field: its ``IndividualFields`` label."""
    transform: str = "copy"

    @property
    def target_text(self) -> str:
        """The target as a reader sees it: ``account.w4a_bonitaet (new picklist)``."""
        if self.target is None:
            return "—"
        text = f"{self.target_table}.{self.target}"
        if self.custom:
            size = f", {self.max_length}" if self.max_length else ""
            text += f" (new {self.type}{size})"
        return text


@dataclass(slots=True)
class _TableState:
    """One source table of the map as the export has it."""

    name: str
    """the map's (work4all) name."""
    actual: str
    """the export's spelling."""
    columns: list[str]
    profiles: dict[str, ColumnProfile]
    objects: list[ObjectMap]
    used: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """folded source column → (object name, target column) pairs that read it."""


def default_base() -> MigrationMap:
    """The default map that ships with crmledger."""
    try:
        from producers.mapping.default import default_map
    except ImportError as error:
        raise MapError(f"the default map cannot be loaded ({error}); pass a base map") from error
    found: MigrationMap = default_map()
    return found


def propose(
    export_location: str | object,
    *,
    base: MigrationMap | None = None,
    sample_rows: int = SAMPLE_ROWS,
    progress: Callable[[str], None] | None = None,
) -> tuple[MigrationMap, list[Proposal]]:
    """The map for the export at ``export_location``, and the proposals that made it.

    ``base`` defaults to the default map. ``progress`` is called with each table's name once
    its sample has been read. Raises :class:`producers.work4all.errors.ExportError` when the
    export cannot be read, :class:`MapError` when the default map cannot be loaded.
    """
    with open_export(str(export_location)) as export:
        start = base if base is not None else default_base()
        return _Proposer(start, export, sample_rows, progress).run()


class _Proposer:
    def __init__(
        self,
        base: MigrationMap,
        export: Export,
        sample_rows: int,
        progress: Callable[[str], None] | None,
    ) -> None:
        self._base = base
        self._export = export
        self._sample_rows = sample_rows
        self._progress = progress
        self._proposals: list[Proposal] = []
        self._anrede: dict[str, str] = {}
        # object name → columns to add / source renames to apply
        self._added: dict[str, list[ColumnMap]] = {}
        self._renames: dict[tuple[str, str, str], str] = {}
        self._taken: dict[str, set[str]] = {
            obj.name: {column.target for column in obj.columns} for obj in base.objects
        }

    def run(self) -> tuple[MigrationMap, list[Proposal]]:
        tables = self._tables()
        definitions = Normaliser.for_export(self._export).custom_fields
        self._anrede = _anrede_codes(self._export)
        for state in tables:
            self._table(
                state, [d for d in definitions if fold_name(d.table) == fold_name(state.name)]
            )
        return self._apply(), self._proposals

    # ---- reading ------------------------------------------------------------------------------

    def _tables(self) -> list[_TableState]:
        names: list[str] = []
        for obj in self._base.objects:
            names.extend(source for source in obj.sources if source not in names)
        found = {name: self._export.find_table(name) for name in names}
        present = {name: actual for name, actual in found.items() if actual is not None}
        profiles = profile_export(
            self._export, present.values(), limit=self._sample_rows, progress=self._progress
        )
        states: list[_TableState] = []
        for name, actual in present.items():
            objects = [obj for obj in self._base.objects if name in obj.sources]
            state = _TableState(
                name, actual, self._export.columns(actual), profiles[actual], objects
            )
            for obj in objects:
                for column, target in _references(obj, name):
                    state.used.setdefault(fold_name(column), []).append((obj.name, target))
            states.append(state)
        return states

    # ---- one table ----------------------------------------------------------------------------

    def _table(self, state: _TableState, definitions: list[CustomField]) -> None:
        spec = TABLES.get(state.name)
        spec_columns = {fold_name(c.name): c for c in spec.columns} if spec else {}
        present = {fold_name(column): column for column in state.columns}
        by_column = {fold_name(d.column): d for d in definitions}
        custom: list[tuple[str, CustomField]] = []
        unexpected: list[str] = []
        for column in state.columns:
            folded = fold_name(column)
            if folded in state.used:
                continue
            if folded in by_column:
                custom.append((column, by_column[folded]))
            elif folded not in spec_columns:
                unexpected.append(column)
        missing_used = [c for c in _original_names(state) if fold_name(c) not in present]
        missing_other = [
            c.name
            for folded, c in spec_columns.items()
            if folded not in present and folded not in state.used and not _FELD.fullmatch(c.name)
        ]
        matched = self._match_renamed(state, unexpected, missing_used, missing_other, spec_columns)
        for column in unexpected:
            if column not in matched:
                self._unexpected(state, column)
        for column, definition in custom:
            self._custom_field(state, column, definition)

    def _match_renamed(
        self,
        state: _TableState,
        unexpected: list[str],
        missing_used: list[str],
        missing_other: list[str],
        spec_columns: dict[str, Column],
    ) -> set[str]:
        """Pair unexpected columns with the columns the map (or the schema) expects, greedily."""
        scored: list[tuple[float, str, str, str]] = []
        for column in unexpected:
            profile = state.profiles[column]
            for expected in [*missing_used, *missing_other]:
                targets = [t for _, t in state.used.get(fold_name(expected), [])]
                score, why = _rename_score(
                    column, expected, targets, spec_columns.get(fold_name(expected)), profile
                )
                scored.append((score, column, expected, why))
        scored.sort(key=lambda item: -item[0])
        done_columns: set[str] = set()
        done_expected: set[str] = set()
        for score, column, expected, why in scored:
            if column in done_columns or expected in done_expected:
                continue
            used = expected in missing_used
            if score < (RENAME_THRESHOLD if used else STANDARD_THRESHOLD):
                continue
            done_columns.add(column)
            done_expected.add(expected)
            self._renamed(state, column, expected, score, why, used)
        for expected in missing_used:
            if expected not in done_expected:
                self._missing(state, expected)
        return done_columns

    def _renamed(
        self, state: _TableState, column: str, expected: str, score: float, why: str, used: bool
    ) -> None:
        profile = state.profiles[column]
        refs = state.used.get(fold_name(expected), [])
        if used:
            for object_name, _ in refs:
                self._renames[(object_name, fold_name(state.name), fold_name(expected))] = column
        first = refs[0] if refs else (state.objects[0].name if state.objects else None, None)
        target_table = self._target_table(first[0])
        self._proposals.append(
            Proposal(
                table=state.actual,
                column=column,
                kind="renamed" if used else "not_migrated",
                samples=tuple(profile.samples),
                object=first[0],
                target_table=target_table if used else None,
                target=", ".join(sorted({t for _, t in refs})) if used else None,
                confidence=round(score, 2),
                rationale=f"standard column {expected!r} renamed: {why}"
                + ("" if used else "; the default map does not migrate it"),
                replaces=expected,
            )
        )

    def _missing(self, state: _TableState, expected: str) -> None:
        refs = state.used.get(fold_name(expected), [])
        object_name = refs[0][0] if refs else None
        self._proposals.append(
            Proposal(
                table=state.actual,
                column=expected,
                kind="missing",
                samples=(),
                object=object_name,
                target_table=self._target_table(object_name),
                target=", ".join(sorted({t for _, t in refs})) or None,
                confidence=0.0,
                rationale="the map reads this column, but the export has no column that matches it",
                lossy=("every value of this column is lost unless the map is corrected",),
            )
        )

    # ---- new targets --------------------------------------------------------------------------

    def _unexpected(self, state: _TableState, column: str) -> None:
        obj = _home(state)
        profile = state.profiles[column]
        if obj is None:
            return
        standard = self._standard(obj, column, profile, None)
        if standard is not None:
            target, score, why = standard
            self._add(
                state,
                obj,
                column,
                "unexpected",
                profile,
                target.name,
                target.type,
                score,
                f"unexpected column; {why}",
                lossy=_length_loss(profile, target.max_length),
                max_length=target.max_length,
                custom=False,
            )
            return
        kind, length, options = _type_from_values(profile)
        confidence, summary = _profile_confidence(profile)
        self._add(
            state,
            obj,
            column,
            "unexpected",
            profile,
            self._custom_name(obj, column),
            kind,
            confidence,
            f"unexpected column; no standard {obj.target} column fits; {summary}",
            lossy=_option_loss(options),
            max_length=length,
            options=options,
            custom=True,
        )

    def _custom_field(self, state: _TableState, column: str, definition: CustomField) -> None:
        obj = _home(state)
        if obj is None:
            return
        profile = state.profiles[column]
        wanted = _CONTROL_TYPES.get(definition.control.casefold())
        label = definition.label or column
        standard = self._standard(obj, label, profile, wanted)
        if standard is not None and standard[1] >= 0.8:
            target, score, why = standard
            self._add(
                state,
                obj,
                column,
                "custom_field",
                profile,
                target.name,
                target.type,
                score,
                f"custom field {label!r} ({definition.control}); {why}",
                lossy=_length_loss(profile, target.max_length),
                max_length=target.max_length,
                custom=False,
                label=label,
            )
            return
        options: dict[str, int] | None = None
        mapping: dict[str, int] | None = None
        length: int | None = None
        confidence = 0.9
        if wanted is None:
            wanted, length, options = _type_from_values(profile)
            confidence = 0.6
        elif wanted == "picklist":
            options = _options(definition.options.values()) or None
            # the export stores a combo's index, the normaliser its text: both map to the option
            mapping = {
                **{i: options[text] for i, text in definition.options.items() if options and text},
                **(options or {}),
            }
            if options is None:
                wanted, length = "string", 100
                confidence = 0.6
        elif wanted == "decimal" and _is_money(label):
            wanted = "money"
        elif wanted == "dateonly" and not profile.midnight_only:
            wanted = "datetime"
        elif wanted in ("string", "memo"):
            length = _spec_length(state.name, column) or _length_for(profile.max_length)
        summary = f"a {definition.control or 'untyped'} field"
        if options:
            summary += f" with options {', '.join(options)}"
        self._add(
            state,
            obj,
            column,
            "custom_field",
            profile,
            self._custom_name(obj, label),
            wanted,
            confidence,
            f"custom field {label!r}: {summary}; no standard {obj.target} column means the same",
            lossy=_option_loss(options),
            max_length=length,
            options=options,
            custom=True,
            label=label,
            mapping=mapping,
        )

    def _standard(
        self, obj: ObjectMap, name: str, profile: ColumnProfile, wanted: ColumnType | None
    ) -> tuple[TargetColumn, float, str] | None:
        """The best free standard column of ``obj``'s target for a column called ``name``."""
        taken = self._taken[obj.name]
        best: tuple[TargetColumn, float, str] | None = None
        meanings = concepts(name)
        for target in catalogue(obj.target):
            if target.name in taken:
                continue
            strength = meanings.get(target.concept, 0.0)
            if not strength and target.concept.endswith("2"):
                # a second e-mail or phone when the first standard column is taken
                strength = 0.9 * meanings.get(target.concept[:-1], 0.0)
            text = string_similarity(name, target.name)
            similarity = max(strength, text if text >= 0.85 else 0.0)
            if similarity == 0.0:
                continue
            if (
                wanted is not None
                and compatibility(_TYPE_SEMANTIC.get(wanted, "text"), _semantic_of(target)) < 0.6
            ):
                continue
            found = profile.semantic
            fit = 0.5 if found is None else compatibility(found, _semantic_of(target))
            score = similarity * (0.6 + 0.4 * fit)
            if score >= STANDARD_THRESHOLD and (best is None or score > best[1]):
                reason = (f"means '{target.concept}'" if strength >= text else "name alike") + (
                    "" if found is None else f", values look like {found}"
                )
                best = (target, score, f"{reason} → standard column {target.name}")
        return best

    def _add(
        self,
        state: _TableState,
        obj: ObjectMap,
        column: str,
        kind: ProposalKind,
        profile: ColumnProfile,
        target: str,
        target_type: ColumnType,
        confidence: float,
        rationale: str,
        *,
        lossy: tuple[str, ...] = (),
        max_length: int | None = None,
        options: dict[str, int] | None = None,
        custom: bool,
        label: str | None = None,
        mapping: dict[str, int] | None = None,
    ) -> None:
        """Record a proposal and the column it adds; ``mapping`` (source value → option) defaults
        to ``options`` (label → option)."""
        name = _transform_for(target_type)
        self._taken[obj.name].add(target)
        note = rationale if len(rationale) <= 200 else rationale[:199] + "…"
        self._added.setdefault(obj.name, []).append(
            ColumnMap(
                target=target,
                sources=[column],
                transform=name,
                params={"mapping": mapping or options} if options and name != "copy" else {},
                lossy=bool(lossy),
                custom=custom,
                type=target_type if custom else None,
                max_length=max_length if custom and target_type in ("string", "memo") else None,
                options=options if custom else None,
                note=f"proposed ({confidence:.2f}): {note}",
            )
        )
        self._proposals.append(
            Proposal(
                table=state.actual,
                column=column,
                kind=kind,
                samples=tuple(profile.samples),
                object=obj.name,
                target_table=obj.target,
                target=target,
                confidence=round(confidence, 2),
                rationale=rationale,
                custom=custom,
                type=target_type,
                max_length=max_length,
                options=options,
                lossy=lossy,
                label=label,
                transform=name,
            )
        )

    def _custom_name(self, obj: ObjectMap, label: str) -> str:
        base = f"w4a_{slug(label)}"
        name, n = base, 2
        while name in self._taken[obj.name]:
            name, n = f"{base}{n}", n + 1
        return name

    def _target_table(self, object_name: str | None) -> str | None:
        obj = self._base.object(object_name) if object_name else None
        return obj.target if obj else None

    def _installation(self, obj: ObjectMap, column: ColumnMap) -> ColumnMap:
        """``column`` with the parameters only this installation knows (its Anrede texts)."""
        if column.transform != "salutation" or not self._anrede or "codes" in column.params:
            return column
        self._proposals.append(
            Proposal(
                table="Anrede",
                column="AnredeName",
                kind="parameter",
                samples=tuple(f"{code} {name}" for code, name in list(self._anrede.items())[:5]),
                object=obj.name,
                target_table=obj.target,
                target=column.target,
                confidence=1.0,
                rationale=f"params.codes of the salutation transform: the installation's "
                f"{len(self._anrede)} Anrede rows, read from the export",
            )
        )
        return column.model_copy(update={"params": {**column.params, "codes": self._anrede}})

    # ---- the new map --------------------------------------------------------------------------

    def _apply(self) -> MigrationMap:
        objects: list[ObjectMap] = []
        for obj in self._base.objects:
            renames = {key[1:]: new for key, new in self._renames.items() if key[0] == obj.name}

            def renamed(
                name: str, renames: dict[tuple[str, str], str] = renames, obj: ObjectMap = obj
            ) -> str:
                table, dot, column = name.rpartition(".")
                if not dot or fold_name(table) not in {fold_name(s) for s in obj.sources}:
                    table, column = obj.primary_source, name
                new = renames.get((fold_name(table), fold_name(column)))
                if new is None:
                    return name
                return f"{table}.{new}" if dot and column != name else new

            columns = [
                self._installation(
                    obj, column.model_copy(update={"sources": [renamed(s) for s in column.sources]})
                )
                for column in obj.columns
            ]
            columns.extend(self._added.get(obj.name, []))
            update: dict[str, object] = {"columns": columns, "key": renamed(obj.key)}
            if obj.filter is not None:
                update["filter"] = obj.filter.model_copy(
                    update={"column": renamed(obj.filter.column)}
                )
            objects.append(obj.model_copy(update=update))
        return self._base.model_copy(update={"objects": objects})


def _anrede_codes(export: Export) -> dict[str, str]:
    """The export's ``Anrede`` table as code → text (``{"1": "Herr", …}``); empty if absent."""
    table = export.find_table("Anrede")
    if table is None:
        return {}
    names = {fold_name(column): column for column in export.columns(table)}
    code, text = names.get("anredecode"), names.get("anredename")
    if code is None or text is None:
        return {}
    codes: dict[str, str] = {}
    rows = export.rows(table)
    try:
        for row in rows:
            key, name = row.raw.get(code), row.raw.get(text)
            if key is not None and isinstance(name, str) and name.strip():
                shown = str(int(key)) if isinstance(key, float | int) else str(key).strip()
                codes[shown] = name.strip()
    finally:
        rows.close()
    return codes


# ---- helpers ------------------------------------------------------------------------------------


def _references(obj: ObjectMap, table: str) -> Iterable[tuple[str, str]]:
    """(source column, target) pairs of ``obj`` that read ``table``.

    A source ``Table.Column`` names its table; a bare name belongs to the primary table.
    """
    tables = {fold_name(source) for source in obj.sources}
    wanted = fold_name(table)
    primary = fold_name(obj.primary_source) == wanted

    def mine(source: str) -> str | None:
        prefix, dot, column = source.rpartition(".")
        if dot and fold_name(prefix) in tables:
            return column if fold_name(prefix) == wanted else None
        return source if primary else None

    for column in obj.columns:
        for source in column.sources:
            name = mine(source)
            if name:
                yield name, column.target
    if primary:
        yield obj.key, "(key)"
        if obj.filter is not None:
            yield obj.filter.column, "(filter)"


def _original_names(state: _TableState) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for obj in state.objects:
        for column, _ in _references(obj, state.name):
            if fold_name(column) not in seen:
                seen.add(fold_name(column))
                names.append(column)
    return names


def _home(state: _TableState) -> ObjectMap | None:
    """The object a new column of ``state``'s table joins: the first reading it as primary."""
    primary = [
        obj for obj in state.objects if fold_name(obj.primary_source) == fold_name(state.name)
    ]
    candidates = primary or state.objects
    return candidates[0] if candidates else None


def _expected_semantic(expected: str, spec: Column | None) -> str:
    if spec is not None and spec.kind in _KIND_SEMANTIC:
        return _KIND_SEMANTIC[spec.kind]
    meanings = concepts(expected)
    if meanings:
        strongest = max(meanings, key=lambda name: meanings[name])
        semantic = concept_semantic(strongest)
        if semantic in ("phone", "email", "url", "postcode", "country") or spec is None:
            return semantic
    return "text"


def _rename_score(
    column: str, expected: str, targets: list[str], spec: Column | None, profile: ColumnProfile
) -> tuple[float, str]:
    """How likely ``column`` is ``expected`` renamed, and why."""
    similarity, why = name_similarity(column, expected)
    for target in targets:
        if target.startswith("("):
            continue
        by_target, why_target = name_similarity(column, target)
        if by_target > similarity:
            similarity, why = by_target, f"{why_target} (as target {target})"
    semantic = _expected_semantic(expected, spec)
    found = profile.semantic
    if found is None:
        return similarity * 0.85, f"{why}; no values to check"
    fit = compatibility(found, semantic)
    score = similarity * (0.6 + 0.4 * fit)
    return score, f"{why}; values look like {found}" + ("" if fit >= 0.6 else f", not {semantic}")


def _semantic_of(target: TargetColumn) -> str:
    if target.type in ("string", "memo"):
        semantic = concept_semantic(target.concept)
        return semantic if semantic in ("phone", "email", "url", "postcode", "country") else "text"
    return _TYPE_SEMANTIC.get(target.type, "text")


def _is_money(label: str) -> bool:
    meanings = concepts(label)
    return any(name in _MONEY_CONCEPTS for name in meanings)


def _options(labels: Iterable[str]) -> dict[str, int]:
    return {label: OPTION_BASE + index for index, label in enumerate(labels) if label}


def _option_loss(options: dict[str, int] | None) -> tuple[str, ...]:
    if not options:
        return ()
    return ("a value that is none of the options is rejected (an option set is closed)",)


def _length_for(longest: int) -> int | None:
    """A string length with room above the longest sampled value; ``None`` means memo."""
    return next((size for size in _LENGTHS if longest * 1.5 <= size), None)


def _spec_length(table: str, column: str) -> int | None:
    spec = TABLES.get(table)
    if spec is None:
        return None
    match = next((c for c in spec.columns if fold_name(c.name) == fold_name(column)), None)
    return match.max_length if match is not None and match.max_length else None


def _length_loss(profile: ColumnProfile, limit: int | None) -> tuple[str, ...]:
    if limit is not None and profile.max_length > limit:
        return (
            f"sampled values up to {profile.max_length} characters, longer than {limit}: "
            "truncated with a note",
        )
    return ()


def _type_from_values(
    profile: ColumnProfile,
) -> tuple[ColumnType, int | None, dict[str, int] | None]:
    """A custom column's type, length and options from what its values look like."""
    semantic = profile.semantic
    if semantic == "boolean":
        return "boolean", None, None
    if semantic == "date":
        return ("dateonly" if profile.midnight_only else "datetime"), None, None
    if semantic == "integer":
        return "integer", None, None
    if semantic == "number":
        return "decimal", None, None
    values = profile.option_values()
    if values is not None and semantic == "text":
        return "picklist", None, _options(values)
    if semantic is None:
        return "string", 100, None
    length = _length_for(profile.max_length)
    if length is None or profile.multiline:
        return "memo", None, None
    return "string", length, None


def _profile_confidence(profile: ColumnProfile) -> tuple[float, str]:
    semantic = profile.semantic
    if semantic is None:
        return 0.3, f"no values in the first {profile.rows} rows: typed as text"
    share = profile.share(semantic) if semantic != "text" else 1.0
    confidence = 0.5 + 0.3 * share * min(1.0, profile.non_empty / 20)
    described = "text" if semantic == "text" else f"{share:.0%} {semantic}"
    options = profile.option_values()
    if options is not None and semantic == "text":
        described = f"{len(options)} distinct values → option set"
    return round(confidence, 2), f"values: {described} ({profile.non_empty} sampled)"


def _transform_for(target_type: ColumnType) -> str:
    for name in _TRANSFORMS.get(target_type, ()):
        if name in TRANSFORMS:
            return name
    return "copy"
