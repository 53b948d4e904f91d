"""Reference section 3: addressing, upserting and binding rows by alternate key."""

from __future__ import annotations

import httpx
import pytest

from dataverse_emulator.schema import AlternateKey, AttributeType, Column
from dataverse_emulator.server import RunningEmulator
from tests.emulator.conftest import entity_id, new_key


@pytest.fixture(scope="module", autouse=True)
def keys(emulator: RunningEmulator) -> None:
    """A custom source-key column with a key on account, and a composite key on contact."""
    schema = emulator.emulator.schema
    account = schema.table("account")
    account.add_column(Column("w4a_sourcekey", AttributeType.STRING, max_length=100, custom=True))
    account.add_key(AlternateKey("w4a_sourcekey_key", ("w4a_sourcekey",)))
    schema.table("contact").add_key(
        AlternateKey("w4a_name_email_key", ("firstname", "emailaddress1"))
    )


def test_a_row_is_addressed_by_its_alternate_key(api: httpx.Client) -> None:
    key = f"Kunden:{new_key()}"
    account = entity_id(api.post("accounts", json={"name": "Keyed", "w4a_sourcekey": key}))

    body = api.get(f"accounts(w4a_sourcekey='{key}')?$select=name").json()

    assert body["accountid"] == account


def test_a_row_is_addressed_by_a_composite_key(api: httpx.Client) -> None:
    email = f"{new_key()}@example.com"
    contact = entity_id(
        api.post("contacts", json={"firstname": "Joe", "lastname": "X", "emailaddress1": email})
    )

    body = api.get(f"contacts(firstname='Joe',emailaddress1='{email}')").json()

    assert body["contactid"] == contact


def test_a_missing_key_value_is_404(api: httpx.Client) -> None:
    response = api.get("accounts(w4a_sourcekey='Kunden:none')")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"


def test_a_key_that_is_not_defined_is_400(api: httpx.Client) -> None:
    response = api.get("accounts(telephone1='1')")

    assert response.status_code == 400
    assert "The key in the request URI is not valid for resource" in response.text


def test_upsert_by_key_creates_then_updates_and_copies_the_key(api: httpx.Client) -> None:
    key = f"Kunden:{new_key()}"
    url = f"accounts(w4a_sourcekey='{key}')"
    prefer = {"Prefer": "return=representation"}

    created = api.patch(url, json={"name": "One"}, headers=prefer)
    updated = api.patch(url, json={"name": "Two", "w4a_sourcekey": "ignored"}, headers=prefer)

    assert (created.status_code, updated.status_code) == (201, 200)
    assert created.json()["w4a_sourcekey"] == key
    assert updated.json()["w4a_sourcekey"] == key
    assert updated.json()["accountid"] == created.json()["accountid"]


def test_a_duplicate_key_value_is_412_entity_key_violated(api: httpx.Client) -> None:
    key = f"Kunden:{new_key()}"
    api.post("accounts", json={"name": "First", "w4a_sourcekey": key})

    response = api.post("accounts", json={"name": "Second", "w4a_sourcekey": key})

    assert response.status_code == 412
    error = response.json()["error"]
    assert error["code"] == "0x80060892"
    assert error["message"].startswith("Entity Key w4a_sourcekey_key violated.")


def test_a_lookup_binds_by_alternate_key(api: httpx.Client) -> None:
    key = f"Kunden:{new_key()}"
    account = entity_id(api.post("accounts", json={"name": "Parent", "w4a_sourcekey": key}))
    body = {
        "lastname": "Child",
        "parentcustomerid_account@odata.bind": f"/accounts(w4a_sourcekey='{key}')",
    }

    contact = entity_id(api.post("contacts", json=body))

    assert api.get(f"contacts({contact})").json()["_parentcustomerid_value"] == account


def test_delete_by_alternate_key(api: httpx.Client) -> None:
    key = f"Kunden:{new_key()}"
    api.post("accounts", json={"name": "Doomed", "w4a_sourcekey": key})

    response = api.delete(f"accounts(w4a_sourcekey='{key}')")

    assert response.status_code == 204
    assert api.get(f"accounts(w4a_sourcekey='{key}')").status_code == 404


def test_custom_columns_and_keys_need_a_publisher_prefix(emulator: RunningEmulator) -> None:
    from dataverse_emulator.errors import DataverseError

    with pytest.raises(DataverseError) as raised:
        emulator.emulator.schema.table("account").add_column(
            Column("legacyid", AttributeType.STRING, max_length=10, custom=True)
        )

    assert raised.value.code == "0x80044366"
