"""Reference section 5: `$batch` — the multipart envelope, changesets, Content-IDs, errors.

The envelope tests parse and write bodies without a server; the others run over real HTTP against
the session emulator and read its responses with the standard library's MIME parser.
"""

from __future__ import annotations

import email
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any

import httpx
import pytest

from dataverse_emulator.app import Emulator
from dataverse_emulator.batch import (
    ChangeSet,
    ChangeSetResponse,
    InnerRequest,
    InnerResponse,
    execute_batch,
    parse_batch,
    serialize_batch,
)
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.records import ApiRequest
from tests.emulator.conftest import new_key

API = "https://org.crm.dynamics.com/api/data/v9.2"
BATCH_TYPE = 'multipart/mixed; boundary="batch_AAA123"'


def crlf(text: str) -> bytes:
    """The reference example, written with LF in the source, as the CRLF bytes a client sends."""
    return text.replace("\n", "\r\n").encode()


DOCUMENTED_EXAMPLE = f"""--batch_AAA123
Content-Type: multipart/mixed; boundary="changeset_BBB456"

--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST {API}/accounts HTTP/1.1
Content-Type: application/json; type=entry

{{"name":"Contoso"}}
--changeset_BBB456
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST {API}/contacts HTTP/1.1
Content-Type: application/json; type=entry

{{"lastname":"Smith","parentcustomerid_account@odata.bind":"$1"}}
--changeset_BBB456--

--batch_AAA123
Content-Type: application/http
Content-Transfer-Encoding: binary

GET {API}/accounts?$select=name&$top=2 HTTP/1.1


--batch_AAA123--
"""


def standalone(method: str, url: str, body: str = "") -> str:
    """One standalone part of a batch body (LF line endings, converted by crlf)."""
    return (
        "--batch_AAA123\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
        f"{method} {url} HTTP/1.1\nContent-Type: application/json; type=entry\n\n{body}\n"
    )


def test_documented_example_parses_into_a_changeset_and_a_standalone_get() -> None:
    parts = parse_batch(BATCH_TYPE, crlf(DOCUMENTED_EXAMPLE))

    assert len(parts) == 2
    changeset, get = parts
    assert isinstance(changeset, ChangeSet)
    assert [(r.method, r.url, r.content_id) for r in changeset.requests] == [
        ("POST", f"{API}/accounts", "1"),
        ("POST", f"{API}/contacts", "2"),
    ]
    assert changeset.requests[0].headers["content-type"] == "application/json; type=entry"
    assert changeset.requests[0].body == b'{"name":"Contoso"}'
    assert changeset.requests[1].body.endswith(b'"$1"}')
    assert get == InnerRequest("GET", f"{API}/accounts?$select=name&$top=2", {}, b"", None)


def test_relative_urls_and_an_unquoted_boundary_are_accepted() -> None:
    body = crlf(standalone("PATCH", "accounts(00000000-0000-0000-0000-000000000001)", "{}"))
    body += b"--batch_AAA123--"

    (part,) = parse_batch("multipart/mixed;boundary=batch_AAA123", body)

    assert isinstance(part, InnerRequest)
    assert (part.method, part.url, part.body) == (
        "PATCH",
        "accounts(00000000-0000-0000-0000-000000000001)",
        b"{}",
    )


def test_bare_lf_line_endings_are_a_payload_error() -> None:
    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, DOCUMENTED_EXAMPLE.encode())

    assert (caught.value.status, caught.value.code) == (400, "0x80048d19")
    assert "Stream was not readable" in caught.value.message


def test_a_body_without_closing_delimiter_is_a_payload_error() -> None:
    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(standalone("GET", "accounts")))

    assert (caught.value.status, caught.value.code) == (400, "0x80048d19")


def test_a_content_type_that_is_not_multipart_is_a_payload_error() -> None:
    with pytest.raises(DataverseError) as caught:
        parse_batch("application/json", b"{}")

    assert (caught.value.status, caught.value.code) == (400, "0x80048d19")


def test_get_inside_a_changeset_is_rejected() -> None:
    body = DOCUMENTED_EXAMPLE.replace(f"POST {API}/contacts", f"GET {API}/contacts")

    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(body))

    assert caught.value.status == 400
    assert "'GET' is not valid in a changeset" in caught.value.message


def test_a_changeset_inside_a_changeset_is_rejected() -> None:
    nested = (
        "--batch_AAA123\nContent-Type: multipart/mixed; boundary=changeset_1\n\n"
        "--changeset_1\nContent-Type: multipart/mixed; boundary=changeset_2\n\n"
        "--changeset_2--\n--changeset_1--\n--batch_AAA123--\n"
    )

    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(nested))

    assert "can't be nested" in caught.value.message


def test_one_thousand_requests_are_accepted_and_one_more_is_rejected() -> None:
    part = standalone("POST", "accounts", '{"name":"A"}')

    parts = parse_batch(BATCH_TYPE, crlf(part * 1000 + "--batch_AAA123--\n"))
    assert len(parts) == 1000

    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(part * 1001 + "--batch_AAA123--\n"))
    assert (caught.value.status, caught.value.code) == (400, "0x80048d19")
    assert "at most 1000 requests" in caught.value.message


def test_changeset_contents_count_toward_the_limit() -> None:
    request = (
        "--cs\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
        'POST accounts HTTP/1.1\nContent-Type: application/json\n\n{"name":"A"}\n'
    )
    changeset = (
        "--batch_AAA123\nContent-Type: multipart/mixed; boundary=cs\n\n"
        + request * 600
        + "--cs--\n"
    )

    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(changeset * 2 + "--batch_AAA123--\n"))

    assert "1200 requests" in caught.value.message


def test_a_repeated_content_id_is_rejected() -> None:
    body = DOCUMENTED_EXAMPLE.replace("Content-ID: 2", "Content-ID: 1")

    with pytest.raises(DataverseError) as caught:
        parse_batch(BATCH_TYPE, crlf(body))

    assert "Content-ID '1'" in caught.value.message


def test_response_is_written_as_the_reference_shows() -> None:
    created = f"{API}/accounts(7eb682f1-ca75-e511-80d4-00155d2a68d1)"
    content_type, body = serialize_batch(
        [
            ChangeSetResponse(
                (
                    InnerResponse(
                        204,
                        (
                            ("OData-Version", "4.0"),
                            ("Location", created),
                            ("OData-EntityId", created),
                        ),
                        content_id="1",
                    ),
                )
            ),
            InnerResponse(
                200,
                (
                    ("Content-Type", "application/json; odata.metadata=minimal"),
                    ("OData-Version", "4.0"),
                ),
                b'{"value":[]}',
            ),
        ],
        boundary="batchresponse_c1bd",
    )

    assert content_type == "multipart/mixed; boundary=batchresponse_c1bd"
    text = body.decode()
    assert "\n" not in text.replace("\r\n", "")
    changeset_boundary = text.split("boundary=")[1].split("\r\n")[0]
    assert changeset_boundary.startswith("changesetresponse_")
    assert text == (
        "--batchresponse_c1bd\r\n"
        f"Content-Type: multipart/mixed; boundary={changeset_boundary}\r\n"
        "\r\n"
        f"--{changeset_boundary}\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n"
        "\r\n"
        "HTTP/1.1 204 No Content\r\n"
        "OData-Version: 4.0\r\n"
        f"Location: {created}\r\n"
        f"OData-EntityId: {created}\r\n"
        "\r\n"
        "\r\n"
        f"--{changeset_boundary}--\r\n"
        "--batchresponse_c1bd\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json; odata.metadata=minimal\r\n"
        "OData-Version: 4.0\r\n"
        "\r\n"
        '{"value":[]}\r\n'
        "--batchresponse_c1bd--\r\n"
    )


def test_a_written_response_reads_back_with_a_mime_parser() -> None:
    """A standard MIME reader (the stdlib's) must find the same parts we wrote."""
    content_type, body = serialize_batch(
        [InnerResponse(204, (("OData-Version", "4.0"),)), InnerResponse(200, (), b"{}")]
    )
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)

    payloads = [part.get_payload() for part in _parts(message)]
    assert payloads == [
        "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n{}",
    ]


# ----------------------------------------------------------------------------------------------
# Over HTTP


@dataclass
class Item:
    """One inner response of a batch response, as a MIME reader sees it."""

    status: int
    headers: dict[str, str]
    body: Any
    content_id: str | None
    changeset: int | None  # position of its changeset in the response, None if standalone


def part(
    method: str, url: str, body: dict[str, Any] | None = None, content_id: int | None = None
) -> str:
    """One application/http part (without its boundary line), CRLF line endings."""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1", "Content-Type: application/json; type=entry", ""]
    lines.append(json.dumps(body) if body is not None else "")
    return "\r\n".join(lines)


def changeset(*parts: str, boundary: str = "changeset_1") -> str:
    """A changeset part holding `parts`."""
    inner = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts)
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}--{boundary}--"


def send(api: httpx.Client, *parts: str, continue_on_error: bool = False) -> httpx.Response:
    """POST a batch of `parts` to `$batch`."""
    body = "".join(f"--batch_1\r\n{p}\r\n" for p in parts) + "--batch_1--\r\n"
    headers = {"Content-Type": "multipart/mixed; boundary=batch_1"}
    if continue_on_error:
        headers["Prefer"] = "odata.continue-on-error"
    return api.post("$batch", content=body.encode(), headers=headers)


def read(response: httpx.Response) -> list[Item]:
    """The inner responses of a batch response, in order, changesets flattened."""
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(raw + response.content)
    items: list[Item] = []
    for index, top in enumerate(_parts(message)):
        if top.is_multipart():
            assert (top.get_boundary() or "").startswith("changesetresponse_")
            items += [_item(inner, index) for inner in _parts(top)]
        else:
            items.append(_item(top, None))
    return items


def _parts(message: Message) -> list[Message]:
    parts = message.get_payload()
    assert isinstance(parts, list)
    return [part for part in parts if isinstance(part, Message)]


def _item(mime: Message, changeset_index: int | None) -> Item:
    assert mime.get_content_type() == "application/http"
    assert mime["Content-Transfer-Encoding"] == "binary"
    head, _, body = str(mime.get_payload()).partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    parsed = json.loads(body) if body.strip() else None
    return Item(int(status_line.split()[1]), headers, parsed, mime["Content-ID"], changeset_index)


def entity(item: Item) -> str:
    """The GUID in an inner create's OData-EntityId."""
    return item.headers["odata-entityid"].rsplit("(", 1)[1].rstrip(")")


def test_documented_example_creates_account_and_contact_in_a_changeset(
    api: httpx.Client,
) -> None:
    name = new_key()
    response = send(
        api,
        changeset(
            part("POST", f"{api.base_url}accounts", {"name": name}, content_id=1),
            part(
                "POST",
                "contacts",
                {"lastname": "Smith", "parentcustomerid_account@odata.bind": "$1"},
                content_id=2,
            ),
        ),
        part("GET", f"accounts?$select=name&$filter=name eq '{name}'"),
    )

    assert response.status_code == 200, response.text
    account, contact, query = read(response)
    assert (account.status, account.content_id, account.changeset) == (204, "1", 0)
    assert (contact.status, contact.content_id, contact.changeset) == (204, "2", 0)
    assert account.headers["odata-version"] == "4.0"
    assert account.headers["location"] == account.headers["odata-entityid"]
    assert (query.status, query.changeset, query.content_id) == (200, None, None)
    assert query.body["value"][0]["accountid"] == entity(account)
    stored = api.get(f"contacts({entity(contact)})?$select=_parentcustomerid_value").json()
    assert stored["_parentcustomerid_value"] == entity(account)


def test_content_id_reference_in_a_url_closes_the_activity_it_created(api: httpx.Client) -> None:
    response = send(
        api,
        changeset(
            part("POST", "tasks", {"subject": "Imported call"}, content_id=1),
            part("PATCH", "$1", {"statecode": 1, "statuscode": 5}, content_id=2),
        ),
    )

    assert response.status_code == 200, response.text
    created, closed = read(response)
    assert (created.status, closed.status) == (204, 204)
    task = api.get(f"tasks({entity(created)})?$select=statecode,statuscode").json()
    assert (task["statecode"], task["statuscode"]) == (1, 5)


def test_requests_outside_changesets_run_in_order(api: httpx.Client) -> None:
    name = new_key()
    response = send(
        api,
        part("POST", "accounts", {"name": name}),
        part("GET", f"accounts?$select=name&$filter=name eq '{name}'"),
    )

    created, query = read(response)
    assert [row["accountid"] for row in query.body["value"]] == [entity(created)]


def test_first_failure_stops_the_batch_with_400_holding_only_that_failure(
    api: httpx.Client,
) -> None:
    first, third = new_key(), new_key()
    response = send(
        api,
        part("POST", "tasks", {"subject": first}),
        part("POST", "tasks", {"subject": "x" * 201}),
        part("POST", "tasks", {"subject": third}),
    )

    assert response.status_code == 400
    (failure,) = read(response)
    assert failure.status == 400
    assert failure.body == {
        "error": {
            "code": "0x80044331",
            "message": "A validation error occurred.  The length of the 'subject' attribute of "
            "the 'task' entity exceeded the maximum allowed length of '200'.",
        }
    }
    assert _count(api, "tasks", "subject", first) == 1  # earlier standalone work stays
    assert _count(api, "tasks", "subject", third) == 0  # later requests never ran


def test_continue_on_error_runs_every_request_and_answers_200(api: httpx.Client) -> None:
    third = new_key()
    response = send(
        api,
        part("POST", "tasks", {"subject": new_key()}),
        part("POST", "tasks", {"subject": "x" * 201}),
        part("POST", "tasks", {"subject": third}),
        continue_on_error=True,
    )

    assert response.status_code == 200
    assert response.headers["preference-applied"] == "odata.continue-on-error"
    assert [item.status for item in read(response)] == [204, 400, 204]
    assert _count(api, "tasks", "subject", third) == 1


def test_a_failing_changeset_rolls_back_every_request_in_it(api: httpx.Client) -> None:
    name = new_key()
    response = send(
        api,
        changeset(
            part("POST", "accounts", {"name": name}, content_id=1),
            part("POST", "accounts", {"name": "x" * 161}, content_id=2),
        ),
    )

    assert response.status_code == 400
    (failure,) = read(response)
    assert (failure.status, failure.content_id, failure.changeset) == (400, "2", None)
    assert failure.body["error"]["code"] == "0x80044331"
    assert _count(api, "accounts", "name", name) == 0


def test_under_continue_on_error_a_failed_changeset_is_one_error_and_later_requests_run(
    api: httpx.Client,
) -> None:
    rolled_back, after = new_key(), new_key()
    response = send(
        api,
        changeset(
            part("POST", "accounts", {"name": rolled_back}, content_id=1),
            part("POST", "accounts", {"name": "x" * 161}, content_id=2),
            part("POST", "accounts", {"name": new_key()}, content_id=3),
        ),
        part("POST", "accounts", {"name": after}),
        continue_on_error=True,
    )

    assert response.status_code == 200
    failure, later = read(response)
    assert (failure.status, failure.content_id, failure.changeset) == (400, "2", None)
    assert later.status == 204
    assert _count(api, "accounts", "name", rolled_back) == 0
    assert _count(api, "accounts", "name", after) == 1


def test_content_id_reference_outside_a_changeset_does_not_exist(api: httpx.Client) -> None:
    response = send(
        api,
        part("POST", "accounts", {"name": new_key()}, content_id=1),
        part("POST", "contacts", {"lastname": "S", "parentcustomerid_account@odata.bind": "$1"}),
    )

    assert response.status_code == 400
    (failure,) = read(response)
    assert failure.body["error"]["message"] == (
        "Content-ID Reference: '$1' does not exist in the batch context."
    )


def test_content_id_of_another_changeset_does_not_exist(api: httpx.Client) -> None:
    response = send(
        api,
        changeset(part("POST", "accounts", {"name": new_key()}, content_id=1)),
        changeset(part("PATCH", "$1", {"name": new_key()}, content_id=2), boundary="changeset_2"),
    )

    assert response.status_code == 400
    (failure,) = read(response)
    assert "'$1' does not exist in the batch context" in failure.body["error"]["message"]


def test_a_reference_to_a_later_content_id_does_not_exist(api: httpx.Client) -> None:
    name = new_key()
    response = send(
        api,
        changeset(
            part(
                "POST",
                "contacts",
                {"lastname": "S", "parentcustomerid_account@odata.bind": "$2"},
                content_id=1,
            ),
            part("POST", "accounts", {"name": name}, content_id=2),
        ),
    )

    assert response.status_code == 400
    assert _count(api, "accounts", "name", name) == 0


def test_a_batch_of_1000_requests_runs_them_all(api: httpx.Client) -> None:
    name = new_key()
    response = send(api, *[part("POST", "accounts", {"name": name})] * 1000)

    assert response.status_code == 200
    assert len(read(response)) == 1000
    assert _count(api, "accounts", "name", name) == 1000


def test_a_batch_of_1001_requests_is_rejected_before_anything_runs(api: httpx.Client) -> None:
    name = new_key()
    response = send(api, *[part("POST", "accounts", {"name": name})] * 1001)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"
    assert _count(api, "accounts", "name", name) == 0


def test_bare_lf_line_endings_are_rejected_over_http(api: httpx.Client) -> None:
    body = f"--batch_1\r\n{part('GET', 'accounts')}\r\n--batch_1--\r\n"
    response = api.post(
        "$batch",
        content=body.replace("\r\n", "\n").encode(),
        headers={"Content-Type": "multipart/mixed; boundary=batch_1"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"


def test_get_inside_a_changeset_is_rejected_over_http(api: httpx.Client) -> None:
    response = send(api, changeset(part("GET", "accounts")))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"


def test_batch_only_accepts_post(api: httpx.Client) -> None:
    response = api.get("$batch")

    assert response.status_code == 405


class _Ticket:
    def __init__(self) -> None:
        self.requests = 0

    def charge(self, requests: int = 0, records: int = 0) -> None:
        self.requests += requests


def test_every_inner_request_is_charged_as_a_request() -> None:
    emulator = Emulator.build(EmulatorConfig(limits_enabled=False))
    ticket = _Ticket()
    ctx = emulator.records.context_for("crmledger-emulator", base_url=API + "/", ticket=ticket)
    body = crlf(
        standalone("POST", "accounts", '{"name":"A"}') * 2
        + standalone("GET", "accounts?$top=1")
        + "--batch_AAA123--\n"
    )

    reply = execute_batch(
        emulator.web_api,
        ApiRequest.parse("POST", f"{API}/$batch", {"content-type": BATCH_TYPE}, body),
        ctx,
    )

    assert reply.status == 200
    assert ticket.requests == 3


def _count(api: httpx.Client, entity_set: str, column: str, value: str) -> int:
    response = api.get(entity_set, params={"$filter": f"{column} eq '{value}'", "$count": "true"})
    assert response.status_code == 200, response.text
    return int(response.json()["@odata.count"])
