"""Reference section 1.3: an app signs in with a certificate instead of a client secret.

The client sends a JWT client assertion signed with the certificate's private key (RS256 with an
``x5t`` header, or PS256 with ``x5t#S256``); the emulator checks it as Entra ID documents it. The
real msal library obtains the tokens, over https with the emulator's generated certificate.

msal gets a ``requests.Session`` here, its own default transport; the Dataverse consumer gives it
its httpx client through an adapter, since msal posts the assertion as bytes, which a bare httpx
client form-encodes as ``b'...'``. Replay protection of assertions is off unless a test opts in,
as Entra documents no replay check.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from consumers.dataverse.auth import CertificateCredential, MsalTokenProvider
from consumers.dataverse.errors import DataverseAuthError
from dataverse_emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ClientCertificate,
    EmulatorConfig,
)
from dataverse_emulator.server import RunningEmulator, start_emulator
from tests.emulator.test_cli_serve import _serve

CERT_CLIENT = "crmledger-cert"
THUMBPRINT_CLIENT = "crmledger-thumbprint"  # registered by thumbprint and public key


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate and its private key, as an app owner would create them."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def generate(cls, name: str = "crmledger test app") -> Certificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def thumbprint(self) -> str:
        """The SHA-1 thumbprint in hex, as the Azure portal shows it."""
        return self.cert.fingerprint(hashes.SHA1()).hex().upper()

    @property
    def public_key_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


APP_CERT = Certificate.generate()
OTHER_APP_CERT = Certificate.generate("crmledger other app")


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """An emulator with one secret client and two certificate clients."""
    config = EmulatorConfig(
        limits_enabled=False,
        tls=True,
        clients={
            DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET,
            CERT_CLIENT: ClientCertificate.from_pem(APP_CERT.cert_pem),
            THUMBPRINT_CLIENT: ClientCertificate.from_public_key(
                OTHER_APP_CERT.thumbprint, OTHER_APP_CERT.public_key_pem
            ),
        },
    )
    with start_emulator(config) as running:
        yield running


@pytest.fixture(scope="module")
def replay_protected() -> Iterator[RunningEmulator]:
    """An emulator that refuses a client assertion's jti a second time (opted in)."""
    config = EmulatorConfig(
        limits_enabled=False,
        tls=True,
        clients={CERT_CLIENT: ClientCertificate.from_pem(APP_CERT.cert_pem)},
        reject_replayed_assertions=True,
    )
    with start_emulator(config) as running:
        yield running


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[requests.Session]:
    """msal's default transport, trusting the emulator's certificate."""
    assert emulator.cert_path is not None
    with _trusting(str(emulator.cert_path)) as session:
        yield session


def _trusting(cafile: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override ``verify``
    session.verify = cafile
    return session


def _scope(emulator: RunningEmulator) -> str:
    return emulator.base_url.split("/api/")[0] + "/.default"


def _acquire(
    emulator: RunningEmulator,
    http: requests.Session,
    credential: dict[str, Any],
    client_id: str = CERT_CLIENT,
) -> dict[str, Any]:
    """What a fresh msal app (empty token cache) gets from the emulator's token endpoint."""
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=emulator.authority,
        instance_discovery=False,  # msal would otherwise ask login.microsoftonline.com
        http_client=http,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[_scope(emulator)])
    return result


def _assertion(
    emulator: RunningEmulator,
    *,
    key: rsa.RSAPrivateKey = APP_CERT.key,
    audience: str | None = None,
    issuer: str = CERT_CLIENT,
    lifetime_s: int = 600,
    issued_ago_s: int = 0,
    jti: str | None = None,
) -> str:
    """A client assertion built by hand with PyJWT, as Microsoft's docs lay it out."""
    now = int(time.time()) - issued_ago_s
    claims = {
        "aud": audience or emulator.token_url,
        "iss": issuer,
        "sub": issuer,
        "jti": jti or str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + lifetime_s,
    }
    x5t = jwt.utils.base64url_encode(APP_CERT.cert.fingerprint(hashes.SHA1())).decode()
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})


def _with_assertion(assertion: str) -> dict[str, Any]:
    # A callable, as msal discourages a static string (it cannot renew one).
    return {"client_assertion": lambda: assertion}


def _refusal(result: dict[str, Any]) -> tuple[str, int]:
    assert "access_token" not in result, result
    return result["error"], result["error_codes"][0]


def test_msal_signs_in_with_the_certificate_thumbprint_and_the_web_api_accepts_the_token(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    result = _acquire(
        emulator, http, {"private_key": APP_CERT.key_pem, "thumbprint": APP_CERT.thumbprint}
    )

    assert result.get("token_type") == "Bearer", result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["appid"] == CERT_CLIENT
    response = http.get(
        emulator.base_url + "/", headers={"Authorization": f"Bearer {result['access_token']}"}
    )
    assert response.status_code == 200


def test_msal_signs_in_with_ps256_and_x5t_s256_when_given_the_public_certificate(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    result = _acquire(
        emulator,
        http,
        {"private_key": APP_CERT.key_pem, "public_certificate": APP_CERT.cert_pem.decode()},
    )

    assert "access_token" in result, result


def test_a_certificate_registered_by_thumbprint_and_public_key_signs_in(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    credential = {"private_key": OTHER_APP_CERT.key_pem, "thumbprint": OTHER_APP_CERT.thumbprint}

    result = _acquire(emulator, http, credential, client_id=THUMBPRINT_CLIENT)

    assert "access_token" in result, result


def test_an_assertion_signed_with_another_key_fails_signature_validation(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    # The registered certificate's thumbprint, but the private key of another certificate.
    credential = {"private_key": OTHER_APP_CERT.key_pem, "thumbprint": APP_CERT.thumbprint}

    result = _acquire(emulator, http, credential)

    assert _refusal(result) == ("invalid_client", 700027)
    assert "signature validation" in result["error_description"]


def test_an_unregistered_certificate_is_a_key_not_found(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    credential = {"private_key": OTHER_APP_CERT.key_pem, "thumbprint": OTHER_APP_CERT.thumbprint}

    result = _acquire(emulator, http, credential)

    assert _refusal(result) == ("invalid_client", 700027)
    assert "is not registered on application" in result["error_description"]


def test_an_expired_assertion_is_not_within_its_valid_time_range(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    expired = _assertion(emulator, issued_ago_s=1200, lifetime_s=600)

    result = _acquire(emulator, http, _with_assertion(expired))

    assert _refusal(result) == ("invalid_client", 700024)


def test_an_assertion_not_yet_valid_is_not_within_its_valid_time_range(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    future = _assertion(emulator, issued_ago_s=-600)

    result = _acquire(emulator, http, _with_assertion(future))

    assert _refusal(result) == ("invalid_client", 700024)


def test_an_assertion_a_little_past_its_expiry_is_within_the_clock_skew(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    just_expired = _assertion(emulator, issued_ago_s=620, lifetime_s=600)

    result = _acquire(emulator, http, _with_assertion(just_expired))

    assert "access_token" in result, result


def test_an_assertion_presented_again_is_accepted_by_default_as_entra_does(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    assertion = _assertion(emulator)
    first = _acquire(emulator, http, _with_assertion(assertion))

    again = _acquire(emulator, http, _with_assertion(assertion))

    assert "access_token" in first, first
    assert "access_token" in again, again


def test_with_replay_protection_a_replayed_assertion_is_refused(
    replay_protected: RunningEmulator,
) -> None:
    assertion = _assertion(replay_protected)
    assert replay_protected.cert_path is not None
    with _trusting(str(replay_protected.cert_path)) as http:
        first = _acquire(replay_protected, http, _with_assertion(assertion))
        replayed = _acquire(replay_protected, http, _with_assertion(assertion))

    assert "access_token" in first, first
    assert _refusal(replayed) == ("invalid_client", 50013)
    assert "already used" in replayed["error_description"]


def test_with_replay_protection_a_new_assertion_with_a_used_jti_is_refused(
    replay_protected: RunningEmulator,
) -> None:
    jti = str(uuid.uuid4())
    assert replay_protected.cert_path is not None
    with _trusting(str(replay_protected.cert_path)) as http:
        first = _acquire(
            replay_protected, http, _with_assertion(_assertion(replay_protected, jti=jti))
        )
        second = _acquire(
            replay_protected, http, _with_assertion(_assertion(replay_protected, jti=jti))
        )

    assert "access_token" in first, first
    assert _refusal(second) == ("invalid_client", 50013)


@pytest.mark.parametrize(
    "audience",
    [
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "{base}/{tenant}/oauth2/authorize",
        "{base}/other-tenant/oauth2/v2.0/token",
    ],
)
def test_an_assertion_for_another_audience_is_an_invalid_jwt(
    emulator: RunningEmulator, http: requests.Session, audience: str
) -> None:
    base = emulator.authority.rsplit("/", 1)[0]
    aud = audience.format(base=base, tenant=emulator.config.tenant)

    result = _acquire(emulator, http, _with_assertion(_assertion(emulator, audience=aud)))

    assert _refusal(result) == ("invalid_client", 50027)
    assert "audience" in result["error_description"]


@pytest.mark.parametrize(
    "audience", ["{authority}/oauth2/v2.0/token", "{authority}/oauth2/token", "{upper}/"]
)
def test_the_documented_token_endpoint_variants_are_accepted_as_audience(
    emulator: RunningEmulator, http: requests.Session, audience: str
) -> None:
    scheme, _, rest = emulator.token_url.partition("://")
    host, _, path = rest.partition("/")
    aud = audience.format(authority=emulator.authority, upper=f"{scheme}://{host.upper()}/{path}")

    result = _acquire(emulator, http, _with_assertion(_assertion(emulator, audience=aud)))

    assert "access_token" in result, result


def test_an_assertion_issued_for_another_client_id_is_refused(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    result = _acquire(emulator, http, _with_assertion(_assertion(emulator, issuer="someone")))

    assert _refusal(result) == ("invalid_client", 700021)


def test_a_secret_for_a_certificate_client_is_an_invalid_secret(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    app = msal.ConfidentialClientApplication(
        CERT_CLIENT,
        client_credential=DEFAULT_CLIENT_SECRET,
        authority=emulator.authority,
        instance_discovery=False,
        http_client=http,
    )

    result = app.acquire_token_for_client(scopes=[_scope(emulator)])

    assert _refusal(result) == ("invalid_client", 7000215)


def test_an_assertion_for_a_secret_client_is_a_key_not_found(
    emulator: RunningEmulator, http: requests.Session
) -> None:
    assertion = _assertion(emulator, issuer=DEFAULT_CLIENT_ID)

    result = _acquire(emulator, http, _with_assertion(assertion), client_id=DEFAULT_CLIENT_ID)

    assert _refusal(result) == ("invalid_client", 700027)


def _pem_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.pem"
    path.write_bytes(APP_CERT.key_pem.encode() + APP_CERT.cert_pem)
    return path


def _provider(
    emulator: RunningEmulator, pem: Path, http: httpx.Client | None = None
) -> MsalTokenProvider:
    return MsalTokenProvider(
        client_id=CERT_CLIENT,
        authority=emulator.authority,
        dataverse_url=emulator.base_url,
        certificate=CertificateCredential(pem),
        http_client=http,
    )


@pytest.fixture
def msal_trusts_the_emulator(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an ``http_client``, msal uses requests, which trusts REQUESTS_CA_BUNDLE."""
    assert emulator.cert_path is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.cert_path))


@pytest.mark.usefixtures("msal_trusts_the_emulator")
def test_the_dataverse_consumer_signs_in_with_a_certificate_pem_file(
    emulator: RunningEmulator, http: requests.Session, tmp_path: Path
) -> None:
    token = _provider(emulator, _pem_file(tmp_path)).token()

    response = http.get(emulator.base_url + "/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_the_dataverse_consumer_signs_in_with_a_certificate_over_its_httpx_client(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    # msal posts the assertion as bytes; the consumer's adapter must send it as text, not b'...'.
    assert emulator.cert_path is not None
    trust = ssl.create_default_context(cafile=emulator.cert_path)
    with httpx.Client(verify=trust, timeout=10) as http:
        token = _provider(emulator, _pem_file(tmp_path), http).token()
        response = http.get(emulator.base_url, headers={"Authorization": f"Bearer {token}"})

    assert jwt.decode(token, options={"verify_signature": False})["appid"] == CERT_CLIENT
    assert response.status_code == 200


@pytest.mark.usefixtures("msal_trusts_the_emulator")
def test_msal_signs_in_again_after_invalidate_reusing_its_assertion(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    # msal signs one assertion and reuses it for up to 540 s; Entra, and the emulator by default,
    # accept that.
    provider = _provider(emulator, _pem_file(tmp_path))
    first = provider.token()
    provider.invalidate()

    assert provider.token() != first


def test_with_replay_protection_msal_presenting_its_assertion_again_is_refused(
    replay_protected: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert replay_protected.cert_path is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(replay_protected.cert_path))
    provider = _provider(replay_protected, _pem_file(tmp_path))
    provider.token()
    provider.invalidate()

    with pytest.raises(DataverseAuthError, match="AADSTS50013"):
        provider.token()


@contextmanager
def _served(tmp_path: Path, *options: str) -> Iterator[dict[str, str]]:
    """`crmledger emulator serve` with TLS, limits off and the app's certificate; its printout."""
    pem = _pem_file(tmp_path)
    process = _serve(
        "--port", "0", "--tls", "--limits", "off", "--client-cert", f"{CERT_CLIENT}:{pem}",
        *options, cwd=tmp_path,
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


def _served_app(
    printed: dict[str, str], http: requests.Session
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        CERT_CLIENT,
        client_credential={"private_key": APP_CERT.key_pem, "thumbprint": APP_CERT.thumbprint},
        authority=printed["Authority"],
        instance_discovery=False,
        http_client=http,
    )


def _served_scope(printed: dict[str, str]) -> list[str]:
    return [printed["Web API"].split("/api/")[0] + "/.default"]


def test_serve_registers_a_client_certificate_from_a_pem_file(tmp_path: Path) -> None:
    with _served(tmp_path) as printed, _trusting(printed["Certificate"]) as http:
        app = _served_app(printed, http)
        first = app.acquire_token_for_client(scopes=_served_scope(printed))
        app.remove_tokens_for_client()
        # msal presents the same assertion again: served without replay protection, as Entra.
        again = app.acquire_token_for_client(scopes=_served_scope(printed))

    assert f"{CERT_CLIENT} (certificate" in printed["Clients"]
    assert "access_token" in first, first
    assert "access_token" in again, again


def test_serve_with_reject_assertion_reuse_refuses_an_assertion_presented_again(
    tmp_path: Path,
) -> None:
    with (
        _served(tmp_path, "--reject-assertion-reuse") as printed,
        _trusting(printed["Certificate"]) as http,
    ):
        app = _served_app(printed, http)
        first = app.acquire_token_for_client(scopes=_served_scope(printed))
        app.remove_tokens_for_client()
        again = app.acquire_token_for_client(scopes=_served_scope(printed))

    assert "access_token" in first, first
    assert _refusal(again) == ("invalid_client", 50013)
