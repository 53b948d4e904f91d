"""Reference section 10: the Sales tables' own rules (opportunity, product catalog, lines)."""

from __future__ import annotations

import httpx
import pytest

from dataverse_emulator.records import EUR_ID
from tests.emulator.conftest import entity_id, new_key


def _create(api: httpx.Client, entity_set: str, body: dict[str, object]) -> str:
    response = api.post(entity_set, json=body)
    assert response.status_code == 204, response.text
    return entity_id(response)


@pytest.fixture
def unit_group(api: httpx.Client) -> tuple[str, str]:
    """A unit group and the base unit Dataverse creates with it."""
    group = _create(api, "uomschedules", {"name": new_key(), "baseuomname": "Piece"})
    units = api.get("uoms", params={"$filter": f"_uomscheduleid_value eq {group}"}).json()
    return group, units["value"][0]["uomid"]


def _product(api: httpx.Client, group: str, unit: str, **extra: object) -> str:
    return _create(
        api,
        "products",
        {
            "name": "Widget",
            "productnumber": new_key(),
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
            "defaultuomid@odata.bind": f"/uoms({unit})",
            **extra,
        },
    )


def test_eur_is_the_seeded_base_currency(api: httpx.Client) -> None:
    rows = api.get("transactioncurrencies?$filter=isocurrencycode eq 'EUR'").json()["value"]

    assert [row["transactioncurrencyid"] for row in rows] == [EUR_ID]


def test_a_row_with_money_gets_the_base_currency_when_none_is_bound(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Rich", "revenue": 1})

    assert api.get(f"accounts({account})").json()["_transactioncurrencyid_value"] == EUR_ID


def test_a_root_business_unit_is_seeded(api: httpx.Client) -> None:
    rows = api.get("businessunits?$filter=_parentbusinessunitid_value eq null").json()["value"]

    assert len(rows) == 1


def test_systemusers_can_be_filtered_by_isdisabled(api: httpx.Client) -> None:
    rows = api.get("systemusers?$select=internalemailaddress&$filter=isdisabled eq true").json()

    assert "gone@example.com" in {row["internalemailaddress"] for row in rows["value"]}


def test_a_unit_group_creates_its_base_unit(unit_group: tuple[str, str], api: httpx.Client) -> None:
    _, unit = unit_group

    assert api.get(f"uoms({unit})").json()["name"] == "Piece"


def test_a_product_is_created_as_draft(unit_group: tuple[str, str], api: httpx.Client) -> None:
    product = _product(api, *unit_group)

    body = api.get(f"products({product})?$select=statecode,statuscode").json()

    assert (body["statecode"], body["statuscode"]) == (2, 0)


def test_a_product_without_a_unit_group_is_0x80043b13(api: httpx.Client) -> None:
    response = api.post("products", json={"name": "Loose", "productnumber": new_key()})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80043b13"


def test_a_product_without_a_product_number_is_0x80043b05(
    unit_group: tuple[str, str], api: httpx.Client
) -> None:
    group, unit = unit_group
    response = api.post(
        "products",
        json={
            "name": "Nameless",
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
            "defaultuomid@odata.bind": f"/uoms({unit})",
        },
    )

    assert response.json()["error"]["code"] == "0x80043b05"


def test_a_default_unit_of_another_group_is_0x80043b14(
    unit_group: tuple[str, str], api: httpx.Client
) -> None:
    group, _ = unit_group
    other_group = _create(api, "uomschedules", {"name": new_key()})
    other_unit = api.get(f"uoms?$filter=_uomscheduleid_value eq {other_group}").json()["value"][0]

    response = api.post(
        "products",
        json={
            "name": "Mismatch",
            "productnumber": new_key(),
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
            "defaultuomid@odata.bind": f"/uoms({other_unit['uomid']})",
        },
    )

    assert response.json()["error"]["code"] == "0x80043b14"


def test_a_duplicate_product_number_is_0x80043b06(
    unit_group: tuple[str, str], api: httpx.Client
) -> None:
    number = new_key()
    _product(api, *unit_group, productnumber=number)

    group, unit = unit_group
    response = api.post(
        "products",
        json={
            "name": "Twin",
            "productnumber": number,
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group})",
            "defaultuomid@odata.bind": f"/uoms({unit})",
        },
    )

    assert response.json()["error"]["code"] == "0x80043b06"


def test_a_product_is_published_by_patching_its_state(
    unit_group: tuple[str, str], api: httpx.Client
) -> None:
    product = _product(api, *unit_group)

    response = api.patch(f"products({product})", json={"statecode": 0, "statuscode": 1})

    assert response.status_code == 204
    assert api.get(f"products({product})").json()["statecode"] == 0


def test_an_active_product_cannot_be_edited(unit_group: tuple[str, str], api: httpx.Client) -> None:
    product = _product(api, *unit_group)
    api.patch(f"products({product})", json={"statecode": 0, "statuscode": 1})

    response = api.patch(f"products({product})", json={"name": "Changed"})

    assert response.json()["error"]["code"] == "0x8004F995"


def test_a_price_list_needs_a_name(api: httpx.Client) -> None:
    response = api.post("pricelevels", json={"description": "nameless"})

    assert response.json()["error"]["code"] == "0x80043b0e"


def test_a_price_list_item_joins_price_list_product_and_unit(
    unit_group: tuple[str, str], api: httpx.Client
) -> None:
    group, unit = unit_group
    product = _product(api, group, unit)
    price_list = _create(api, "pricelevels", {"name": new_key()})
    item = {
        "pricelevelid@odata.bind": f"/pricelevels({price_list})",
        "productid@odata.bind": f"/products({product})",
        "uomid@odata.bind": f"/uoms({unit})",
        "amount": 9.99,
    }

    first = api.post("productpricelevels", json=item)
    duplicate = api.post("productpricelevels", json=item)

    assert first.status_code == 204
    assert duplicate.json()["error"]["code"] == "0x80043b08"


def test_a_price_list_item_without_a_product_is_rejected(api: httpx.Client) -> None:
    price_list = _create(api, "pricelevels", {"name": new_key()})

    response = api.post(
        "productpricelevels",
        json={"pricelevelid@odata.bind": f"/pricelevels({price_list})", "amount": 1},
    )

    assert response.status_code == 400


def test_a_quote_line_needs_its_quote(api: httpx.Client) -> None:
    quote = _create(api, "quotes", {"name": "Q"})

    with_header = api.post(
        "quotedetails",
        json={
            "quoteid@odata.bind": f"/quotes({quote})",
            "isproductoverridden": True,
            "productdescription": "Write-in",
            "quantity": 2,
            "priceperunit": 5,
        },
    )
    without_header = api.post("quotedetails", json={"productdescription": "Orphan", "quantity": 1})

    assert with_header.status_code == 204
    assert without_header.status_code == 400


def test_a_quote_number_is_generated_when_left_out(api: httpx.Client) -> None:
    quote = _create(api, "quotes", {"name": "Numbered"})

    assert api.get(f"quotes({quote})").json()["quotenumber"]


def test_an_invoice_line_needs_its_invoice(api: httpx.Client) -> None:
    invoice = _create(api, "invoices", {"name": "I"})

    with_header = api.post(
        "invoicedetails",
        json={"invoiceid@odata.bind": f"/invoices({invoice})", "productdescription": "x"},
    )
    without_header = api.post("invoicedetails", json={"productdescription": "x"})

    assert with_header.status_code == 204
    assert without_header.status_code == 400


def test_an_opportunity_product_needs_its_opportunity(api: httpx.Client) -> None:
    opportunity = _create(api, "opportunities", {"name": "O"})

    ok = api.post(
        "opportunityproducts",
        json={"opportunityid@odata.bind": f"/opportunities({opportunity})", "quantity": 1},
    )
    orphan = api.post("opportunityproducts", json={"quantity": 1})

    assert ok.status_code == 204
    assert orphan.status_code == 400


def test_an_opportunity_estimated_close_date_is_date_only(api: httpx.Client) -> None:
    opportunity = _create(
        api, "opportunities", {"name": "Dated", "estimatedclosedate": "2024-06-30"}
    )

    assert api.get(f"opportunities({opportunity})").json()["estimatedclosedate"] == "2024-06-30"


def test_an_opportunity_cannot_be_won_by_patching_its_state(api: httpx.Client) -> None:
    opportunity = _create(api, "opportunities", {"name": "Deal"})

    response = api.patch(f"opportunities({opportunity})", json={"statecode": 1, "statuscode": 3})

    assert response.status_code == 400
    assert "WinOpportunity" in response.json()["error"]["message"]


def test_an_open_opportunity_can_be_put_on_hold_by_patch(api: httpx.Client) -> None:
    opportunity = _create(api, "opportunities", {"name": "Deal"})

    response = api.patch(f"opportunities({opportunity})", json={"statecode": 0, "statuscode": 2})

    assert response.status_code == 204
