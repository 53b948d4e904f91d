"""Access tokens for Dataverse from Microsoft Entra ID: client credentials through msal.

The app authenticates as itself ("connect as an app", reference 1.3) with a client secret or a
certificate (a PEM file holding the private key and the certificate; the thumbprint is computed
from the certificate). Tokens are cached by msal and renewed before they expire;
:meth:`MsalTokenProvider.invalidate` drops the cached token when Dataverse refuses it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydantic import SecretStr

from consumers.dataverse.errors import DataverseAuthError, DataverseUnreachableError

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# Entra's public and sovereign cloud hosts: msal's instance discovery knows these, not others.
_MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


class TokenProvider(Protocol):
    """Gives the bearer token for Dataverse requests."""

    def token(self) -> str:
        """A valid access token (cached, or freshly acquired)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached token, so the next :meth:`token` acquires a new one."""
        ...


@dataclass(frozen=True)
class CertificateCredential:
    """A certificate credential: a PEM file with the private key and the certificate."""

    path: Path
    password: SecretStr | None = None

    def for_msal(self) -> dict[str, str]:
        """msal's ``client_credential`` dict: private key, SHA-1 thumbprint, passphrase."""
        try:
            pem = self.path.read_bytes()
        except OSError as error:
            raise DataverseAuthError(
                f"certificate {self.path}: cannot read it: {error.strerror}"
            ) from None
        if b"PRIVATE KEY-----" not in pem:
            raise DataverseAuthError(f"certificate {self.path}: no PEM private key in the file")
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise DataverseAuthError(
                f"certificate {self.path}: no PEM certificate in the file (it must hold the "
                "private key and the certificate)"
            ) from None
        credential = {
            "private_key": pem.decode("ascii", "replace"),
            # Entra registers certificates by their SHA-1 thumbprint.
            "thumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),
        }
        if self.password is not None:
            credential["passphrase"] = self.password.get_secret_value()
        return credential


def authority_for(tenant_id: str | None, authority_url: str | None) -> str:
    """The authority URL: ``authority_url`` as given, or Entra's public cloud for the tenant."""
    if authority_url:
        return authority_url.rstrip("/")
    if tenant_id:
        return f"{DEFAULT_AUTHORITY_HOST}/{tenant_id}"
    raise DataverseAuthError("no authority: set tenant_id (or authority_url)")


def scope_for(dataverse_url: str) -> str:
    """The client-credentials scope of an environment: ``<environment URL>/.default``."""
    parts = urlsplit(dataverse_url.strip())
    return f"{parts.scheme}://{parts.netloc}/.default"


class MsalTokenProvider:
    """Client-credentials tokens for one environment from msal, cached and renewed by msal.

    ``http_client`` is used for every call to the authority (pass one that trusts the emulator's
    certificate); msal is built on first use, so constructing this never touches the network.
    """

    def __init__(
        self,
        *,
        client_id: str,
        authority: str,
        dataverse_url: str,
        secret: SecretStr | None = None,
        certificate: CertificateCredential | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if (secret is None) == (certificate is None):
            raise DataverseAuthError("give one credential: a client secret or a certificate")
        self._client_id = client_id
        self._authority = authority
        self._scopes = [scope_for(dataverse_url)]
        self._secret = secret
        self._certificate = certificate
        self._http_client = http_client
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @property
    def scopes(self) -> list[str]:
        """The scopes requested (one: ``<environment>/.default``)."""
        return list(self._scopes)

    def token(self) -> str:
        """A valid access token; msal returns its cached one until shortly before it expires."""
        with self._lock:
            app = self._application()
            try:
                result = app.acquire_token_for_client(scopes=self._scopes)
            except httpx.HTTPError as error:
                raise DataverseUnreachableError(
                    f"authority {self._authority}: {_describe(error)}"
                ) from None
        access_token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(access_token, str):
            raise DataverseAuthError(self._refusal(result))
        return access_token

    def invalidate(self) -> None:
        """Drop the cached access tokens of this provider's scope."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            found = cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN, target=self._scopes)
            for item in list(found):
                cache.remove_at(item)

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        credential: str | dict[str, str]
        if self._secret is not None:
            credential = self._secret.get_secret_value()
        else:
            assert self._certificate is not None
            credential = self._certificate.for_msal()
        host = urlsplit(self._authority).hostname or ""
        try:
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=credential,
                authority=self._authority,
                # Only Entra's own hosts are known to instance discovery (the emulator is not).
                instance_discovery=None if host in _MICROSOFT_AUTHORITY_HOSTS else False,
                http_client=None if self._http_client is None else _MsalHttp(self._http_client),
            )
        except httpx.HTTPError as error:
            raise DataverseUnreachableError(
                f"authority {self._authority}: {_describe(error)}"
            ) from None
        except ValueError as error:
            # msal's ValueErrors name the authority or the key format, never the credential.
            message = self._scrub(str(error).splitlines()[0] if str(error) else "invalid")
            raise DataverseAuthError(f"authority {self._authority}: {message}") from None
        return self._app

    def _refusal(self, result: Any) -> str:
        if not isinstance(result, dict):
            return f"authority {self._authority}: no token in the answer"
        error = str(result.get("error", "no token"))
        description = str(result.get("error_description", "")).strip()
        # Entra appends trace and correlation ids after the first line; the first line says why.
        first = description.splitlines()[0] if description else ""
        first = first.split(" Trace ID:")[0]
        return self._scrub(
            f"authority {self._authority} refused client {self._client_id}: {error}: {first}"
        )

    def _scrub(self, text: str) -> str:
        for secret in (self._secret, self._certificate and self._certificate.password):
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "**********")
        return text


class _MsalHttp:
    """An httpx client as msal's ``http_client``: msal's ``bytes`` form values are posted as text.

    msal passes the signed client assertion as ``bytes``, which httpx would form-encode as
    ``b'...'``; every other argument, and the client's trust, timeouts and pool, pass through.
    """

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def post(
        self,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POST ``data`` (a form dict, its bytes values decoded) as httpx would."""
        if isinstance(data, Mapping):
            data = {
                name: value.decode("utf-8") if isinstance(value, bytes) else value
                for name, value in data.items()
            }
        return self._http.post(url, params=params, data=data, headers=headers, **kwargs)

    def get(
        self,
        url: str,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """GET, unchanged (msal's authority and OpenID discovery)."""
        return self._http.get(url, params=params, headers=headers, **kwargs)


def _describe(error: httpx.HTTPError) -> str:
    kind = type(error).__name__
    return f"{kind}: {error}" if str(error) else kind
