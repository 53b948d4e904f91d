"""Reference section 4: `@odata.bind` with Dataverse's navigation-property names."""

from __future__ import annotations

import uuid

import httpx

from dataverse_emulator.records import user_id_for_client
from tests.emulator.conftest import DISABLED_USER, entity_id, new_key

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}


def _create(api: httpx.Client, entity_set: str, body: dict[str, object]) -> str:
    response = api.post(entity_set, json=body)
    assert response.status_code == 204, response.text
    return entity_id(response)


def _user(api: httpx.Client, email: str) -> str:
    rows = api.get("systemusers", params={"$filter": f"internalemailaddress eq '{email}'"})
    return str(rows.json()["value"][0]["systemuserid"])


def test_customer_lookup_binds_through_parentcustomerid_account(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Parent"})

    contact = _create(
        api,
        "contacts",
        {"lastname": "Child", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )

    body = api.get(f"contacts({contact})", headers=ANNOTATIONS).json()
    assert body["_parentcustomerid_value"] == account
    assert body["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    assert body["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Parent"


def test_customer_lookup_binds_to_a_contact_through_parentcustomerid_contact(
    api: httpx.Client,
) -> None:
    parent = _create(api, "contacts", {"lastname": "Parent"})

    child = _create(
        api,
        "contacts",
        {"lastname": "Child", "parentcustomerid_contact@odata.bind": f"contacts({parent})"},
    )

    body = api.get(f"contacts({child})", headers=ANNOTATIONS).json()
    assert body["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"


def test_binding_the_column_name_instead_of_the_navigation_property_is_400(
    api: httpx.Client,
) -> None:
    account = _create(api, "accounts", {"name": "Parent"})

    response = api.post(
        "contacts",
        json={"lastname": "X", "parentcustomerid@odata.bind": f"/accounts({account})"},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80048d19"
    assert "An undeclared property 'parentcustomerid'" in error["message"]


def test_binding_to_a_row_that_does_not_exist_is_0x80040217(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())

    response = api.post(
        "contacts",
        json={"lastname": "X", "parentcustomerid_account@odata.bind": f"/accounts({missing})"},
    )

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "0x80040217",
        "message": f"account With Id = {missing} Does Not Exist",
    }


def test_binding_to_the_wrong_entity_set_is_a_payload_error(api: httpx.Client) -> None:
    contact = _create(api, "contacts", {"lastname": "Other"})

    response = api.post(
        "contacts",
        json={"lastname": "X", "parentcustomerid_account@odata.bind": f"/contacts({contact})"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"


def test_an_absolute_url_binds_too(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Abs"})

    opportunity = _create(
        api,
        "opportunities",
        {"name": "Deal", "customerid_account@odata.bind": f"{api.base_url}accounts({account})"},
    )

    assert api.get(f"opportunities({opportunity})").json()["_customerid_value"] == account


def test_regarding_binds_through_regardingobjectid_account_phonecall(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Called"})

    call = _create(
        api,
        "phonecalls",
        {
            "subject": "Hi",
            "regardingobjectid_account_phonecall@odata.bind": f"/accounts({account})",
        },
    )

    assert api.get(f"phonecalls({call})").json()["_regardingobjectid_value"] == account


def test_regarding_with_another_activitys_navigation_name_is_rejected(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Called"})

    response = api.post(
        "phonecalls",
        json={
            "subject": "Hi",
            "regardingobjectid_account_task@odata.bind": f"/accounts({account})",
        },
    )

    assert response.status_code == 400


def test_a_note_attaches_through_objectid_account(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Noted"})

    note = _create(
        api, "annotations", {"subject": "N", "objectid_account@odata.bind": f"/accounts({account})"}
    )

    body = api.get(f"annotations({note})").json()
    assert body["_objectid_value"] == account
    assert body["objecttypecode"] == "account"


def test_owner_defaults_to_the_calling_application_user(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Mine"})

    owner = api.get(f"accounts({account})").json()["_ownerid_value"]

    assert owner == user_id_for_client("crmledger-emulator")


def test_ownerid_binds_to_an_enabled_systemuser(api: httpx.Client) -> None:
    user = _user(api, "anna@example.com")

    account = _create(
        api, "accounts", {"name": "Owned", "ownerid@odata.bind": f"/systemusers({user})"}
    )

    assert api.get(f"accounts({account})").json()["_ownerid_value"] == user


def test_ownerid_bound_to_a_disabled_systemuser_is_rejected(api: httpx.Client) -> None:
    user = _user(api, DISABLED_USER)

    response = api.post(
        "accounts", json={"name": "Owned", "ownerid@odata.bind": f"/systemusers({user})"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80040225"
    assert error["message"].startswith(f"The specified user(Id = {user}) is disabled.")


def test_assigning_to_a_disabled_systemuser_is_rejected(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Assigned"})
    user = _user(api, DISABLED_USER)

    response = api.patch(
        f"accounts({account})", json={"ownerid@odata.bind": f"/systemusers({user})"}
    )

    assert response.json()["error"]["code"] == "0x80040225"


def test_ownerid_binds_to_a_team(api: httpx.Client) -> None:
    team = _create(api, "teams", {"name": new_key(), "teamtype": 0})

    account = _create(
        api, "accounts", {"name": "Team-owned", "ownerid@odata.bind": f"/teams({team})"}
    )

    body = api.get(f"accounts({account})", headers=ANNOTATIONS).json()
    assert body["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "team"


def test_a_lookup_is_cleared_with_delete_ref(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "P"})
    contact = _create(
        api,
        "contacts",
        {"lastname": "C", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )

    response = api.delete(f"contacts({contact})/parentcustomerid_account/$ref")

    assert response.status_code == 204
    assert api.get(f"contacts({contact})").json()["_parentcustomerid_value"] is None


def test_a_null_bind_clears_a_lookup(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "P"})
    contact = _create(
        api,
        "contacts",
        {"lastname": "C", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )

    api.patch(f"contacts({contact})", json={"parentcustomerid_account@odata.bind": None})

    assert api.get(f"contacts({contact})").json()["_parentcustomerid_value"] is None


def test_lookups_are_filtered_by_their_value_property(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "P"})
    contact = _create(
        api,
        "contacts",
        {"lastname": "C", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
    )

    rows = api.get("contacts", params={"$filter": f"_parentcustomerid_value eq {account}"}).json()

    assert [row["contactid"] for row in rows["value"]] == [contact]
