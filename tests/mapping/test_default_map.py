"""The default map: it loads, names only what exists, and covers ARCHITECTURE.md section 5."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataverse_emulator.schema import sales_schema
from producers.mapping.default import DEFAULT_MAP_PATH, default_map
from producers.mapping.model import ColumnMap, MigrationMap, ObjectMap, dump_map, parse_map
from producers.mapping.schema import SOURCE_KEY_COLUMN, SOURCE_KEY_LENGTH
from producers.mapping.transforms import TRANSFORMS, Bind, reason_code
from producers.work4all.readers import fold_name
from producers.work4all.tables import TABLES

MAP = default_map()
REPO = Path(__file__).resolve().parents[2]
NO_CUSTOM_COLUMNS = {"annotation"}
"""Dataverse tables that take no added columns (annotation: CanCreateAttributes false)."""

SECTION_5 = [
    ("Kunden", "account"),
    ("Lieferanten", "account"),
    ("KAnsprechp", "contact"),
    ("LAnsprechp", "contact"),
    ("Einheit", "uomschedule"),
    ("Artikel", "product"),
    ("Preisgruppen", "pricelevel"),
    ("Preise", "productpricelevel"),
    ("Verkaufschancen", "opportunity"),
    ("Angebot", "quote"),
    ("Positionen", "quotedetail"),
    ("Rechnung", "opportunity"),
    ("Positionen", "opportunityproduct"),
    ("Telefonate", "phonecall"),
    ("Kontaktbericht", "appointment"),
    ("Kontaktbericht", "annotation"),
    ("Whattodos", "task"),
    ("Termine", "appointment"),
    ("Briefe", "email"),
    ("TelefonateAnhang", "annotation"),
    ("RA", "w4a_openitem"),
]
"""(work4all table, Dataverse table) pairs of ARCHITECTURE.md section 5.

``uom`` has no object: Dataverse creates each unit group's base unit itself (see the map).
"""

PHASES = {
    "Kunden": 1, "Lieferanten": 1, "KAnsprechp": 2, "LAnsprechp": 2, "Einheit": 3, "Artikel": 3,
    "Preisgruppen": 3, "Preise": 3, "Verkaufschancen": 4, "Angebot": 5, "Rechnung": 5,
    "Telefonate": 6, "Kontaktbericht": 6, "Whattodos": 6, "Termine": 6, "RA": 8,
}  # fmt: skip


class _NullContext:
    def resolve(self, object_name: str, source_key: Any) -> Bind | None:
        return None

    def owner(self, user_code: Any) -> tuple[Bind | None, list[str]]:
        return Bind("systemusers", "fallback"), []

    def setting(self, name: str) -> Any:
        return None


def _columns() -> list[tuple[ObjectMap, ColumnMap]]:
    return [(obj, column) for obj in MAP.objects for column in obj.columns]


def _ids(pairs: Sequence[tuple[ObjectMap, ColumnMap]]) -> list[str]:
    return [f"{obj.name}.{column.target}" for obj, column in pairs]


def _rank(migration_map: MigrationMap) -> dict[str, tuple[int, int]]:
    return {obj.name: (obj.phase, index) for index, obj in enumerate(migration_map.objects)}


def _lookup_objects(column: ColumnMap) -> list[str]:
    params: Mapping[str, Any] = column.params
    if "object" in params:
        return [str(params["object"])]
    return [str(name) for name in params.get("objects", {}).values()]


def test_the_default_map_file_exists_and_validates() -> None:
    assert DEFAULT_MAP_PATH.is_file()
    assert MAP.objects
    assert MAP.name


def test_the_default_map_is_installed_as_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert DEFAULT_MAP_PATH.name in package_data["producers.mapping"]


def test_the_hash_survives_a_dump_and_load_round_trip() -> None:
    again = parse_map(yaml.safe_load(dump_map(MAP)))
    assert again.content_hash == MAP.content_hash
    assert again == MAP


def test_the_file_is_what_it_means() -> None:
    # option keys are written as text, so the loaded map equals its dumped form exactly
    document = yaml.safe_load(DEFAULT_MAP_PATH.read_text(encoding="utf-8"))
    assert parse_map(document) == parse_map(yaml.safe_load(dump_map(parse_map(document))))


def test_the_fallback_owner_is_an_email_address() -> None:
    owner = MAP.settings.fallback_owner
    assert owner is not None
    assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", owner)


@pytest.mark.parametrize(("table", "target"), SECTION_5, ids=[f"{t}->{d}" for t, d in SECTION_5])
def test_every_object_of_architecture_section_5_is_mapped(table: str, target: str) -> None:
    assert [obj for obj in MAP.objects_for(table) if obj.target == target]


def test_objects_are_in_their_architecture_phase() -> None:
    for obj in MAP.objects:
        if obj.primary_source in PHASES:
            assert obj.phase == PHASES[obj.primary_source], obj.name
    attachments = [obj for obj in MAP.objects if obj.primary_source == "TelefonateAnhang"]
    assert [obj.phase for obj in attachments] == [7]


def test_customers_and_suppliers_are_accounts_of_their_type() -> None:
    customers, suppliers = MAP.object("customers"), MAP.object("suppliers")
    assert customers is not None
    assert suppliers is not None
    assert customers.column("customertypecode") == ColumnMap(
        target="customertypecode", transform="constant", params={"value": 3}, note="3 Customer"
    )
    number = customers.column("w4a_customernumber")
    assert number is not None
    assert (number.sources, number.custom) == (["Nummer"], True)
    supplier_type = suppliers.column("customertypecode")
    assert supplier_type is not None
    assert supplier_type.params == {"value": 10}
    flag = suppliers.column("w4a_issupplier")
    assert flag is not None
    assert flag.custom
    # a merged supplier keeps only columns the customer object does not set
    assert customers.column("w4a_issupplier") is None


def test_the_open_items_are_a_custom_table() -> None:
    items = MAP.object("open_items")
    assert items is not None
    assert items.custom_table
    assert items.sources == ["RA", "RABezSumme"]
    assert all(column.custom and column.type for column in items.columns
               if column.target.startswith("w4a_"))  # fmt: skip
    for target in ("w4a_name", "w4a_grossamount", "w4a_paidamount", "w4a_openamount"):
        assert items.column(target) is not None, target


@pytest.mark.parametrize(("obj", "column"), _columns(), ids=_ids(_columns()))
def test_every_transform_the_map_names_exists(obj: ObjectMap, column: ColumnMap) -> None:
    assert column.transform in TRANSFORMS


@pytest.mark.parametrize(("obj", "column"), _columns(), ids=_ids(_columns()))
def test_every_source_column_exists_in_the_objects_tables(
    obj: ObjectMap, column: ColumnMap
) -> None:
    known = {fold_name(name) for table in obj.sources for name in TABLES[table].column_names}
    for source in column.sources:
        assert fold_name(source) in known, f"{obj.name}.{column.target}: {source}"
        assert source in {name for table in obj.sources for name in TABLES[table].column_names}


def test_object_keys_are_their_tables_keys() -> None:
    for obj in MAP.objects:
        assert obj.key == TABLES[obj.primary_source].key, obj.name
        if obj.filter is not None:
            assert obj.filter.column in TABLES[obj.primary_source].column_names


@pytest.mark.parametrize(("obj", "column"), _columns(), ids=_ids(_columns()))
def test_every_transform_accepts_its_parameters(obj: ObjectMap, column: ColumnMap) -> None:
    # empty values reach every parameter check without needing data
    outcome = TRANSFORMS[column.transform](
        [None] * len(column.sources), column.params, _NullContext()
    )
    if outcome.error is not None:
        assert reason_code(outcome.error) != "invalid_params", outcome.error


def test_every_lookup_points_at_an_object_decided_before() -> None:
    rank = _rank(MAP)
    lookups = [(obj, column) for obj, column in _columns() if column.transform == "lookup"]
    assert lookups
    for obj, column in lookups:
        names = _lookup_objects(column)
        assert names, f"{obj.name}.{column.target}"
        for name in names:
            assert name in rank, f"{obj.name}.{column.target} names unknown object {name}"
            assert rank[name] < rank[obj.name], f"{obj.name}.{column.target} → {name}"


def test_every_lookup_binds_a_table_the_target_column_accepts() -> None:
    tables = {obj.name: obj.target for obj in MAP.objects}
    schema = sales_schema()
    for obj, column in _columns():
        if column.transform != "lookup":
            continue
        navigation = schema.table(obj.target).navigations[column.target]
        for name in _lookup_objects(column):
            assert tables[name] in navigation.targets, f"{obj.name}.{column.target} → {name}"


def test_every_standard_target_column_exists_in_dataverse() -> None:
    schema = sales_schema()
    for obj, column in _columns():
        if obj.custom_table or column.custom:
            continue
        table = schema.table(obj.target)
        assert column.target in table.columns or column.target in table.navigations, (
            f"{obj.name}: {obj.target} has no column {column.target}"
        )


def test_text_limits_fit_the_dataverse_columns() -> None:
    schema = sales_schema()
    for obj, column in _columns():
        limit = column.params.get("max_length")
        if obj.custom_table or column.custom or limit is None:
            continue
        found = schema.table(obj.target).columns[column.target].max_length
        assert found is not None
        assert limit <= found, f"{obj.name}.{column.target}: {limit} > {found}"


def test_custom_columns_are_prefixed_and_typed() -> None:
    for obj, column in _columns():
        if column.custom:
            assert column.target.startswith("w4a_"), column.target
            assert column.type is not None
            if column.type == "string":
                assert column.max_length, f"{obj.name}.{column.target}"
        else:
            assert not column.target.startswith("w4a_") or obj.custom_table, column.target


def test_a_custom_column_declared_twice_on_a_table_is_declared_alike() -> None:
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    for obj, column in _columns():
        if not column.custom:
            continue
        shape = (column.type, column.max_length, column.options)
        earlier = seen.setdefault((obj.target, column.target), shape)
        assert earlier == shape, f"{obj.target}.{column.target}"


def test_every_object_that_can_carries_its_source_key() -> None:
    for obj in MAP.objects:
        key = obj.column(SOURCE_KEY_COLUMN)
        if obj.target in NO_CUSTOM_COLUMNS:
            assert key is None, obj.name
            continue
        assert key is not None, obj.name
        assert key.transform == "source_key"
        assert key.params == {"table": obj.primary_source}
        assert key.sources == [obj.key]
        assert (key.required, key.custom, key.type) == (True, True, "string")
        assert key.max_length == SOURCE_KEY_LENGTH


def test_no_custom_field_is_in_the_default_map() -> None:
    for obj, column in _columns():
        assert not any(re.fullmatch(r"Feld\d+", source) for source in column.sources), (
            f"{obj.name}.{column.target}"
        )


def test_activities_keep_their_original_times() -> None:
    for obj in MAP.objects:
        if obj.target not in ("phonecall", "task", "appointment", "email"):
            continue
        assert obj.column("overriddencreatedon") is not None, obj.name
        times = {"scheduledstart", "scheduledend", "actualstart", "actualend"}
        assert times & {column.target for column in obj.columns}, obj.name
        assert obj.column("ownerid") is not None, obj.name


def test_lossy_objects_say_what_they_lose() -> None:
    for name in ("quotes", "quote_lines", "invoices", "invoice_lines", "appointments"):
        obj = MAP.object(name)
        assert obj is not None
        assert obj.lossy, name
    assert any(column.lossy for _, column in _columns())


def test_one_table_feeding_several_objects_is_split_by_filters() -> None:
    # the stage gives each record to the first object whose filter takes it
    for table in {obj.primary_source for obj in MAP.objects}:
        objects = MAP.objects_for(table)
        if len(objects) > 1:
            assert all(obj.filter is not None for obj in objects), table
