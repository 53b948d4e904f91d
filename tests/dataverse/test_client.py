"""The Dataverse client against the emulator: real msal tokens, typed errors, bounded retries."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from consumers.dataverse.auth import CertificateCredential, MsalTokenProvider
from consumers.dataverse.client import DataverseClient, RetryPolicy, client_from_settings
from consumers.dataverse.errors import (
    DataverseAuthError,
    DataverseConfigError,
    DataverseError,
    DataverseUnreachableError,
)
from dataverse_emulator.config import DEFAULT_CLIENT_ID, ClientCertificate
from dataverse_emulator.server import RunningEmulator
from ledger.settings import Settings
from tests.dataverse.conftest import StartEmulator, settings_for

WRONG_SECRET = "not-the-secret-7f3a9c"


def test_a_token_from_msal_opens_the_web_api(client: DataverseClient) -> None:
    accounts = client.get("accounts", {"$select": "name", "$top": "1"})

    assert "value" in accounts
    assert client.stats.statuses == {200: 1}


def test_a_token_is_reused_until_it_nears_expiry(emulator: RunningEmulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path)
    with httpx.Client(verify=_trust(emulator)) as http:
        tokens = _provider(settings, http)

        assert tokens.token() == tokens.token()


def test_an_expiring_token_is_replaced_before_a_request(
    start: StartEmulator, tmp_path: Path
) -> None:
    # msal renews a token that has less than five minutes left; this one lives two seconds.
    with start(token_lifetime_s=2) as emulator, httpx.Client(verify=_trust(emulator)) as http:
        tokens = _provider(settings_for(emulator, tmp_path), http)
        first = tokens.token()
        time.sleep(2.5)
        stale = http.get(
            emulator.base_url + "accounts", headers={"Authorization": f"Bearer {first}"}
        )

        client = DataverseClient(emulator.root_url, tokens, http=http)
        accounts = client.get("accounts", {"$top": "1"})
        renewed = tokens.token()

    assert stale.status_code == 401
    assert renewed != first
    assert "value" in accounts


def test_a_token_the_service_refuses_is_dropped_and_acquired_again(
    start: StartEmulator, tmp_path: Path
) -> None:
    with start() as first_run:
        port, cert = first_run.port, first_run.cert_path
        settings = settings_for(first_run, tmp_path)
        http = httpx.Client(verify=_trust(first_run))
        tokens = _provider(settings, http)
        client = DataverseClient(first_run.root_url, tokens, http=http, owns_http=True)
        client.get("accounts", {"$top": "1"})
    # The restarted emulator signs with a new key: msal's cached token is no longer accepted.
    with start(port=port) as second_run, client:
        assert second_run.cert_path == cert
        accounts = client.get("accounts", {"$top": "1"})

    assert "value" in accounts
    assert client.stats.statuses.get(401) == 1


def test_a_missing_row_is_a_typed_error_with_status_code_and_message(
    client: DataverseClient,
) -> None:
    missing = uuid.uuid4()

    with pytest.raises(DataverseError) as raised:
        client.get(f"accounts({missing})")

    error = raised.value
    assert (error.status, error.code) == (404, "0x80040217")
    assert str(missing) in error.message
    assert error.retry_after is None
    assert not error.transient
    assert "404 0x80040217" in str(error)


def test_a_too_long_value_is_a_typed_validation_error(client: DataverseClient) -> None:
    with pytest.raises(DataverseError) as raised:
        client.post("accounts", {"name": "x" * 200})

    assert (raised.value.status, raised.value.code) == (400, "0x80044331")
    assert "maximum allowed length of '160'" in raised.value.message
    assert (raised.value.method, raised.value.path) == ("POST", "accounts")


def test_a_created_row_is_named_by_its_entity_id(client: DataverseClient) -> None:
    created = client.post("accounts", {"name": "Müller GmbH"})
    represented = client.post("accounts", {"name": "Schmidt KG"}, return_representation=True)

    assert created["@odata.id"].startswith(client.base_url + "accounts(")
    assert represented["name"] == "Schmidt KG"


def test_throttling_is_retried_after_the_retry_after_interval(
    start: StartEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Half the requests are throttled with Retry-After: 1 (the seed makes the draws repeat).
    with start(faults="429:0.4", fault_seed=1) as emulator:
        settings = settings_for(emulator, tmp_path)
        with client_from_settings(settings, retry=RetryPolicy(max_retries=20)) as client:
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="crmledger.dataverse"):
                for _ in range(4):
                    client.get("accounts", {"$top": "1"})
            elapsed = time.monotonic() - started

    throttled = client.stats.throttled
    assert throttled >= 1
    assert client.stats.statuses[200] == 4
    assert elapsed >= throttled * 1.0
    waits = [r for r in caplog.records if "Retry-After 1 s" in r.getMessage()]
    assert len(waits) == throttled
    assert all(r.getMessage().count("retry") == 1 for r in waits)


def test_gateway_errors_timeouts_and_dropped_connections_are_retried(
    start: StartEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = "502:0.15,503:0.15,504:0.1,reset:0.1,timeout:0.05"
    retry = RetryPolicy(max_retries=20, base_delay_s=0.01, max_delay_s=0.05)
    with start(faults=faults, fault_seed=3, fault_timeout_s=5.0) as emulator:
        settings = settings_for(emulator, tmp_path)
        with (
            client_from_settings(settings, retry=retry, timeout_s=1.0) as client,
            caplog.at_level(logging.WARNING, logger="crmledger.dataverse"),
        ):
            for _ in range(10):
                client.get("accounts", {"$top": "1"})

    assert client.stats.statuses[200] == 10
    assert client.stats.retries >= 3
    assert client.stats.throttled == 0
    for kind in ("502", "503", "504", "ReadTimeout", "RemoteProtocolError"):
        assert kind in caplog.text, kind


def test_retries_are_bounded(start: StartEmulator, tmp_path: Path) -> None:
    retry = RetryPolicy(max_retries=2, base_delay_s=0.01, max_delay_s=0.02)
    with (
        start(faults="503:1.0") as emulator,
        client_from_settings(settings_for(emulator, tmp_path), retry=retry) as client,
        pytest.raises(DataverseError) as raised,
    ):
        client.get("accounts")

    assert raised.value.status == 503
    assert raised.value.transient
    assert client.stats.requests == 3


def test_retry_after_is_waited_in_full_with_bounded_jitter() -> None:
    import random

    policy = RetryPolicy(jitter_s=0.5)
    waits = [policy.delay(1, 4.0, random.Random(seed)) for seed in range(50)]
    backoffs = [policy.delay(3, None, random.Random(seed)) for seed in range(50)]

    assert all(4.0 <= wait <= 4.4 for wait in waits)
    assert len(set(waits)) > 1
    assert all(1.0 <= wait <= 2.0 for wait in backoffs)


def test_a_wrong_secret_is_an_auth_error_that_never_shows_the_secret(
    emulator: RunningEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(emulator, tmp_path, client_secret=SecretStr(WRONG_SECRET))

    with (
        caplog.at_level(logging.DEBUG),
        client_from_settings(settings) as client,
        pytest.raises(DataverseAuthError) as raised,
    ):
        client.get("accounts")

    assert "invalid_client" in str(raised.value)
    assert "AADSTS7000215" in str(raised.value)
    assert WRONG_SECRET not in str(raised.value)
    assert WRONG_SECRET not in repr(raised.value.__cause__)
    assert WRONG_SECRET not in caplog.text


def test_an_unknown_client_is_an_auth_error(emulator: RunningEmulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, client_id="someone-else")

    with client_from_settings(settings) as client, pytest.raises(DataverseAuthError) as raised:
        client.get("accounts")

    assert "unauthorized_client" in str(raised.value)


def test_an_unreachable_environment_is_reported_as_such(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    closed = "https://127.0.0.1:9"
    settings = settings_for(emulator, tmp_path, authority_url=f"{closed}/tenant")

    with client_from_settings(settings) as client, pytest.raises(DataverseUnreachableError):
        client.get("accounts")


def test_missing_settings_are_named(tmp_path: Path) -> None:
    settings = Settings(log_url=f"sqlite:///{tmp_path / 'l.db'}", dataverse_url=None)

    with pytest.raises(DataverseConfigError) as raised:
        client_from_settings(settings)

    for name in ("client_id", "tenant_id", "client_secret"):
        assert name in str(raised.value)


def test_a_certificate_credential_gives_msal_the_key_and_the_sha1_thumbprint(
    tmp_path: Path,
) -> None:
    pem, certificate = _certificate_pem(b"pem-password-1")
    path = tmp_path / "app.pem"
    path.write_bytes(pem)

    credential = CertificateCredential(path, SecretStr("pem-password-1")).for_msal()

    assert credential["thumbprint"] == certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert "ENCRYPTED PRIVATE KEY" in credential["private_key"]
    assert credential["passphrase"] == "pem-password-1"


def test_a_certificate_file_without_a_certificate_is_refused_by_name(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key-only.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(DataverseAuthError, match=r"key-only\.pem: no PEM certificate"):
        CertificateCredential(path).for_msal()


def test_a_certificate_credential_signs_in_and_opens_the_web_api(
    start: StartEmulator, tmp_path: Path
) -> None:
    # msal signs a client assertion with the key; the emulator checks it against the certificate.
    pem, _ = _certificate_pem(b"pem-password-2")
    path = tmp_path / "app.pem"
    path.write_bytes(pem)

    with start(clients={DEFAULT_CLIENT_ID: ClientCertificate.from_pem(pem)}) as emulator:
        settings = settings_for(
            emulator,
            tmp_path,
            client_secret=None,
            certificate_path=path,
            certificate_password=SecretStr("pem-password-2"),
        )
        with client_from_settings(settings) as client:
            accounts = client.get("accounts", {"$top": "1"})

    assert "value" in accounts
    assert client.stats.statuses == {200: 1}


def test_an_unregistered_certificate_is_an_auth_error_naming_neither_key_nor_password(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    # The shared emulator knows this client by its secret only: no certificate can match.
    pem, _ = _certificate_pem(b"pem-password-3")
    path = tmp_path / "app.pem"
    path.write_bytes(pem)
    settings = settings_for(
        emulator,
        tmp_path,
        client_secret=None,
        certificate_path=path,
        certificate_password=SecretStr("pem-password-3"),
    )

    with client_from_settings(settings) as client, pytest.raises(DataverseAuthError) as raised:
        client.get("accounts")

    assert "AADSTS700027" in str(raised.value)
    assert "pem-password-3" not in str(raised.value)
    assert "PRIVATE KEY" not in str(raised.value)


def _trust(emulator: RunningEmulator) -> ssl.SSLContext:
    assert emulator.cert_path is not None
    return ssl.create_default_context(cafile=emulator.cert_path)


def _provider(settings: Settings, http: httpx.Client) -> MsalTokenProvider:
    assert settings.dataverse_url is not None
    assert settings.authority_url is not None
    return MsalTokenProvider(
        client_id=DEFAULT_CLIENT_ID,
        authority=settings.authority_url,
        dataverse_url=settings.dataverse_url,
        secret=settings.client_secret,
        http_client=http,
    )


def _certificate_pem(password: bytes) -> tuple[bytes, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmledger-test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM), certificate
