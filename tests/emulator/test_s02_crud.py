"""Reference section 2: create, retrieve, query, update, upsert and delete over the Web API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.emulator.conftest import entity_id, new_key

REPRESENTATION = {"Prefer": "return=representation"}


def _account(api: httpx.Client, **values: object) -> str:
    response = api.post("accounts", json={"name": new_key(), **values})
    assert response.status_code == 204, response.text
    return entity_id(response)


def test_service_document_lists_the_entity_sets(api: httpx.Client) -> None:
    names = {item["name"] for item in api.get("").json()["value"]}

    assert {"accounts", "contacts", "opportunities", "phonecalls", "annotations"} <= names


def test_unknown_entity_set_is_404_resource_not_found(api: httpx.Client) -> None:
    response = api.get("acounts")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "0x8006088a", "message": "Resource not found for the segment 'acounts'."}
    }


def test_create_returns_204_with_odata_entityid(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "Contoso", "revenue": 5000000})

    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["OData-EntityId"].startswith(f"{api.base_url}accounts(")


def test_create_with_return_representation_returns_201_and_the_row(api: httpx.Client) -> None:
    response = api.post(
        "accounts?$select=name,accountid", json={"name": "Fabrikam"}, headers=REPRESENTATION
    )

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Fabrikam"
    assert body["@odata.etag"].startswith('W/"')
    assert set(body) == {"@odata.context", "@odata.etag", "name", "accountid"}
    assert response.headers["Preference-Applied"] == "return=representation"


def test_create_keeps_a_client_chosen_primary_key(api: httpx.Client) -> None:
    chosen = str(uuid.uuid4())

    response = api.post("accounts", json={"accountid": chosen, "name": "Chosen"})

    assert entity_id(response) == chosen
    assert api.get(f"accounts({chosen})").json()["name"] == "Chosen"


def test_create_with_an_existing_primary_key_is_412_duplicate_record(api: httpx.Client) -> None:
    chosen = _account(api)

    response = api.post("accounts", json={"accountid": chosen, "name": "Again"})

    assert response.status_code == 412
    assert response.json()["error"]["code"] == "0x80040237"


def test_retrieve_with_select_returns_etag_and_primary_key(api: httpx.Client) -> None:
    account = _account(api, revenue=12.5)

    body = api.get(f"accounts({account})?$select=revenue").json()

    assert body["revenue"] == 12.5
    assert body["accountid"] == account
    assert "name" not in body


def test_retrieve_of_a_missing_row_is_404_object_does_not_exist(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())

    response = api.get(f"accounts({missing})")

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "0x80040217",
        "message": f"account With Id = {missing} Does Not Exist",
    }


def test_select_of_an_unknown_property_is_400(api: httpx.Client) -> None:
    response = api.get("accounts?$select=Name")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x0",
        "message": "Could not find a property named 'Name' on type "
        "'Microsoft.Dynamics.CRM.account'.",
    }


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("revenue eq 20", {"b"}),
        ("revenue ne 20", {"a", "c"}),
        ("revenue gt 10", {"b", "c"}),
        ("revenue ge 20", {"b", "c"}),
        ("revenue lt 20", {"a"}),
        ("revenue le 20", {"a", "b"}),
        ("revenue gt 10 and revenue lt 30", {"b"}),
        ("revenue eq 10 or revenue eq 30", {"a", "c"}),
        ("not (revenue eq 20)", {"a", "c"}),
        ("contains(name,'-B')", {"b"}),
        ("startswith(name,'{tag}-c')", {"c"}),
        ("endswith(name,'-A')", {"a"}),
        ("telephone1 eq null", {"a", "b"}),
        ("telephone1 ne null", {"c"}),
        ("creditonhold eq true", {"c"}),
        ("name eq '{tag}-b'", {"b"}),
    ],
)
def test_filter_operators_select_the_matching_rows(
    api: httpx.Client, expression: str, expected: set[str]
) -> None:
    tag = new_key()
    for letter, revenue in (("a", 10), ("b", 20), ("c", 30)):
        extra = {"telephone1": "1", "creditonhold": True} if letter == "c" else {}
        api.post("accounts", json={"name": f"{tag}-{letter.upper()}", "revenue": revenue, **extra})
    query = f"startswith(name,'{tag}') and ({expression.format(tag=tag)})"

    rows = api.get("accounts", params={"$select": "name", "$filter": query}).json()["value"]

    assert {row["name"][-1].lower() for row in rows} == expected


def test_filter_on_an_unknown_property_is_400(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$filter": "nosuch eq 1"})

    assert response.status_code == 400
    assert "Could not find a property named 'nosuch'" in response.json()["error"]["message"]


def test_orderby_top_and_count(api: httpx.Client) -> None:
    tag = new_key()
    for revenue in (3, 1, 2):
        api.post("accounts", json={"name": f"{tag}{revenue}", "revenue": revenue})
    params = {
        "$select": "revenue",
        "$filter": f"startswith(name,'{tag}')",
        "$orderby": "revenue desc",
        "$top": "2",
        "$count": "true",
    }

    body = api.get("accounts", params=params).json()

    assert [row["revenue"] for row in body["value"]] == [3, 2]
    assert body["@odata.count"] == 3
    assert "@odata.nextLink" not in body


def test_maxpagesize_pages_through_next_links_without_gaps(api: httpx.Client) -> None:
    tag = new_key()
    for i in range(25):
        api.post("accounts", json={"name": f"{tag}-{i:02}"})
    prefer = {"Prefer": "odata.maxpagesize=10"}
    url: str | None = f"accounts?$select=name&$filter=startswith(name,'{tag}')"
    names: list[str] = []
    pages = 0
    while url:
        response = api.get(url, headers=prefer)
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=10"
        body = response.json()
        names += [row["name"] for row in body["value"]]
        url = body.get("@odata.nextLink")
        assert url is None or "$skiptoken=" in url
        pages += 1

    assert pages == 3
    assert sorted(names) == [f"{tag}-{i:02}" for i in range(25)]


def test_skip_is_not_supported(api: httpx.Client) -> None:
    response = api.get("accounts?$skip=10")

    assert response.status_code == 400


def test_expand_of_a_single_valued_lookup_with_nested_select(api: httpx.Client) -> None:
    contact = entity_id(api.post("contacts", json={"firstname": "Ada", "lastname": "Lovelace"}))
    account = _account(api, **{"primarycontactid@odata.bind": f"/contacts({contact})"})

    body = api.get(
        f"accounts({account})?$select=name&$expand=primarycontactid($select=fullname)"
    ).json()

    assert body["primarycontactid"]["fullname"] == "Ada Lovelace"
    assert body["primarycontactid"]["contactid"] == contact


def test_patch_updates_the_row_and_its_etag(api: httpx.Client) -> None:
    account = _account(api)
    before = api.get(f"accounts({account})").json()["@odata.etag"]

    response = api.patch(
        f"accounts({account})", json={"name": "Renamed"}, headers={"If-Match": "*"}
    )

    assert response.status_code == 204
    after = api.get(f"accounts({account})").json()
    assert after["name"] == "Renamed"
    assert after["@odata.etag"] != before


def test_patch_with_a_stale_etag_is_412_concurrency_mismatch(api: httpx.Client) -> None:
    account = _account(api)
    etag = api.get(f"accounts({account})").json()["@odata.etag"]
    api.patch(f"accounts({account})", json={"name": "First"})

    response = api.patch(
        f"accounts({account})", json={"name": "Second"}, headers={"If-Match": etag}
    )

    assert response.status_code == 412
    assert response.json()["error"]["code"] == "0x80060882"


def test_patch_without_preconditions_upserts_201_then_200(api: httpx.Client) -> None:
    chosen = str(uuid.uuid4())

    created = api.patch(f"accounts({chosen})", json={"name": "New"}, headers=REPRESENTATION)
    updated = api.patch(f"accounts({chosen})", json={"name": "Newer"}, headers=REPRESENTATION)

    assert (created.status_code, updated.status_code) == (201, 200)
    assert updated.json()["name"] == "Newer"


def test_upsert_without_representation_returns_204_with_entityid(api: httpx.Client) -> None:
    chosen = str(uuid.uuid4())

    response = api.patch(f"accounts({chosen})", json={"name": "New"})

    assert response.status_code == 204
    assert entity_id(response) == chosen


def test_patch_with_if_match_star_on_a_missing_row_is_404(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())

    response = api.patch(f"accounts({missing})", json={"name": "x"}, headers={"If-Match": "*"})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"account With Id = {missing} Does Not Exist"


def test_patch_with_if_none_match_star_on_an_existing_row_is_412(api: httpx.Client) -> None:
    account = _account(api)

    response = api.patch(f"accounts({account})", json={"name": "x"}, headers={"If-None-Match": "*"})

    assert response.status_code == 412
    assert (
        response.json()["error"]["message"] == "A record with matching key values already exists."
    )


def test_delete_removes_the_row_and_a_second_delete_is_404(api: httpx.Client) -> None:
    account = _account(api)

    first = api.delete(f"accounts({account})")
    second = api.delete(f"accounts({account})")

    assert first.status_code == 204
    assert second.status_code == 404
    assert second.json()["error"]["code"] == "0x80040217"
