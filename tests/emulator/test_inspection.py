"""The inspection API (not Dataverse): table counts, a snapshot digest and request statistics."""

from __future__ import annotations

import uuid

import httpx

from dataverse_emulator.config import DEFAULT_CLIENT_ID
from dataverse_emulator.server import RunningEmulator
from tests.emulator.conftest import new_key


def _inspect(emulator: RunningEmulator, api: httpx.Client, what: str) -> dict[str, object]:
    response = api.get(emulator.root_url.rstrip("/") + f"/_emulator/{what}")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def test_counts_follow_creates_and_deletes(emulator: RunningEmulator, api: httpx.Client) -> None:
    before = _inspect(emulator, api, "counts")["account"]
    created = api.post("accounts", json={"name": new_key()})
    during = _inspect(emulator, api, "counts")["account"]
    api.delete(created.headers["OData-EntityId"])
    after = _inspect(emulator, api, "counts")["account"]

    assert (during, after) == (int(str(before)) + 1, before)
    assert _inspect(emulator, api, "counts")["transactioncurrency"] == 1


def test_the_digest_changes_with_a_write_and_only_then(
    emulator: RunningEmulator, api: httpx.Client
) -> None:
    first = _inspect(emulator, api, "digest")
    again = _inspect(emulator, api, "digest")
    api.get("accounts?$top=1")
    after_read = _inspect(emulator, api, "digest")
    api.post("contacts", json={"lastname": new_key()})
    after_write = _inspect(emulator, api, "digest")

    assert first == again == after_read
    assert after_write != first


def test_stats_count_each_clients_requests(emulator: RunningEmulator, api: httpx.Client) -> None:
    before = _inspect(emulator, api, "stats")[DEFAULT_CLIENT_ID]
    for _ in range(3):
        api.get("accounts?$top=1")
    after = _inspect(emulator, api, "stats")[DEFAULT_CLIENT_ID]

    assert isinstance(before, dict)
    assert isinstance(after, dict)
    assert after["requests"] - before["requests"] == 3
    assert after["execution_ms"] > before["execution_ms"]
    assert after["throttled"] == 0


def test_the_content_digest_ignores_when_rows_were_written(
    emulator: RunningEmulator, api: httpx.Client
) -> None:
    schedule_id = str(uuid.uuid4())
    api.post("uomschedules", json={"uomscheduleid": schedule_id, "name": new_key()})
    account = api.post("accounts", json={"name": new_key()}).headers["OData-EntityId"]
    before, content = (
        _inspect(emulator, api, "digest"),
        _inspect(emulator, api, "digest?content=true"),
    )
    api.patch(account, json={"name": new_key()})
    api.patch(account, json={"name": "the same again"})
    once = _inspect(emulator, api, "digest?content=true")
    api.patch(account, json={"name": "the same again"})  # a retried write: a new version only

    assert _inspect(emulator, api, "digest") != before
    assert once != content
    assert _inspect(emulator, api, "digest?content=true") == once


def test_the_base_unit_of_a_unit_group_has_an_id_derived_from_the_group(
    emulator: RunningEmulator, api: httpx.Client
) -> None:
    schedule_id = str(uuid.uuid4())
    api.post("uomschedules", json={"uomscheduleid": schedule_id, "name": new_key()})

    units = api.get(f"uoms?$filter=_uomscheduleid_value eq {schedule_id}&$select=uomid").json()
    expected = uuid.uuid5(
        uuid.UUID("7d3b1c5e-4a8e-4f0b-9a61-3c1e2f4d5a6b"), f"baseuom:{schedule_id}"
    )

    assert [row["uomid"] for row in units["value"]] == [str(expected)]
