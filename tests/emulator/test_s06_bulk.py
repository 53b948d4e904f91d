"""Reference section 6: CreateMultiple, UpdateMultiple, UpsertMultiple (and no DeleteMultiple)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from dataverse_emulator.schema import AlternateKey, AttributeType, Column
from dataverse_emulator.server import RunningEmulator
from tests.emulator.conftest import new_key

ACCOUNT = "Microsoft.Dynamics.CRM.account"


def accounts(*bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets for the account table, each with its required `@odata.type`."""
    return [{"@odata.type": ACCOUNT, **body} for body in bodies]


def bulk(api: httpx.Client, message: str, targets: list[dict[str, Any]]) -> httpx.Response:
    """POST `{"Targets": targets}` to `accounts/Microsoft.Dynamics.CRM.<message>`."""
    return api.post(f"accounts/Microsoft.Dynamics.CRM.{message}", json={"Targets": targets})


def names(api: httpx.Client, *ids: str) -> list[str | None]:
    """The stored name of each account, None where it does not exist."""
    found = []
    for row_id in ids:
        response = api.get(f"accounts({row_id})?$select=name")
        found.append(response.json()["name"] if response.status_code == 200 else None)
    return found


def count(api: httpx.Client, **equals: str) -> int:
    """How many accounts match every column = value."""
    where = " and ".join(f"{k} eq '{v}'" for k, v in equals.items())
    response = api.get("accounts", params={"$filter": where, "$count": "true", "$select": "name"})
    assert response.status_code == 200, response.text
    return int(response.json()["@odata.count"])


def error(response: httpx.Response, status: int) -> dict[str, str]:
    """The documented error body, after checking the status."""
    assert response.status_code == status, response.text
    body: dict[str, dict[str, str]] = response.json()
    return body["error"]


# -- CreateMultiple ----------------------------------------------------------------------------


def test_create_multiple_returns_the_new_ids_in_target_order(api: httpx.Client) -> None:
    batch = new_key()
    response = bulk(
        api,
        "CreateMultiple",
        accounts(*({"name": f"{batch}-{i}", "accountnumber": batch} for i in range(3))),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith(
        "/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    )
    assert names(api, *body["Ids"]) == [f"{batch}-0", f"{batch}-1", f"{batch}-2"]


def test_create_multiple_keeps_client_chosen_ids(api: httpx.Client) -> None:
    chosen = [str(uuid.uuid4()) for _ in range(2)]

    response = bulk(
        api, "CreateMultiple", accounts(*({"accountid": i, "name": new_key()} for i in chosen))
    )

    assert response.json()["Ids"] == chosen


def test_create_multiple_of_1000_accounts_in_one_request(api: httpx.Client) -> None:
    batch = new_key()
    response = bulk(
        api,
        "CreateMultiple",
        accounts(*({"name": batch, "accountnumber": str(i)} for i in range(1000))),
    )

    assert response.status_code == 200
    assert len(set(response.json()["Ids"])) == 1000
    assert count(api, name=batch) == 1000


def test_1000_accounts_from_create_multiple_read_back_in_pages_of_100(api: httpx.Client) -> None:
    batch = new_key()
    created = bulk(
        api,
        "CreateMultiple",
        accounts(*({"name": batch, "accountnumber": f"{i:04}"} for i in range(1000))),
    ).json()["Ids"]

    pages: list[list[dict[str, str]]] = []
    url: str | None = f"accounts?$select=accountid,accountnumber&$filter=name eq '{batch}'"
    while url is not None:
        page = api.get(url, headers={"Prefer": "odata.maxpagesize=100"})
        assert page.status_code == 200
        pages.append(page.json()["value"])
        url = page.json().get("@odata.nextLink")

    assert [len(page) for page in pages] == [100] * 10
    assert sorted(row["accountid"] for page in pages for row in page) == sorted(created)


def test_a_target_without_odata_type_fails_the_request(api: httpx.Client) -> None:
    batch = new_key()
    targets = [*accounts({"name": batch}), {"name": batch}]

    body = error(bulk(api, "CreateMultiple", targets), 400)

    assert body["code"] == "0x80048d19"
    assert "Targets[1] has no '@odata.type'" in body["message"]
    assert count(api, name=batch) == 0


def test_a_target_of_another_table_fails_the_request(api: httpx.Client) -> None:
    targets = [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "X"}]

    body = error(bulk(api, "CreateMultiple", targets), 400)

    assert body["code"] == "0x80048d19"


def test_a_request_without_targets_fails(api: httpx.Client) -> None:
    response = api.post("accounts/Microsoft.Dynamics.CRM.CreateMultiple", json={})

    assert error(response, 400)["code"] == "0x80048d19"


def test_an_existing_primary_key_fails_the_whole_create_multiple(api: httpx.Client) -> None:
    batch, taken = new_key(), str(uuid.uuid4())
    assert api.post("accounts", json={"accountid": taken, "name": "first"}).status_code == 204

    response = bulk(
        api,
        "CreateMultiple",
        accounts({"name": batch}, {"accountid": taken, "name": batch}, {"name": batch}),
    )

    assert error(response, 412) == {"code": "0x80040237", "message": "Cannot insert duplicate key."}
    assert count(api, name=batch) == 0


def test_one_invalid_target_writes_nothing(api: httpx.Client) -> None:
    batch = new_key()

    response = bulk(api, "CreateMultiple", accounts({"name": batch}, {"name": "x" * 161}))

    assert error(response, 400)["code"] == "0x80044331"
    assert count(api, name=batch) == 0


# -- UpdateMultiple ----------------------------------------------------------------------------


def _created(api: httpx.Client, *bodies: dict[str, Any]) -> list[str]:
    response = bulk(api, "CreateMultiple", accounts(*bodies))
    assert response.status_code == 200, response.text
    ids: list[str] = response.json()["Ids"]
    return ids


def test_update_multiple_changes_every_target(api: httpx.Client) -> None:
    first, second = _created(api, {"name": "a"}, {"name": "b"})

    response = bulk(
        api,
        "UpdateMultiple",
        accounts({"accountid": first, "name": "a2"}, {"accountid": second, "name": "b2"}),
    )

    assert response.status_code == 204, response.text
    assert names(api, first, second) == ["a2", "b2"]


def test_update_multiple_processes_only_the_first_of_duplicate_targets(api: httpx.Client) -> None:
    (row,) = _created(api, {"name": "a"})

    response = bulk(
        api,
        "UpdateMultiple",
        accounts({"accountid": row, "name": "first"}, {"accountid": row, "name": "second"}),
    )

    assert response.status_code == 204
    assert names(api, row) == ["first"]


def test_update_multiple_needs_the_primary_key(api: httpx.Client) -> None:
    body = error(bulk(api, "UpdateMultiple", accounts({"name": "no id"})), 400)

    assert "'accountid' is required" in body["message"]


def test_update_multiple_does_not_take_alternate_keys(api: httpx.Client) -> None:
    targets = accounts({"@odata.id": "accounts(accountnumber='1')", "name": "x"})

    body = error(bulk(api, "UpdateMultiple", targets), 400)

    assert "alternate keys" in body["message"]


def test_update_multiple_of_a_missing_row_writes_nothing(api: httpx.Client) -> None:
    (row,) = _created(api, {"name": "kept"})
    missing = str(uuid.uuid4())

    response = bulk(
        api,
        "UpdateMultiple",
        accounts({"accountid": row, "name": "changed"}, {"accountid": missing, "name": "x"}),
    )

    assert error(response, 404) == {
        "code": "0x80040217",
        "message": f"account With Id = {missing} Does Not Exist",
    }
    assert names(api, row) == ["kept"]


# -- UpsertMultiple ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(emulator: RunningEmulator) -> str:
    """A custom account column with an alternate key on it (added as test_s03 adds its keys)."""
    column = "cr1_bulkkey"
    account = emulator.emulator.schema.table("account")
    account.add_column(Column(column, AttributeType.STRING, max_length=100, custom=True))
    account.add_key(AlternateKey("cr1_bulkkey_key", (column,)))
    return column


def test_upsert_multiple_creates_and_updates_by_alternate_key(
    api: httpx.Client, keyed: str
) -> None:
    old, new = new_key(), new_key()
    assert api.post("accounts", json={keyed: old, "name": "before"}).status_code == 204

    response = bulk(
        api,
        "UpsertMultiple",
        accounts(
            {"@odata.id": f"accounts({keyed}='{old}')", "name": "after"},
            {"@odata.id": f"accounts({keyed}='{new}')", "name": "created"},
        ),
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert api.get(f"accounts({keyed}='{old}')?$select=name").json()["name"] == "after"
    created = api.get(f"accounts({keyed}='{new}')?$select=name,{keyed}").json()
    assert (created["name"], created[keyed]) == ("created", new)


def test_upsert_multiple_by_primary_key(api: httpx.Client) -> None:
    (existing,) = _created(api, {"name": "before"})
    fresh = str(uuid.uuid4())

    response = bulk(
        api,
        "UpsertMultiple",
        accounts(
            {"accountid": existing, "name": "after"},
            {"@odata.id": f"accounts({fresh})", "name": "new"},
        ),
    )

    assert response.status_code == 204, response.text
    assert names(api, existing, fresh) == ["after", "new"]


def test_upsert_multiple_with_duplicate_keys_fails_and_writes_nothing(
    api: httpx.Client, keyed: str
) -> None:
    value = new_key()
    targets = accounts(
        {"@odata.id": f"accounts({keyed}='{value}')", "name": "one"},
        {"@odata.id": f"accounts({keyed}='{value}')", "name": "two"},
    )

    body = error(bulk(api, "UpsertMultiple", targets), 400)

    assert "duplicate keys" in body["message"]
    assert api.get(f"accounts({keyed}='{value}')").status_code == 404


def test_upsert_multiple_rejects_an_odata_id_of_another_entity_set(api: httpx.Client) -> None:
    targets = accounts({"@odata.id": f"contacts({uuid.uuid4()})", "name": "x"})

    assert error(bulk(api, "UpsertMultiple", targets), 400)["code"] == "0x80048d19"


# -- DeleteMultiple ----------------------------------------------------------------------------


def test_delete_multiple_does_not_exist_for_standard_tables(api: httpx.Client) -> None:
    (row,) = _created(api, {"name": "stays"})

    response = bulk(api, "DeleteMultiple", accounts({"accountid": row}))

    assert error(response, 404) == {
        "code": "0x8006088a",
        "message": "Resource not found for the segment 'Microsoft.Dynamics.CRM.DeleteMultiple'.",
    }
    assert names(api, row) == ["stays"]
