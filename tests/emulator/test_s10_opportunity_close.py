"""Reference section 10.3: closing opportunities with WinOpportunity and LoseOpportunity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.emulator.conftest import entity_id, new_key
from tests.emulator.test_s05_batch import changeset, part, read, send


def _opportunity(api: httpx.Client, **values: Any) -> str:
    response = api.post("opportunities", json={"name": new_key(), **values})
    assert response.status_code == 204, response.text
    return entity_id(response)


def _close(
    api: httpx.Client, action: str, opportunity: str, status: int, **close: Any
) -> httpx.Response:
    body = {
        "Status": status,
        "OpportunityClose": {
            "subject": action,
            "opportunityid@odata.bind": f"/opportunities({opportunity})",
            **close,
        },
    }
    return api.post(action, json=body)


def _state(api: httpx.Client, opportunity: str) -> dict[str, Any]:
    response = api.get(
        f"opportunities({opportunity})?$select=statecode,statuscode,actualvalue,actualclosedate"
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _closes(api: httpx.Client, opportunity: str) -> list[dict[str, Any]]:
    response = api.get(
        "opportunitycloses",
        params={
            "$filter": f"_opportunityid_value eq {opportunity}",
            "$select": "subject,actualrevenue,actualend,statecode,statuscode",
        },
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["value"]
    return rows


def test_win_opportunity_closes_it_as_won_with_a_completed_opportunityclose(
    api: httpx.Client,
) -> None:
    opportunity = _opportunity(api, estimatedvalue=40000)

    response = _close(
        api, "WinOpportunity", opportunity, 3, actualrevenue=50000, actualend="2021-03-31"
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    state = _state(api, opportunity)
    assert (state["statecode"], state["statuscode"]) == (1, 3)
    assert state["actualvalue"] == 50000
    assert state["actualclosedate"] == "2021-03-31"
    (close,) = _closes(api, opportunity)
    assert (close["subject"], close["actualrevenue"]) == ("WinOpportunity", 50000)
    assert (close["statecode"], close["statuscode"]) == (1, 2)


def test_lose_opportunity_closes_it_as_lost_with_the_given_status(api: httpx.Client) -> None:
    opportunity = _opportunity(api)

    response = _close(api, "LoseOpportunity", opportunity, 5, actualend="2022-01-15T10:00:00Z")

    assert response.status_code == 204, response.text
    state = _state(api, opportunity)
    assert (state["statecode"], state["statuscode"]) == (2, 5)
    assert state["actualclosedate"] == "2022-01-15"
    assert len(_closes(api, opportunity)) == 1


def test_without_actualend_the_close_date_is_today(api: httpx.Client) -> None:
    opportunity = _opportunity(api)

    assert _close(api, "LoseOpportunity", opportunity, 4).status_code == 204

    assert _state(api, opportunity)["actualclosedate"] == datetime.now(UTC).strftime("%Y-%m-%d")


def test_closing_an_already_closed_opportunity_fails(api: httpx.Client) -> None:
    opportunity = _opportunity(api)
    assert _close(api, "WinOpportunity", opportunity, 3).status_code == 204

    response = _close(api, "LoseOpportunity", opportunity, 4)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80040515"
    assert (_state(api, opportunity)["statecode"], len(_closes(api, opportunity))) == (1, 1)


def test_a_status_of_another_state_fails_and_writes_nothing(api: httpx.Client) -> None:
    opportunity = _opportunity(api)

    response = _close(api, "WinOpportunity", opportunity, 4)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80048408",
        "message": f"4 is not a valid status code for state code OpportunityState.Won on "
        f"opportunity with Id {opportunity}.",
    }
    assert (_state(api, opportunity)["statecode"], _closes(api, opportunity)) == (0, [])


def test_closing_a_missing_opportunity_is_404(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())

    response = _close(api, "WinOpportunity", missing, 3)

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "0x80040217",
        "message": f"opportunity With Id = {missing} Does Not Exist",
    }


def test_status_is_required(api: httpx.Client) -> None:
    opportunity = _opportunity(api)
    body = {"OpportunityClose": {"opportunityid@odata.bind": f"/opportunities({opportunity})"}}

    response = api.post("WinOpportunity", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"
    assert _state(api, opportunity)["statecode"] == 0


def test_an_opportunity_created_in_a_changeset_can_be_won_in_it(api: httpx.Client) -> None:
    name = new_key()
    win = {
        "Status": 3,
        "OpportunityClose": {"subject": "Won", "opportunityid@odata.bind": "$1"},
    }

    response = send(
        api,
        changeset(
            part("POST", "opportunities", {"name": name}, content_id=1),
            part("POST", "WinOpportunity", win, content_id=2),
        ),
    )

    assert response.status_code == 200, response.text
    created, won = read(response)
    assert won.status == 204
    opportunity = created.headers["odata-entityid"].rsplit("(", 1)[1].rstrip(")")
    assert _state(api, opportunity)["statecode"] == 1
