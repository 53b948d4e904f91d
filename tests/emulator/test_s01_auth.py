"""Reference section 1: client-credentials tokens from the emulator, checked on every Web API call.

The real msal library talks to the emulator over https with the generated certificate, as msal
refuses plain-http authorities.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import msal
import pytest

from dataverse_emulator.auth import TokenService
from dataverse_emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from dataverse_emulator.tls import ensure_certificate
from tests.emulator._serve import GuardedApi, serve

SECOND_CLIENT = ("crmledger-second", "second-secret")
CONFIG = EmulatorConfig(
    clients={DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET, SECOND_CLIENT[0]: SECOND_CLIENT[1]}
)
TENANT = CONFIG.tenant


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def served(cert: tuple[Path, Path]) -> Iterator[tuple[GuardedApi, str]]:
    guarded = GuardedApi(CONFIG)
    with serve(guarded.guard, tls=cert) as base_url:
        yield guarded, base_url


@pytest.fixture
def http(cert: tuple[Path, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=cert[0]), timeout=10) as client:
        yield client


def _msal_app(
    base_url: str, http: httpx.Client, secret: str = DEFAULT_CLIENT_SECRET
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID,
        client_credential=secret,
        authority=f"{base_url}/{TENANT}",
        instance_discovery=False,  # msal would otherwise ask login.microsoftonline.com
        http_client=http,  # trusts the emulator's certificate whatever REQUESTS_CA_BUNDLE says
    )


def _whoami(http: httpx.Client, base_url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return http.get(f"{base_url}/api/data/v9.2/WhoAmI", headers=headers)


def test_msal_obtains_a_token_that_passes_the_guard(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    result = _msal_app(base_url, http).acquire_token_for_client(scopes=[f"{base_url}/.default"])

    assert result["token_type"] == "Bearer"
    response = _whoami(http, base_url, result["access_token"])
    assert response.status_code == 200
    assert response.json() == {"client_id": DEFAULT_CLIENT_ID}


def test_msal_with_instance_discovery_at_the_emulator_obtains_a_token(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    app = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID,
        client_credential=DEFAULT_CLIENT_SECRET,
        authority=f"{base_url}/{TENANT}",
        instance_discovery=f"{base_url}/common/discovery/instance",
        http_client=http,
    )

    result = app.acquire_token_for_client(scopes=[f"{base_url}/.default"])

    assert "access_token" in result


def test_msal_refuses_a_plain_http_authority_so_the_emulator_needs_tls() -> None:
    with pytest.raises(ValueError, match="https"):
        msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=f"http://127.0.0.1:9/{TENANT}",
            instance_discovery=False,
        )


def test_openid_configuration_points_msal_at_the_emulator(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    document = http.get(f"{base_url}/{TENANT}/v2.0/.well-known/openid-configuration").json()

    assert document["token_endpoint"] == f"{base_url}/{TENANT}/oauth2/v2.0/token"
    assert document["authorization_endpoint"] == f"{base_url}/{TENANT}/oauth2/v2.0/authorize"
    assert document["issuer"] == f"{base_url}/{TENANT}/v2.0"
    assert document["jwks_uri"] == f"{base_url}/{TENANT}/discovery/v2.0/keys"


def test_access_token_is_a_signed_jwt_for_the_organization_naming_the_client(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    token = _token_response(http, base_url).json()
    keys = http.get(f"{base_url}/{TENANT}/discovery/v2.0/keys").json()["keys"]
    key = jwt.PyJWK(keys[0]).key

    claims = jwt.decode(token["access_token"], key, algorithms=["RS256"], audience=base_url)

    assert claims["appid"] == claims["azp"] == DEFAULT_CLIENT_ID
    assert claims["tid"] == TENANT
    assert claims["exp"] - claims["iat"] == CONFIG.token_lifetime_s == token["expires_in"]


def test_client_secret_basic_authentication_is_accepted(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    response = http.post(
        f"{base_url}/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": f"{base_url}/.default"},
        auth=SECOND_CLIENT,
    )

    assert response.status_code == 200
    token = response.json()["access_token"]
    assert _whoami(http, base_url, token).json() == {"client_id": SECOND_CLIENT[0]}


def test_wrong_secret_gets_the_invalid_client_oauth_error(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    result = _msal_app(base_url, http, secret="not-the-secret").acquire_token_for_client(
        scopes=[f"{base_url}/.default"]
    )
    raw = _token_response(http, base_url, secret="not-the-secret")

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert raw.status_code == 401


def test_unknown_client_gets_unauthorized_client(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    response = _token_response(http, base_url, client_id="nobody")

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert response.json()["error_codes"] == [700016]


@pytest.mark.parametrize(
    ("scope", "error", "number"),
    [
        ("{base}/user_impersonation", "invalid_scope", 1002012),
        ("https://contoso.crm4.dynamics.com/.default", "invalid_resource", 500011),
    ],
)
def test_scope_other_than_the_organization_default_is_refused(
    served: tuple[GuardedApi, str], http: httpx.Client, scope: str, error: str, number: int
) -> None:
    _, base_url = served
    response = _token_response(http, base_url, scope=scope.format(base=base_url))

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_codes"] == [number]


def test_unknown_tenant_fails_msal_discovery(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    document = http.get(f"{base_url}/some-other-tenant/v2.0/.well-known/openid-configuration")

    assert document.status_code == 400
    assert document.json()["error"] == "invalid_tenant"
    with pytest.raises(ValueError, match="tenant name or GUID"):
        msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=f"{base_url}/some-other-tenant",
            instance_discovery=False,
            http_client=http,
        )


def test_request_without_token_is_401_with_authorization_uri_challenge(
    served: tuple[GuardedApi, str], http: httpx.Client
) -> None:
    _, base_url = served
    response = _whoami(http, base_url, None)

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f"Bearer authorization_uri={base_url}/{TENANT}/oauth2/authorize")
    assert f"resource_id={base_url}/" in challenge
    assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda api, base: "not-a-jwt", id="garbage"),
        pytest.param(
            lambda api, base: TokenService(CONFIG).issue(DEFAULT_CLIENT_ID, base), id="other-key"
        ),
        pytest.param(
            lambda api, base: api.tokens.issue(DEFAULT_CLIENT_ID, "https://x.crm.dynamics.com"),
            id="other-resource",
        ),
        pytest.param(lambda api, base: api.tokens.issue("removed-app", base), id="unknown-client"),
        pytest.param(
            lambda api, base: api.tokens.issue(DEFAULT_CLIENT_ID, base, lifetime_s=-1), id="expired"
        ),
    ],
)
def test_invalid_or_expired_token_is_401_invalid_token(
    served: tuple[GuardedApi, str], http: httpx.Client, make_token: Callable[[GuardedApi, str], str]
) -> None:
    guarded, base_url = served
    response = _whoami(http, base_url, make_token(guarded, base_url))

    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer error=invalid_token")
    assert f"authorization_uri={base_url}/{TENANT}/oauth2/authorize" in challenge


def test_expired_token_message_says_so(served: tuple[GuardedApi, str], http: httpx.Client) -> None:
    guarded, base_url = served
    token = guarded.tokens.issue(DEFAULT_CLIENT_ID, base_url, lifetime_s=-1)

    assert _whoami(http, base_url, token).json()["error"]["message"] == (
        "The bearer token has expired."
    )


def test_configured_organization_url_is_the_only_audience(cert: tuple[Path, Path]) -> None:
    organization = "https://contoso.crm4.dynamics.com"
    guarded = GuardedApi(EmulatorConfig(organization_url=organization))
    with (
        serve(guarded.guard, tls=cert) as base_url,
        httpx.Client(verify=ssl.create_default_context(cafile=cert[0])) as http,
    ):
        refused = _token_response(http, base_url)
        granted = _token_response(http, base_url, scope=f"{organization}/.default")
        response = _whoami(http, base_url, granted.json()["access_token"])

    assert refused.json()["error"] == "invalid_resource"
    assert response.status_code == 200


def _token_response(
    http: httpx.Client,
    base_url: str,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    secret: str = DEFAULT_CLIENT_SECRET,
    scope: str | None = None,
) -> httpx.Response:
    return http.post(
        f"{base_url}/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": scope or f"{base_url}/.default",
        },
    )
