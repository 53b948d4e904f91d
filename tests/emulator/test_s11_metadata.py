"""Reference section 11 (and 3.3): reading table definitions, creating columns, keys and tables."""

from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest

from dataverse_emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator
from tests.emulator.conftest import entity_id, new_key

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
CRM = "Microsoft.Dynamics.CRM."


def label(text: str) -> dict[str, Any]:
    """A Label body as Microsoft's examples send it."""
    return {
        "@odata.type": f"{CRM}Label",
        "LocalizedLabels": [
            {"@odata.type": f"{CRM}LocalizedLabel", "Label": text, "LanguageCode": 1033}
        ],
    }


def string_column(schema_name: str, max_length: int = 100, **extra: Any) -> dict[str, Any]:
    """The documented StringAttributeMetadata create body (reference 11.2)."""
    return {
        "@odata.type": f"{CRM}StringAttributeMetadata",
        "SchemaName": schema_name,
        "AttributeType": "String",
        "AttributeTypeName": {"Value": "StringType"},
        "MaxLength": max_length,
        "FormatName": {"Value": "Text"},
        "RequiredLevel": {
            "Value": "None",
            "CanBeChanged": True,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
        "DisplayName": label(schema_name),
        **extra,
    }


def table_body(schema_name: str) -> dict[str, Any]:
    """A custom-table body shaped like Microsoft's example, with its primary name column."""
    return {
        "@odata.type": f"{CRM}EntityMetadata",
        "SchemaName": schema_name,
        "DisplayName": label("Project"),
        "DisplayCollectionName": label("Projects"),
        "Description": label("Projects from work4all"),
        "OwnershipType": "UserOwned",
        "HasActivities": False,
        "HasNotes": False,
        "IsActivity": False,
        "Attributes": [string_column(f"{schema_name}Name", IsPrimaryName=True)],
    }


def add_column(api: httpx.Client, table: str, body: dict[str, Any]) -> httpx.Response:
    """POST a column definition to a table."""
    return api.post(f"EntityDefinitions(LogicalName='{table}')/Attributes", json=body)


def add_key(api: httpx.Client, table: str, name: str, *columns: str) -> httpx.Response:
    """POST an alternate key definition to a table (reference 3.3)."""
    body = {"SchemaName": name, "DisplayName": label(name), "KeyAttributes": list(columns)}
    return api.post(f"EntityDefinitions(LogicalName='{table}')/Keys", json=body)


def custom_table(api: httpx.Client) -> tuple[str, str]:
    """A fresh custom table: (logical name, entity set name)."""
    schema_name = f"w4a_Tbl{new_key()}"
    assert api.post("EntityDefinitions", json=table_body(schema_name)).status_code == 204
    found = api.get(
        "EntityDefinitions",
        params={
            "$select": "EntitySetName",
            "$filter": f"LogicalName eq '{schema_name.lower()}'",
        },
    ).json()["value"]
    return schema_name.lower(), found[0]["EntitySetName"]


def error_of(response: httpx.Response) -> tuple[int, str]:
    """(HTTP status, Dataverse error code) of an error response."""
    return response.status_code, response.json()["error"]["code"]


# ----------------------------------------------------------------------------------------------
# Reading EntityDefinitions


def test_a_client_resolves_entity_set_and_primary_id_like_the_python_sdk(
    api: httpx.Client,
) -> None:
    response = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'opportunity'",
        },
    )

    [found] = response.json()["value"]
    assert response.status_code == 200
    assert (found["EntitySetName"], found["PrimaryIdAttribute"]) == (
        "opportunities",
        "opportunityid",
    )
    created = entity_id(api.post(found["EntitySetName"], json={"name": "Resolved"}))
    row = api.get(f"{found['EntitySetName']}({created})").json()
    assert row[found["PrimaryIdAttribute"]] == created


def test_metadata_id_is_always_returned_and_select_limits_the_properties(
    api: httpx.Client,
) -> None:
    body = api.get(
        "EntityDefinitions(LogicalName='account')",
        params={"$select": "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute"},
    ).json()

    assert body["@odata.context"].endswith(
        "$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute,"
        "PrimaryNameAttribute)/$entity"
    )
    assert {k: v for k, v in body.items() if not k.startswith("@")} == {
        "MetadataId": body["MetadataId"],
        "LogicalName": "account",
        "EntitySetName": "accounts",
        "PrimaryIdAttribute": "accountid",
        "PrimaryNameAttribute": "name",
    }


def test_an_entity_definition_carries_schema_name_display_name_and_custom_flag(
    api: httpx.Client,
) -> None:
    body = api.get("EntityDefinitions(LogicalName='systemuser')").json()

    assert body["SchemaName"] == "SystemUser"
    assert body["ObjectTypeCode"] == 8
    assert body["IsCustomEntity"] is False
    assert body["OwnershipType"] == "BusinessOwned"
    assert body["DisplayName"]["UserLocalizedLabel"]["Label"] == "User"
    assert "Attributes" not in body


def test_filter_combines_conditions_with_or_and_and(api: httpx.Client) -> None:
    either = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName",
            "$filter": "LogicalName eq 'account' or EntitySetName eq 'contacts'",
        },
    ).json()["value"]
    both = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName",
            "$filter": "IsCustomEntity eq false and (LogicalName eq 'task' or IsActivity eq false)",
        },
    ).json()["value"]

    assert sorted(e["LogicalName"] for e in either) == ["account", "contact"]
    names = {e["LogicalName"] for e in both}
    assert "task" in names
    assert "account" in names
    assert "phonecall" not in names


def test_an_entity_is_addressed_by_its_metadata_id(api: httpx.Client) -> None:
    metadata_id = api.get("EntityDefinitions(LogicalName='contact')").json()["MetadataId"]

    body = api.get(f"EntityDefinitions({metadata_id})?$select=LogicalName").json()

    assert body["LogicalName"] == "contact"


def test_an_unknown_entity_is_404(api: httpx.Client) -> None:
    response = api.get("EntityDefinitions(LogicalName='w4a_nothing')")

    assert error_of(response) == (404, "0x80040217")


def test_an_unknown_property_in_select_is_400(api: httpx.Client) -> None:
    response = api.get("EntityDefinitions?$select=LogicalName,Bogus")

    assert error_of(response) == (400, "0x0")
    assert response.json()["error"]["message"] == (
        "Could not find a property named 'Bogus' on type 'Microsoft.Dynamics.CRM.EntityMetadata'."
    )


def test_query_options_metadata_does_not_support_are_400(api: httpx.Client) -> None:
    response = api.get("EntityDefinitions?$select=LogicalName&$top=1")

    assert error_of(response) == (400, "0x0")


def test_expand_attributes_takes_a_nested_select_and_filter(api: httpx.Client) -> None:
    [account] = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName",
            "$filter": "LogicalName eq 'account'",
            "$expand": "Attributes($select=LogicalName,AttributeType;"
            "$filter=LogicalName eq 'name' or LogicalName eq 'parentaccountid')",
        },
    ).json()["value"]

    assert sorted((a["LogicalName"], a["AttributeType"]) for a in account["Attributes"]) == [
        ("name", "String"),
        ("parentaccountid", "Lookup"),
    ]
    assert all("MaxLength" not in a for a in account["Attributes"])


def test_expand_keys_lists_each_tables_alternate_keys(api: httpx.Client) -> None:
    table, _ = custom_table(api)
    add_column(api, table, string_column(f"{table}_code"))
    add_key(api, table, f"{table}_code_key", f"{table}_code")

    [found] = api.get(
        "EntityDefinitions",
        params={
            "$select": "SchemaName",
            "$filter": f"LogicalName eq '{table}'",
            "$expand": "Keys($select=KeyAttributes)",
        },
    ).json()["value"]

    assert [k["KeyAttributes"] for k in found["Keys"]] == [[f"{table}_code"]]


def test_an_unknown_navigation_in_expand_is_400(api: httpx.Client) -> None:
    response = api.get("EntityDefinitions?$expand=Forms")

    assert error_of(response) == (400, "0x0")


# ----------------------------------------------------------------------------------------------
# Attributes


def test_attributes_have_the_documented_shape(api: httpx.Client) -> None:
    attributes = {
        a["LogicalName"]: a
        for a in api.get("EntityDefinitions(LogicalName='account')/Attributes").json()["value"]
    }

    name = attributes["name"]
    assert name["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    assert name["AttributeType"] == "String"
    assert name["AttributeTypeName"] == {"Value": "StringType"}
    assert name["RequiredLevel"]["Value"] == "ApplicationRequired"
    assert name["MaxLength"] == 160
    assert name["IsPrimaryName"] is True
    assert attributes["accountid"]["IsPrimaryId"] is True
    assert attributes["parentaccountid"]["Targets"] == ["account"]
    assert attributes["parentaccountid"]["@odata.type"] == (
        "#Microsoft.Dynamics.CRM.LookupAttributeMetadata"
    )
    assert attributes["ownerid"]["RequiredLevel"]["Value"] == "SystemRequired"
    assert (
        attributes["createdon"]["IsValidForCreate"],
        attributes["createdon"]["IsValidForUpdate"],
    ) == (
        False,
        False,
    )


def test_the_documented_attribute_query_selects_base_properties(api: httpx.Client) -> None:
    response = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes",
        params={
            "$select": "LogicalName,AttributeType,RequiredLevel,IsValidForCreate,IsValidForUpdate",
            "$filter": "LogicalName eq 'revenue'",
        },
    )

    [revenue] = response.json()["value"]
    assert revenue["AttributeType"] == "Money"
    assert revenue["@odata.type"] == "#Microsoft.Dynamics.CRM.MoneyAttributeMetadata"
    assert "Precision" not in revenue


def test_an_attribute_is_addressed_by_logical_name(api: httpx.Client) -> None:
    body = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='lastname')"
    ).json()

    assert (body["LogicalName"], body["MaxLength"], body["EntityLogicalName"]) == (
        "lastname",
        50,
        "contact",
    )


def test_an_unknown_attribute_is_404(api: httpx.Client) -> None:
    response = api.get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='nope')")

    assert error_of(response) == (404, "0x80040217")


def test_picklist_options_are_read_through_the_documented_cast_path(api: httpx.Client) -> None:
    body = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='customertypecode')"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={
            "$select": "LogicalName",
            "$expand": "OptionSet($select=Options),GlobalOptionSet($select=Options)",
        },
    ).json()

    options = {
        o["Value"]: o["Label"]["UserLocalizedLabel"]["Label"] for o in body["OptionSet"]["Options"]
    }
    assert options[3] == "Customer"
    assert body["GlobalOptionSet"] is None


def test_a_derived_property_needs_the_cast(api: httpx.Client) -> None:
    without = api.get("EntityDefinitions(LogicalName='account')/Attributes?$select=MaxLength")
    cast = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes"
        "/Microsoft.Dynamics.CRM.StringAttributeMetadata",
        params={"$select": "LogicalName,MaxLength"},
    )

    assert error_of(without) == (400, "0x0")
    lengths = {a["LogicalName"]: a["MaxLength"] for a in cast.json()["value"]}
    assert lengths["accountnumber"] == 20
    assert "revenue" not in lengths


def test_a_cast_to_another_type_is_404(api: httpx.Client) -> None:
    response = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')"
        "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    )

    assert error_of(response) == (404, "0x8006088a")


def test_option_set_expand_needs_an_enum_cast(api: httpx.Client) -> None:
    response = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='customertypecode')"
        "?$expand=OptionSet"
    )

    assert error_of(response) == (400, "0x0")


# ----------------------------------------------------------------------------------------------
# Creating columns


def test_a_custom_column_accepts_values_on_create_and_is_returned_on_retrieve(
    api: httpx.Client,
) -> None:
    schema_name = f"w4a_LegacyId{new_key()}"
    column = schema_name.lower()

    created = add_column(api, "account", string_column(schema_name, 40))
    account = entity_id(api.post("accounts", json={"name": "Custom", column: "K-1"}))

    assert created.status_code == 204
    assert "/EntityDefinitions(" in created.headers["OData-EntityId"]
    assert "/Attributes(" in created.headers["OData-EntityId"]
    assert api.get(f"accounts({account})?$select=name,{column}").json()[column] == "K-1"
    found = api.get(f"accounts?$select=name&$filter={column} eq 'K-1'").json()["value"]
    assert [a["accountid"] for a in found] == [account]


def test_a_custom_column_definition_keeps_its_schema_name_and_limits(api: httpx.Client) -> None:
    schema_name = f"w4a_LegacyId{new_key()}"
    column = schema_name.lower()
    add_column(api, "account", string_column(schema_name, 10))

    definition = api.get(
        f"EntityDefinitions(LogicalName='account')/Attributes(LogicalName='{column}')"
    ).json()
    too_long = api.post("accounts", json={"name": "Long", column: "x" * 11})

    assert (definition["SchemaName"], definition["MaxLength"]) == (schema_name, 10)
    assert definition["IsCustomAttribute"] is True
    assert definition["DisplayName"]["UserLocalizedLabel"]["Label"] == schema_name
    assert error_of(too_long) == (400, "0x80044331")


@pytest.mark.parametrize(
    ("odata_type", "extra", "value", "stored"),
    [
        ("IntegerAttributeMetadata", {"MinValue": 0, "MaxValue": 1000}, 42, 42),
        ("DecimalAttributeMetadata", {"Precision": 4}, 12.3456, 12.3456),
        ("MoneyAttributeMetadata", {"Precision": 2}, 99.5, 99.5),
        (
            "DateTimeAttributeMetadata",
            {"Format": "DateOnly", "DateTimeBehavior": {"Value": "DateOnly"}},
            "2021-05-04",
            "2021-05-04",
        ),
        ("DateTimeAttributeMetadata", {}, "2021-05-04T13:00:00Z", "2021-05-04T13:00:00Z"),
        ("BooleanAttributeMetadata", {}, True, True),
        ("MemoAttributeMetadata", {"MaxLength": 5000}, "long text", "long text"),
        (
            "PicklistAttributeMetadata",
            {
                "OptionSet": {
                    "IsGlobal": False,
                    "Options": [{"Value": 100000001, "Label": label("A")}],
                }
            },
            100000001,
            100000001,
        ),
    ],
)
def test_each_documented_column_type_is_created_and_holds_a_value(
    api: httpx.Client, odata_type: str, extra: dict[str, Any], value: Any, stored: Any
) -> None:
    column = f"w4a_col{new_key()}"
    body = {"@odata.type": f"{CRM}{odata_type}", "SchemaName": column, "DisplayName": label("C")}

    created = add_column(api, "contact", {**body, **extra})
    contact = entity_id(api.post("contacts", json={"lastname": "Typed", column: value}))

    assert created.status_code == 204
    assert api.get(f"contacts({contact})?$select={column}").json()[column] == stored
    definition = api.get(
        f"EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='{column}')"
    ).json()
    assert definition["@odata.type"] == f"#{CRM}{odata_type}"


def test_a_picklist_column_rejects_values_outside_its_options(api: httpx.Client) -> None:
    column = f"w4a_stage{new_key()}"
    options = [{"Label": label("Lead")}, {"Label": label("Won")}]
    add_column(
        api,
        "account",
        {
            "@odata.type": f"{CRM}PicklistAttributeMetadata",
            "SchemaName": column,
            "OptionSet": {"IsGlobal": False, "OptionSetType": "Picklist", "Options": options},
        },
    )

    good = api.post("accounts", json={"name": "P", column: 100000001})
    bad = api.post("accounts", json={"name": "P", column: 7})
    option_set = api.get(
        f"EntityDefinitions(LogicalName='account')/Attributes(LogicalName='{column}')"
        f"/{CRM}PicklistAttributeMetadata?$expand=OptionSet"
    ).json()["OptionSet"]

    assert good.status_code == 204
    assert error_of(bad) == (400, "0x8004431A")
    assert [o["Value"] for o in option_set["Options"]] == [100000000, 100000001]


def test_a_column_without_a_publisher_prefix_is_rejected_with_invalid_name_prefix(
    api: httpx.Client,
) -> None:
    response = add_column(api, "account", string_column("LegacyId"))

    assert error_of(response) == (400, "0x80044366")


def test_a_column_whose_name_exists_is_rejected(api: httpx.Client) -> None:
    schema_name = f"w4a_Twice{new_key()}"
    assert add_column(api, "account", string_column(schema_name)).status_code == 204

    response = add_column(api, "account", string_column(schema_name))

    assert error_of(response) == (400, "0x80044363")


def test_a_custom_column_cannot_be_system_required(api: httpx.Client) -> None:
    body = string_column(f"w4a_Req{new_key()}", RequiredLevel={"Value": "SystemRequired"})

    response = add_column(api, "account", body)

    assert error_of(response) == (400, "0x80040203")


def test_a_lookup_column_is_not_created_through_attributes(api: httpx.Client) -> None:
    body = {"@odata.type": f"{CRM}LookupAttributeMetadata", "SchemaName": f"w4a_L{new_key()}"}

    response = add_column(api, "account", body)

    assert error_of(response) == (400, "0x80040203")
    assert "RelationshipDefinitions" in response.json()["error"]["message"]


def test_a_string_column_longer_than_4000_is_rejected(api: httpx.Client) -> None:
    response = add_column(api, "account", string_column(f"w4a_Big{new_key()}", 4001))

    assert error_of(response) == (400, "0x80040203")


# ----------------------------------------------------------------------------------------------
# Alternate keys


def test_an_alternate_key_created_through_the_api_addresses_upserts_and_rejects_duplicates(
    api: httpx.Client,
) -> None:
    column = f"w4a_srckey{new_key()}"
    add_column(api, "account", string_column(column))
    key_name = f"{column}_key"

    created = add_key(api, "account", key_name, column)
    keys = api.get(
        "EntityDefinitions(LogicalName='account')/Keys"
        "?$select=SchemaName,KeyAttributes,EntityKeyIndexStatus"
    ).json()["value"]
    api.post("accounts", json={"name": "Kunde 1", column: "Kunden:1"})
    addressed = api.get(f"accounts({column}='Kunden:1')?$select=name")
    prefer = {"Prefer": "return=representation"}
    inserted = api.patch(f"accounts({column}='Kunden:2')", json={"name": "Kunde 2"}, headers=prefer)
    updated = api.patch(f"accounts({column}='Kunden:2')", json={"name": "Kunde 2b"}, headers=prefer)
    duplicate = api.post("accounts", json={"name": "Again", column: "Kunden:1"})

    assert created.status_code == 204
    assert "/Keys(" in created.headers["OData-EntityId"]
    assert {
        "SchemaName": key_name,
        "KeyAttributes": [column],
        "EntityKeyIndexStatus": "Active",
    } in [{k: v for k, v in key.items() if k != "MetadataId"} for key in keys]
    assert addressed.json()["name"] == "Kunde 1"
    assert (inserted.status_code, updated.status_code) == (201, 200)
    assert updated.json()["accountid"] == inserted.json()["accountid"]
    assert error_of(duplicate) == (412, "0x80060892")
    assert duplicate.json()["error"]["message"].startswith(f"Entity Key {key_name} violated.")


def test_a_key_over_existing_rows_indexes_them(api: httpx.Client) -> None:
    table, entity_set = custom_table(api)
    column = f"{table}_code"
    add_column(api, table, string_column(column))
    row = entity_id(api.post(entity_set, json={column: "A-1"}))

    add_key(api, table, f"{column}_key", column)

    assert api.get(f"{entity_set}({column}='A-1')").json()[f"{table}id"] == row
    assert error_of(api.post(entity_set, json={column: "A-1"})) == (412, "0x80060892")


def test_a_key_over_duplicate_values_fails_to_build_and_is_not_usable(api: httpx.Client) -> None:
    table, entity_set = custom_table(api)
    column = f"{table}_code"
    add_column(api, table, string_column(column))
    api.post(entity_set, json={column: "same"})
    api.post(entity_set, json={column: "same"})

    created = add_key(api, table, f"{column}_key", column)
    [key] = api.get(f"EntityDefinitions(LogicalName='{table}')/Keys").json()["value"]

    assert created.status_code == 204
    assert key["EntityKeyIndexStatus"] == "Failed"
    assert api.post(entity_set, json={column: "same"}).status_code == 204
    assert api.get(f"{entity_set}({column}='same')").status_code == 400


def test_key_limits_are_16_columns_and_10_keys_per_table(api: httpx.Client) -> None:
    table, _ = custom_table(api)
    columns = [f"{table}_n{i}" for i in range(17)]
    for column in columns:
        body = {"@odata.type": f"{CRM}IntegerAttributeMetadata", "SchemaName": column}
        assert add_column(api, table, body).status_code == 204

    seventeen = add_key(api, table, f"{table}_wide", *columns)
    ten = [add_key(api, table, f"{table}_k{i}", columns[i]).status_code for i in range(10)]
    eleventh = add_key(api, table, f"{table}_k10", columns[10])

    assert error_of(seventeen) == (400, "0x80060891")
    assert ten == [204] * 10
    assert error_of(eleventh) == (400, "0x80060890")


def test_a_key_over_900_bytes_is_rejected(api: httpx.Client) -> None:
    table, _ = custom_table(api)
    add_column(api, table, string_column(f"{table}_a", 300))
    add_column(api, table, string_column(f"{table}_b", 300))

    response = add_key(api, table, f"{table}_ab", f"{table}_a", f"{table}_b")

    assert error_of(response) == (400, "0x80060891")


@pytest.mark.parametrize("column", ["description", "w4a_doesnotexist"])
def test_a_key_needs_existing_columns_of_a_key_type(api: httpx.Client, column: str) -> None:
    response = add_key(api, "account", f"w4a_bad{new_key()}", column)

    assert error_of(response) == (400, "0x80060891")


def test_a_key_without_a_publisher_prefix_is_rejected(api: httpx.Client) -> None:
    response = add_key(api, "account", f"Key{new_key()}", "accountnumber")

    assert error_of(response) == (400, "0x80044366")


def test_a_key_name_or_column_set_that_exists_is_rejected(api: httpx.Client) -> None:
    table, _ = custom_table(api)
    add_column(api, table, string_column(f"{table}_a"))
    add_key(api, table, f"{table}_a_key", f"{table}_a")

    same_name = add_key(api, table, f"{table}_a_key", f"{table}_a")
    same_columns = add_key(api, table, f"{table}_other_key", f"{table}_a")

    assert error_of(same_name) == (400, "0x80044363")
    assert error_of(same_columns) == (400, "0x80044363")


def test_a_deleted_key_no_longer_addresses_rows(api: httpx.Client) -> None:
    table, entity_set = custom_table(api)
    column = f"{table}_code"
    add_column(api, table, string_column(column))
    key_id = add_key(api, table, f"{column}_key", column).headers["OData-EntityId"]
    api.post(entity_set, json={column: "gone"})

    deleted = api.delete(key_id)

    assert deleted.status_code == 204
    assert api.get(f"EntityDefinitions(LogicalName='{table}')/Keys").json()["value"] == []
    assert api.get(f"{entity_set}({column}='gone')").status_code == 400


# ----------------------------------------------------------------------------------------------
# Creating tables


def test_a_custom_table_created_through_the_api_supports_crud(api: httpx.Client) -> None:
    schema_name = f"w4a_Project{new_key()}"
    logical_name = schema_name.lower()

    created = api.post("EntityDefinitions", json=table_body(schema_name))
    definition = api.get(f"EntityDefinitions(LogicalName='{logical_name}')").json()
    entity_set = definition["EntitySetName"]
    name = definition["PrimaryNameAttribute"]
    row = entity_id(api.post(entity_set, json={name: "Umbau Halle 3"}))
    api.patch(f"{entity_set}({row})", json={name: "Umbau Halle 4"})
    read = api.get(f"{entity_set}({row})").json()
    deleted = api.delete(f"{entity_set}({row})")

    assert created.status_code == 204
    assert created.headers["OData-EntityId"].endswith(
        f"EntityDefinitions({definition['MetadataId']})"
    )
    assert (entity_set, definition["PrimaryIdAttribute"], name) == (
        f"{logical_name}s",
        f"{logical_name}id",
        f"{logical_name}name",
    )
    assert definition["IsCustomEntity"] is True
    assert definition["SchemaName"] == schema_name
    assert definition["ObjectTypeCode"] >= 10000
    assert (read[name], read["statecode"], read["statuscode"]) == ("Umbau Halle 4", 0, 1)
    assert read["_ownerid_value"] is not None
    assert deleted.status_code == 204


def test_a_custom_table_name_is_pluralised_like_dataverse(api: httpx.Client) -> None:
    # A consonant before the y: "key" → "keys", but "category" → "categories".
    schema_name = f"w4a_Cat{new_key()}ry"

    api.post("EntityDefinitions", json=table_body(schema_name))

    definition = api.get(f"EntityDefinitions(LogicalName='{schema_name.lower()}')").json()
    assert definition["EntitySetName"] == schema_name.lower()[:-1] + "ies"


def test_a_custom_table_without_a_publisher_prefix_is_rejected(api: httpx.Client) -> None:
    response = api.post("EntityDefinitions", json=table_body(f"Project{new_key()}"))

    assert error_of(response) == (400, "0x80044366")


def test_a_custom_table_needs_one_primary_name_string_column(api: httpx.Client) -> None:
    body = table_body(f"w4a_NoName{new_key()}")
    body["Attributes"][0]["IsPrimaryName"] = False

    response = api.post("EntityDefinitions", json=body)

    assert error_of(response) == (400, "0x80040203")


def test_a_custom_table_that_exists_is_rejected(api: httpx.Client) -> None:
    schema_name = f"w4a_Twice{new_key()}"
    api.post("EntityDefinitions", json=table_body(schema_name))

    response = api.post("EntityDefinitions", json=table_body(schema_name))

    assert error_of(response) == (400, "0x80044363")


def test_the_enterprise_licence_has_no_custom_table_limit(api: httpx.Client) -> None:
    for _ in range(16):
        assert (
            api.post("EntityDefinitions", json=table_body(f"w4a_E{new_key()}")).status_code == 204
        )

    custom = api.get("EntityDefinitions?$select=LogicalName&$filter=IsCustomEntity eq true").json()[
        "value"
    ]
    assert len(custom) > 15


@pytest.fixture(scope="module")
def professional_api() -> Iterator[httpx.Client]:
    """A client of a second emulator that runs with `licence="professional"`."""
    config = EmulatorConfig(limits_enabled=False, tls=True, licence="professional")
    with start_emulator(config) as running:
        yield from _client_of(running)


def _client_of(running: RunningEmulator) -> Iterator[httpx.Client]:
    assert running.cert_path is not None
    verify = ssl.create_default_context(cafile=running.cert_path)
    with httpx.Client(verify=verify) as http:
        app = msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=running.authority,
            instance_discovery=False,
            http_client=http,
        )
        token = app.acquire_token_for_client(scopes=[running.root_url + ".default"])
    with httpx.Client(
        base_url=running.base_url,
        verify=verify,
        headers={"Authorization": f"Bearer {token['access_token']}", "Accept": "application/json"},
        timeout=30,
    ) as client:
        yield client


def test_the_professional_licence_caps_custom_tables_at_15(
    professional_api: httpx.Client,
) -> None:
    statuses = [
        professional_api.post("EntityDefinitions", json=table_body(f"w4a_P{i}")).status_code
        for i in range(15)
    ]

    sixteenth = professional_api.post("EntityDefinitions", json=table_body("w4a_P15"))

    assert statuses == [204] * 15
    assert error_of(sixteenth) == (400, "0x80048547")
    assert "15 custom tables" in sixteenth.json()["error"]["message"]
    assert professional_api.get("w4a_p15s").status_code == 404


# ----------------------------------------------------------------------------------------------
# Publishing and $metadata


def test_publish_xml_and_publish_all_xml_are_accepted(api: httpx.Client) -> None:
    parameter = "<importexportxml><entities><entity>account</entity></entities></importexportxml>"

    one = api.post("PublishXml", json={"ParameterXml": parameter})
    every = api.post("PublishAllXml")

    assert (one.status_code, every.status_code) == (204, 204)


def test_publish_xml_needs_well_formed_parameter_xml(api: httpx.Client) -> None:
    missing = api.post("PublishXml", json={})
    broken = api.post("PublishXml", json={"ParameterXml": "<importexportxml>"})

    assert error_of(missing) == (400, "0x80040203")
    assert error_of(broken) == (400, "0x80040203")


def test_publish_actions_only_accept_post(api: httpx.Client) -> None:
    assert error_of(api.get("PublishAllXml")) == (405, "0x80060888")


def test_csdl_describes_entity_types_and_entity_sets(api: httpx.Client) -> None:
    response = api.get("$metadata")

    root = ET.fromstring(response.content)
    types = {t.get("Name"): t for t in root.iter(f"{EDM}EntityType")}
    account = types["account"]
    properties = {p.get("Name"): p.get("Type") for p in account.iter(f"{EDM}Property")}
    contact_navigations = {
        n.get("Name"): n.get("Type") for n in types["contact"].iter(f"{EDM}NavigationProperty")
    }
    sets = {s.get("Name"): s.get("EntityType") for s in root.iter(f"{EDM}EntitySet")}
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert [r.get("Name") for r in account.iter(f"{EDM}PropertyRef")] == ["accountid"]
    assert properties["name"] == "Edm.String"
    assert properties["_parentaccountid_value"] == "Edm.Guid"
    assert properties["revenue"] == "Edm.Decimal"
    assert contact_navigations["parentcustomerid_account"] == "mscrm.account"
    assert contact_navigations["parentcustomerid_contact"] == "mscrm.contact"
    assert sets["accounts"] == "Microsoft.Dynamics.CRM.account"
    assert sets["opportunities"] == "Microsoft.Dynamics.CRM.opportunity"


def test_csdl_includes_custom_tables_and_their_alternate_keys(api: httpx.Client) -> None:
    table, entity_set = custom_table(api)
    add_column(api, table, string_column(f"{table}_code"))
    add_key(api, table, f"{table}_code_key", f"{table}_code")

    root = ET.fromstring(api.get("$metadata").content)

    [entity] = [t for t in root.iter(f"{EDM}EntityType") if t.get("Name") == table]
    aliases = [
        v.get("String") for v in entity.iter(f"{EDM}PropertyValue") if v.get("Property") == "Alias"
    ]
    assert aliases == [f"{table}_code"]
    assert entity_set in {s.get("Name") for s in root.iter(f"{EDM}EntitySet")}


def test_csdl_only_answers_get(api: httpx.Client) -> None:
    assert error_of(api.post("$metadata")) == (405, "0x80060888")
