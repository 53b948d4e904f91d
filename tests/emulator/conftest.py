"""A running emulator for the conformance tests, and an httpx client holding a real msal token.

One emulator serves the whole session over https (msal refuses plain-http authorities), with limits
off and an in-memory database. Tests create their own rows with fresh keys, so they don't collide.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import httpx
import msal
import pytest

from dataverse_emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from dataverse_emulator.server import RunningEmulator, start_emulator

DISABLED_USER = "gone@example.com"


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """An emulator with limits off, TLS on, and one disabled user seeded."""
    config = EmulatorConfig(
        limits_enabled=False,
        tls=True,
        seed_users=(("anna@example.com", "Anna Active", False), (DISABLED_USER, "Gone User", True)),
    )
    with start_emulator(config) as running:
        yield running


@pytest.fixture(scope="session")
def token(emulator: RunningEmulator) -> str:
    """An access token obtained from the emulator by the real msal library."""
    assert emulator.cert_path is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=emulator.cert_path)) as http:
        app = msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=emulator.authority,
            instance_discovery=False,  # msal would otherwise ask login.microsoftonline.com
            http_client=http,
        )
        result = app.acquire_token_for_client(
            scopes=[emulator.base_url.split("/api/")[0] + "/.default"]
        )
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture(scope="session")
def api(emulator: RunningEmulator, token: str) -> Iterator[httpx.Client]:
    """An httpx client for the Web API root, with the bearer token and the OData headers."""
    assert emulator.cert_path is not None
    with httpx.Client(
        base_url=emulator.base_url,
        verify=ssl.create_default_context(cafile=emulator.cert_path),
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        },
        timeout=30,
    ) as client:
        yield client


def new_key() -> str:
    """A value no other test uses, for names and alternate keys."""
    return uuid.uuid4().hex[:12]


def entity_id(response: httpx.Response) -> str:
    """The GUID at the end of a create's OData-EntityId header."""
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
