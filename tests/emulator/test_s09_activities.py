"""Reference section 9: history columns, activities created open and closed by PATCH, notes."""

from __future__ import annotations

import httpx

from dataverse_emulator.server import RunningEmulator
from tests.emulator.conftest import entity_id


def _create(api: httpx.Client, entity_set: str, body: dict[str, object]) -> str:
    response = api.post(entity_set, json=body)
    assert response.status_code == 204, response.text
    return entity_id(response)


def test_createdon_and_modifiedon_in_the_body_are_silently_ignored(api: httpx.Client) -> None:
    account = _create(
        api,
        "accounts",
        {"name": "Old", "createdon": "2001-01-01T00:00:00Z", "modifiedon": "2001-01-01T00:00:00Z"},
    )

    body = api.get(f"accounts({account})").json()

    assert not body["createdon"].startswith("2001")
    assert not body["modifiedon"].startswith("2001")


def test_overriddencreatedon_sets_createdon_on_create(api: httpx.Client) -> None:
    account = _create(
        api, "accounts", {"name": "Migrated", "overriddencreatedon": "2019-03-01T00:00:00Z"}
    )

    body = api.get(f"accounts({account})").json()

    assert body["createdon"] == "2019-03-01T00:00:00Z"
    assert body["overriddencreatedon"] is not None


def test_overriddencreatedon_is_ignored_on_update(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Later"})
    created = api.get(f"accounts({account})").json()["createdon"]

    api.patch(f"accounts({account})", json={"overriddencreatedon": "2010-01-01T00:00:00Z"})

    assert api.get(f"accounts({account})").json()["createdon"] == created


def test_importsequencenumber_is_kept(api: httpx.Client) -> None:
    account = _create(api, "accounts", {"name": "Tagged", "importsequencenumber": 42})

    assert api.get(f"accounts({account})").json()["importsequencenumber"] == 42


def test_an_activity_is_created_open_even_when_statecode_is_sent(api: httpx.Client) -> None:
    task = _create(api, "tasks", {"subject": "Call back", "statecode": 1})

    body = api.get(f"tasks({task})?$select=statecode,statuscode").json()

    assert (body["statecode"], body["statuscode"]) == (0, 2)


def test_an_activity_created_with_a_closed_status_is_0x80048408(api: httpx.Client) -> None:
    response = api.post("tasks", json={"subject": "Done", "statuscode": 6})

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(
        "6 is not a valid status code for state code TaskState.Open"
    )


def test_a_task_is_closed_by_patching_a_valid_state_and_status(api: httpx.Client) -> None:
    task = _create(api, "tasks", {"subject": "History", "actualend": "2020-05-04T13:00:00Z"})

    response = api.patch(f"tasks({task})", json={"statecode": 1, "statuscode": 5})

    assert response.status_code == 204
    body = api.get(f"tasks({task})").json()
    assert (body["statecode"], body["statuscode"]) == (1, 5)
    assert body["actualend"] == "2020-05-04T13:00:00Z"


def test_a_phonecall_closed_with_another_states_status_is_0x80048408(api: httpx.Client) -> None:
    call = _create(api, "phonecalls", {"subject": "Ring"})

    response = api.patch(f"phonecalls({call})", json={"statecode": 1, "statuscode": 3})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048408"


def test_patching_only_statecode_uses_the_states_default_status(api: httpx.Client) -> None:
    call = _create(api, "phonecalls", {"subject": "Ring"})

    api.patch(f"phonecalls({call})", json={"statecode": 1})

    assert api.get(f"phonecalls({call})").json()["statuscode"] == 2


def test_phonecall_parties_are_written_through_the_activity_parties_collection(
    api: httpx.Client,
) -> None:
    contact = _create(api, "contacts", {"lastname": "Callee"})
    user = api.get("systemusers?$filter=internalemailaddress eq 'anna@example.com'").json()
    sender = user["value"][0]["systemuserid"]

    call = _create(
        api,
        "phonecalls",
        {
            "subject": "With parties",
            "phonecall_activity_parties": [
                {
                    "partyid_systemuser@odata.bind": f"/systemusers({sender})",
                    "participationtypemask": 1,
                },
                {"partyid_contact@odata.bind": f"/contacts({contact})", "participationtypemask": 2},
            ],
        },
    )

    parties = api.get("activityparties", params={"$filter": f"_activityid_value eq {call}"}).json()
    masks = {(p["_partyid_value"], p["participationtypemask"]) for p in parties["value"]}
    assert masks == {(sender, 1), (contact, 2)}


def test_an_activity_party_with_an_unknown_mask_is_rejected_with_the_whole_activity(
    api: httpx.Client,
) -> None:
    subject = "Bad party mask"
    response = api.post(
        "emails",
        json={
            "subject": subject,
            "email_activity_parties": [{"addressused": "a@b.c", "participationtypemask": 12}],
        },
    )

    assert response.status_code == 400
    assert api.get("emails", params={"$filter": f"subject eq '{subject}'"}).json()["value"] == []


def test_activities_share_activityid_and_are_listed_as_activitypointers(api: httpx.Client) -> None:
    task = _create(api, "tasks", {"subject": "Pointer task"})
    call = _create(api, "phonecalls", {"subject": "Pointer call"})

    rows = api.get(
        "activitypointers",
        params={"$select": "subject,activitytypecode", "$filter": "startswith(subject,'Pointer')"},
    ).json()["value"]

    kinds = {row["activityid"]: row["activitytypecode"] for row in rows}
    assert kinds[task] == "task"
    assert kinds[call] == "phonecall"


def test_an_activityid_taken_by_another_activity_table_is_a_duplicate(api: httpx.Client) -> None:
    task = _create(api, "tasks", {"subject": "First"})

    response = api.post("phonecalls", json={"activityid": task, "subject": "Second"})

    assert response.status_code == 412


def test_a_note_keeps_its_base64_document(api: httpx.Client) -> None:
    note = _create(
        api,
        "annotations",
        {
            "subject": "Doc",
            "filename": "a.txt",
            "mimetype": "text/plain",
            "documentbody": "aGVsbG8=",
        },
    )

    body = api.get(f"annotations({note})").json()

    assert (body["documentbody"], body["isdocument"], body["filesize"]) == ("aGVsbG8=", True, 5)


def test_a_note_over_the_attachment_size_limit_is_0x80044a02(
    api: httpx.Client, emulator: RunningEmulator
) -> None:
    too_big = "A" * (emulator.config.max_attachment_bytes + 4)

    response = api.post("annotations", json={"subject": "Big", "documentbody": too_big})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80044a02",
        "message": "Attachment file size is too big.",
    }
