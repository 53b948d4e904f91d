"""`schema plan` / `schema apply` against the emulator: what the map needs, created once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.dataverse.client import DataverseClient, client_from_settings
from consumers.dataverse.metadata import ColumnDefinition, MetadataApi, TableDefinition
from dataverse_emulator.server import RunningEmulator
from ledger.cli import app
from ledger.event_types import SchemaChangeApplied
from ledger.events import Topic
from ledger.log import EventLog, open_log
from producers.mapping.gate import MapNotConfirmedError, confirm
from producers.mapping.model import MigrationMap, parse_map, save_map
from producers.mapping.schema import LicenceCapError, SchemaPlanError, apply, plan
from tests.dataverse.conftest import StartEmulator, environment_for, settings_for

OPEN_ITEM_COLUMNS = {
    "w4a_name": ("string", "String"),
    "w4a_grossamount": ("money", "Money"),
    "w4a_paidshare": ("decimal", "Decimal"),
    "w4a_reminders": ("integer", "Integer"),
    "w4a_duedate": ("dateonly", "DateTime"),
    "w4a_postedon": ("datetime", "DateTime"),
    "w4a_disputed": ("boolean", "Boolean"),
    "w4a_dunninglevel": ("picklist", "Picklist"),
    "w4a_remark": ("memo", "Memo"),
}


def small_map(*, licence: str = "enterprise") -> MigrationMap:
    """Customers, contacts and open items, with custom columns of every kind."""
    open_item_columns: list[dict[str, object]] = [
        {"target": name, "sources": ["RNummer"], "custom": True, "type": kind}
        for name, (kind, _) in OPEN_ITEM_COLUMNS.items()
    ]
    open_item_columns[0]["max_length"] = 50
    open_item_columns[7]["options"] = {"None": 100000000, "First": 100000001}
    return parse_map(
        {
            "name": "schema test",
            "settings": {"licence": licence},
            "objects": [
                {
                    "name": "customers",
                    "phase": 1,
                    "target": "account",
                    "sources": ["Kunden"],
                    "columns": [
                        {"target": "name", "sources": ["Firma1"]},
                        {
                            "target": "w4a_customernumber",
                            "sources": ["Nummer"],
                            "custom": True,
                            "type": "string",
                            "max_length": 20,
                        },
                    ],
                },
                {
                    "name": "suppliers",
                    "phase": 1,
                    "target": "account",
                    "sources": ["Lieferanten"],
                    "columns": [
                        {
                            "target": "w4a_customernumber",
                            "sources": ["Nummer"],
                            "custom": True,
                            "type": "string",
                            "max_length": 30,
                        }
                    ],
                },
                {"name": "contacts", "phase": 2, "target": "contact", "sources": ["KAnsprechp"]},
                {
                    "name": "open_items",
                    "phase": 8,
                    "target": "w4a_openitem",
                    "sources": ["RA"],
                    "custom_table": True,
                    "columns": open_item_columns,
                },
            ],
        }
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with open_log(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


@pytest.fixture
def client(fresh_emulator: RunningEmulator, tmp_path: Path) -> Iterator[DataverseClient]:
    with client_from_settings(settings_for(fresh_emulator, tmp_path)) as connected:
        yield connected


def schema_events(log: EventLog) -> list[SchemaChangeApplied]:
    return [
        SchemaChangeApplied.model_validate(stored.event.payload)
        for stored in log.read([Topic.CONTROL])
        if stored.event.type == SchemaChangeApplied.event_type
    ]


def test_the_plan_lists_the_custom_table_columns_and_a_source_key_on_every_target(
    client: DataverseClient,
) -> None:
    schema_plan = plan(small_map(), MetadataApi(client))

    planned = {(c.kind, c.table, c.name) for c in schema_plan.changes}
    assert not schema_plan.problems
    assert ("table", "w4a_openitem", "w4a_openitem") in planned
    for table in ("account", "contact", "w4a_openitem"):
        assert ("column", table, "w4a_sourcekey") in planned
        assert any(kind == "key" and t == table for kind, t, _ in planned)
    assert ("column", "account", "w4a_customernumber") in planned
    # The primary name column comes with the table; the others are added to it.
    assert ("column", "w4a_openitem", "w4a_name") not in planned
    assert ("column", "w4a_openitem", "w4a_dunninglevel") in planned
    assert [c.kind for c in schema_plan.changes] == sorted(
        (c.kind for c in schema_plan.changes), key=["table", "column", "key"].index
    )
    # Two objects declare the same column: the longer length wins.
    number = next(c for c in schema_plan.changes if c.name == "w4a_customernumber")
    assert number.detail == "string(30)"


def test_apply_creates_what_was_planned_and_records_each_change(
    client: DataverseClient, log: EventLog
) -> None:
    migration_map = small_map()
    confirm(log, migration_map, by="test")
    metadata = MetadataApi(client)
    schema_plan = plan(migration_map, metadata)

    events = apply(schema_plan, metadata, log, "run-1")

    assert len(events) == len(schema_plan.changes)
    recorded = schema_events(log)
    assert {(e.table, e.definition["name"]) for e in recorded} == {
        (c.table, c.name) for c in schema_plan.changes
    }
    assert all(e.definition["map_hash"] == migration_map.content_hash for e in recorded)
    table = metadata.entity("w4a_openitem")
    assert table is not None
    assert (table.is_custom, table.primary_name, table.entity_set_name) == (
        True, "w4a_name", "w4a_openitems",
    )  # fmt: skip
    columns = metadata.attributes("w4a_openitem")
    for name, (_, attribute_type) in OPEN_ITEM_COLUMNS.items():
        assert columns[name].attribute_type == attribute_type, name
    assert metadata.string_max_length("w4a_openitem", "w4a_name") == 50
    assert metadata.string_max_length("account", "w4a_customernumber") == 30
    for target in ("account", "contact", "w4a_openitem"):
        assert metadata.attributes(target)["w4a_sourcekey"].attribute_type == "String"
        keys = [k for k in metadata.keys(target) if k.key_attributes == ("w4a_sourcekey",)]
        assert [k.status for k in keys] == ["Active"], target
    options = client.get(
        "EntityDefinitions(LogicalName='w4a_openitem')/Attributes(LogicalName='w4a_dunninglevel')"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        {"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    )
    assert sorted(o["Value"] for o in options["OptionSet"]["Options"]) == [100000000, 100000001]
    date_only = client.get(
        "EntityDefinitions(LogicalName='w4a_openitem')/Attributes(LogicalName='w4a_duedate')"
        "/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
        {"$select": "LogicalName,Format"},
    )
    assert date_only["Format"] == "DateOnly"


def test_the_source_key_addresses_rows_once_it_is_applied(
    client: DataverseClient, log: EventLog
) -> None:
    migration_map = small_map()
    confirm(log, migration_map, by="test")
    metadata = MetadataApi(client)
    apply(plan(migration_map, metadata), metadata, log, "run-1")

    client.patch("accounts(w4a_sourcekey='Kunden:1739201')", {"name": "Müller GmbH"})
    client.patch("accounts(w4a_sourcekey='Kunden:1739201')", {"name": "Müller GmbH & Co. KG"})
    client.patch("w4a_openitems(w4a_sourcekey='RA:77')", {"w4a_name": "R-77", "w4a_reminders": 2})

    found = client.get("accounts", {"$filter": "w4a_sourcekey eq 'Kunden:1739201'"})
    assert [row["name"] for row in found["value"]] == ["Müller GmbH & Co. KG"]
    item = client.get("w4a_openitems(w4a_sourcekey='RA:77')")
    assert item["w4a_reminders"] == 2


def test_a_second_apply_plans_nothing_changes_nothing_and_records_nothing(
    client: DataverseClient, log: EventLog
) -> None:
    migration_map = small_map()
    confirm(log, migration_map, by="test")
    metadata = MetadataApi(client)
    apply(plan(migration_map, metadata), metadata, log, "run-1")
    recorded = len(schema_events(log))
    requests_before = client.stats.statuses.get(204, 0)

    again = plan(migration_map, metadata)
    events = apply(again, metadata, log, "run-2")

    assert again.empty
    assert events == []
    assert len(schema_events(log)) == recorded
    assert client.stats.statuses.get(204, 0) == requests_before  # no create, no publish


def test_an_unconfirmed_map_is_refused_before_anything_changes(
    client: DataverseClient, log: EventLog
) -> None:
    metadata = MetadataApi(client)
    schema_plan = plan(small_map(), metadata)

    with pytest.raises(MapNotConfirmedError, match="not been confirmed"):
        apply(schema_plan, metadata, log, "run-1")

    assert "w4a_sourcekey" not in metadata.attributes("account")
    assert metadata.entity("w4a_openitem") is None
    assert schema_events(log) == []


def test_the_professional_licence_cap_stops_apply_before_anything_changes(
    start: StartEmulator, tmp_path: Path, log: EventLog
) -> None:
    migration_map = small_map(licence="professional")
    confirm(log, migration_map, by="test")
    with (
        start(licence="professional") as emulator,
        client_from_settings(settings_for(emulator, tmp_path)) as connected,
    ):
        metadata = MetadataApi(connected)
        for number in range(15):
            metadata.create_table(_table(f"w4a_existing{number}"))

        schema_plan = plan(migration_map, metadata)
        with pytest.raises(LicenceCapError) as raised:
            apply(schema_plan, metadata, log, "run-1")

        assert "w4a_sourcekey" not in metadata.attributes("account")
        assert metadata.entity("w4a_openitem") is None

    assert schema_plan.custom_tables_existing == 15
    assert schema_plan.new_tables == ["w4a_openitem"]
    assert "allows 15 custom tables" in str(raised.value)
    assert "has 15 and the map adds 1" in str(raised.value)
    assert "nothing was changed" in str(raised.value)
    assert schema_events(log) == []


def test_the_professional_licence_allows_up_to_15_custom_tables(
    start: StartEmulator, tmp_path: Path, log: EventLog
) -> None:
    migration_map = small_map(licence="professional")
    confirm(log, migration_map, by="test")
    with (
        start(licence="professional") as emulator,
        client_from_settings(settings_for(emulator, tmp_path)) as connected,
    ):
        metadata = MetadataApi(connected)
        for number in range(14):
            metadata.create_table(_table(f"w4a_existing{number}"))

        events = apply(plan(migration_map, metadata), metadata, log, "run-1")

        assert metadata.entity("w4a_openitem") is not None
    assert events


def test_an_existing_column_of_another_type_is_a_problem_that_blocks_apply(
    client: DataverseClient, log: EventLog
) -> None:
    migration_map = small_map()
    confirm(log, migration_map, by="test")
    metadata = MetadataApi(client)
    metadata.create_column("account", ColumnDefinition("w4a_customernumber", "integer", "No."))

    schema_plan = plan(migration_map, metadata)

    assert any("account.w4a_customernumber exists as Integer" in p for p in schema_plan.problems)
    with pytest.raises(SchemaPlanError, match="nothing was changed"):
        apply(schema_plan, metadata, log, "run-1")
    assert "w4a_sourcekey" not in metadata.attributes("contact")


def test_a_standard_target_table_that_does_not_exist_is_a_problem(client: DataverseClient) -> None:
    document = small_map().model_dump(mode="json")
    document["objects"].append(
        {"name": "ghosts", "phase": 9, "target": "w4a_ghost", "sources": ["Geister"]}
    )

    schema_plan = plan(parse_map(document), MetadataApi(client))

    assert any("table w4a_ghost does not exist" in p for p in schema_plan.problems)


# -- the command line ----------------------------------------------------------------------


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


@pytest.fixture
def cli_env(
    fresh_emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no crmledger.toml of the repository's
    return environment_for(fresh_emulator, tmp_path)


def test_schema_apply_on_the_command_line_creates_the_schema_once(
    cli_env: dict[str, str], tmp_path: Path, fresh_emulator: RunningEmulator
) -> None:
    migration_map = small_map()
    map_file = tmp_path / "map.yaml"
    save_map(migration_map, map_file)

    code, planned = run_cli(["schema", "plan", "--map", str(map_file)], cli_env)
    assert code == 0, planned
    assert "w4a_openitem" in planned
    assert "not confirmed" in planned

    code, refused = run_cli(["schema", "apply", "--map", str(map_file)], cli_env)
    assert code == 1
    assert "not been confirmed" in refused
    assert "Traceback" not in refused

    with open_log(cli_env["CRMLEDGER_LOG_URL"]) as log:
        confirm(log, migration_map, by="test")
    code, applied = run_cli(["schema", "apply", "--map", str(map_file)], cli_env)
    assert code == 0, applied
    assert "applied" in applied

    code, second = run_cli(["schema", "apply", "--map", str(map_file)], cli_env)
    assert code == 0, second
    assert "nothing to change" in second
    with open_log(cli_env["CRMLEDGER_LOG_URL"]) as log:
        recorded = schema_events(log)
    assert recorded
    assert f"applied {len(recorded)} schema change(s)" in applied  # the second run added none
    code, replanned = run_cli(["schema", "plan", "--map", str(map_file)], cli_env)
    assert "no changes" in replanned
    assert cli_env["CRMLEDGER_CLIENT_SECRET"] not in planned + applied + second + replanned


def test_schema_commands_fail_cleanly_without_settings(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    map_file = tmp_path / "map.yaml"
    save_map(small_map(), map_file)
    env = {**cli_env, "CRMLEDGER_DATAVERSE_URL": "", "CRMLEDGER_CLIENT_ID": ""}

    code, output = run_cli(["schema", "plan", "--map", str(map_file)], env)

    assert code == 1
    assert "missing settings: dataverse_url, client_id" in output
    assert "Traceback" not in output


def test_schema_commands_fail_cleanly_on_a_wrong_secret(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    map_file = tmp_path / "map.yaml"
    save_map(small_map(), map_file)
    env = {**cli_env, "CRMLEDGER_CLIENT_SECRET": "wrong-secret-4711"}

    code, output = run_cli(["schema", "plan", "--map", str(map_file)], env)

    assert code == 1
    assert "invalid_client" in output
    assert "wrong-secret-4711" not in output
    assert "Traceback" not in output


def test_schema_commands_fail_cleanly_when_dataverse_is_unreachable(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    map_file = tmp_path / "map.yaml"
    save_map(small_map(), map_file)
    env = {**cli_env, "CRMLEDGER_AUTHORITY_URL": "https://127.0.0.1:9/tenant"}

    code, output = run_cli(["schema", "plan", "--map", str(map_file)], env)

    assert code == 1
    assert "127.0.0.1:9" in output
    assert "Traceback" not in output


def test_a_map_file_that_cannot_be_read_fails_cleanly(cli_env: dict[str, str]) -> None:
    code, output = run_cli(["schema", "plan", "--map", "no-such-map.yaml"], cli_env)

    assert code == 1
    assert "no-such-map.yaml" in output


def _table(name: str) -> TableDefinition:
    primary = ColumnDefinition(f"{name}_title", "string", "Title")
    return TableDefinition(name, name, name + "s", primary)


def test_a_table_that_takes_no_custom_columns_gets_no_source_key(
    client: DataverseClient,
) -> None:
    document = small_map().model_dump(mode="json")
    document["objects"].append(
        {"name": "notes", "phase": 7, "target": "annotation", "sources": ["Kontaktbericht"]}
    )
    metadata = MetadataApi(client)

    schema_plan = plan(parse_map(document), metadata)

    annotation, account = metadata.entity("annotation"), metadata.entity("account")
    assert annotation is not None
    assert account is not None
    assert (annotation.can_create_attributes, account.can_create_attributes) == (False, True)
    assert not schema_plan.problems
    assert all(change.table != "annotation" for change in schema_plan.changes)
    assert any("annotation takes no custom columns" in note for note in schema_plan.notes)


def test_the_default_map_is_provisioned_completely_and_only_once(
    client: DataverseClient, log: EventLog
) -> None:
    from producers.mapping.default import default_map

    migration_map = default_map()
    confirm(log, migration_map, by="test")
    metadata = MetadataApi(client)
    schema_plan = plan(migration_map, metadata)

    events = apply(schema_plan, metadata, log, "run-1")

    assert not schema_plan.problems
    assert schema_plan.new_tables == ["w4a_openitem"]
    assert len(events) == len(schema_plan.changes)
    for obj in migration_map.objects:
        if obj.target == "annotation":
            continue
        columns = metadata.attributes(obj.target)
        for column in obj.columns:
            if column.custom:
                assert column.target in columns, f"{obj.target}.{column.target}"
        keys = metadata.keys(obj.target)
        assert [k.status for k in keys if k.key_attributes == ("w4a_sourcekey",)] == ["Active"]
    assert plan(migration_map, metadata).empty


def test_schema_plan_uses_the_shipped_map_when_none_is_given(cli_env: dict[str, str]) -> None:
    code, output = run_cli(["schema", "plan"], cli_env)

    assert code == 0, output
    assert "w4a_openitem" in output
    assert "not confirmed" in output
