"""`crmledger emulator serve` as a user runs it: a subprocess, found by the URLs it prints."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import msal
import pytest


def _serve(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "emulator", "serve", *args],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRMLEDGER_")}
        | {"COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A served emulator (TLS, limits off, one extra client, one file database); its printout."""
    process = _serve(
        "--port", "0", "--tls", "--limits", "off", "--db", str(tmp_path / "dv.db"),
        "--client", "migrator:s3cret-migrator", "--user", "lea@example.com:Lea",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        printed: dict[str, str] = {}
        while "Certificate" not in printed:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            name, _, value = line.partition(":")
            printed[name.strip()] = value.strip()
        yield printed
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_prints_urls_that_msal_and_httpx_can_use(served: dict[str, str]) -> None:
    trust = ssl.create_default_context(cafile=served["Certificate"])
    with httpx.Client(verify=trust) as http:
        token = msal.ConfidentialClientApplication(
            "migrator",
            client_credential="s3cret-migrator",
            authority=served["Authority"],
            instance_discovery=False,
            http_client=http,
        ).acquire_token_for_client(scopes=[served["Web API"].split("/api/")[0] + "/.default"])
        assert "access_token" in token, token
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        users = http.get(
            served["Web API"] + "systemusers?$select=internalemailaddress", headers=headers
        )
        anonymous = http.get(served["Web API"] + "accounts")

    assert served["Token endpoint"].endswith("/oauth2/v2.0/token")
    assert users.status_code == 200
    assert "lea@example.com" in {u["internalemailaddress"] for u in users.json()["value"]}
    assert anonymous.status_code == 401
    assert "s3cret-migrator" not in " ".join(served.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "bogus:1"], "unknown kind 'bogus'"),
        (["--client", "no-secret"], "expected ID:SECRET"),
        (["--limits", "maybe"], "--limits must be"),
    ],
)
def test_bad_options_are_clear_errors_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    process = _serve(*args, cwd=tmp_path)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_a_bad_users_file_names_file_row_and_column(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("internalemailaddress,fullname\nok@example.com,Ok\nnot-an-address,Bad\n")

    process = _serve("--users-file", str(users), cwd=tmp_path)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert "row 3, column internalemailaddress" in " ".join(err.split())
    assert "Traceback" not in err
