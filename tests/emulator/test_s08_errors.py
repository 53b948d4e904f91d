"""Reference section 8: the error body shape and the validation codes of the code table."""

from __future__ import annotations

import httpx

from tests.emulator.conftest import entity_id


def test_an_unknown_body_property_is_400_invalid_property(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "X", "nmae": "typo"})

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "0x0",
            "message": "Invalid property 'nmae' was found in entity "
            "'Microsoft.Dynamics.CRM.account'.",
        }
    }


def test_a_string_over_its_max_length_is_0x80044331_with_the_exact_message(
    api: httpx.Client,
) -> None:
    response = api.post("tasks", json={"subject": "x" * 201})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80044331",
        "message": "A validation error occurred.  The length of the 'subject' attribute of the "
        "'task' entity exceeded the maximum allowed length of '200'.",
    }


def test_a_string_at_its_max_length_is_accepted(api: httpx.Client) -> None:
    assert api.post("tasks", json={"subject": "x" * 200}).status_code == 204


def test_an_option_value_outside_the_option_set_is_0x8004431a(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "X", "customertypecode": 99})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x8004431A"


def test_documented_option_values_are_accepted(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "X", "customertypecode": 10})

    assert response.status_code == 204


def test_a_status_of_another_state_on_create_is_0x80048408(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "X", "statuscode": 2})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "0x80048408"
    assert error["message"].startswith(
        "2 is not a valid status code for state code AccountState.Active"
    )


def test_a_missing_system_required_column_is_rejected(api: httpx.Client) -> None:
    response = api.post("uoms", json={"name": "Box"})

    assert response.status_code == 400


def test_application_required_columns_are_not_enforced(api: httpx.Client) -> None:
    response = api.post("contacts", json={"firstname": "No last name"})

    assert response.status_code == 204


def test_a_system_required_column_cannot_be_set_to_null(api: httpx.Client) -> None:
    price_list = entity_id(api.post("pricelevels", json={"name": "PL null test"}))

    response = api.patch(f"pricelevels({price_list})", json={"name": None})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80043b0e"


def test_a_value_of_the_wrong_type_is_400(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "X", "revenue": "lots"})

    assert response.status_code == 400
    assert "Edm.Decimal" in response.json()["error"]["message"]


def test_errors_carry_only_code_and_message(api: httpx.Client) -> None:
    body = api.get("accounts(00000000-0000-0000-0000-000000000000)").json()

    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
