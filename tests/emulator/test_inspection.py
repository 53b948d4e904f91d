"""The inspection API (not Dataverse): table counts, a snapshot digest and request statistics."""

from __future__ import annotations

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
