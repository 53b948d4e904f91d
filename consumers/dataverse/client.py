"""The Dataverse Web API client: one pooled httpx connection set, OData headers, typed errors.

Every request goes to ``<environment>/api/data/v9.2/`` with the standard headers of reference
2.1 and a bearer token from a :class:`~consumers.dataverse.auth.TokenProvider`. Transient
failures (429, 502, 503, 504, timeouts, dropped connections) are retried a bounded number of
times, waiting ``Retry-After`` when the service sends it and an exponential backoff otherwise,
both with jitter. A 401 drops the cached token and retries once with a fresh one.

Concurrency control (``x-ms-dop-hint``, adaptive rates) belongs to the writers built on top.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from consumers.dataverse.auth import (
    CertificateCredential,
    MsalTokenProvider,
    TokenProvider,
    authority_for,
)
from consumers.dataverse.errors import (
    TRANSIENT_STATUSES,
    DataverseConfigError,
    DataverseError,
    DataverseUnreachableError,
)
from ledger.settings import Settings

API_PATH = "/api/data/v9.2/"
JsonObject = dict[str, Any]

_log = logging.getLogger("crmledger.dataverse")

_ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: a bounded count, Retry-After first, then backoff."""

    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    jitter_s: float = 0.5
    """at most this much (or 10% of the wait, if less) is added at random to a Retry-After wait."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            # Never earlier than the service asked; the jitter spreads clients that were told alike.
            return min(retry_after, self.max_delay_s) + rng.uniform(
                0, min(self.jitter_s, 0.1 * max(retry_after, 1.0))
            )
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never zero, never a storm


@dataclass
class ClientStats:
    """What the client has done so far (for progress displays and tests)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    waited_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)


class DataverseClient:
    """A Dataverse Web API v9.2 client for one environment.

    ``http`` is closed with the client when the client created it (or ``owns_http`` says so).

    ``get``/``post``/``patch``/``delete`` take a path relative to the API root (``"accounts"``,
    ``"EntityDefinitions(LogicalName='account')/Keys"``) and return the parsed JSON body; a
    response without a body gives ``{}``, or ``{"@odata.id": <OData-EntityId>}`` when the
    service named the created or updated row. :meth:`request` returns the raw response.
    """

    def __init__(
        self,
        dataverse_url: str,
        tokens: TokenProvider,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float = 120.0,
        max_connections: int = 52,
        ca_file: Path | None = None,
        owns_http: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.environment_url = dataverse_url.rstrip("/")
        self.base_url = self.environment_url + API_PATH
        self._tokens = tokens
        self._owns_http = http is None if owns_http is None else owns_http
        self._http = http or make_http_client(
            ca_file=ca_file, timeout_s=timeout_s, max_connections=max_connections
        )
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._sleep = sleep
        self._rng = rng or random.Random()

    # -- the four verbs ------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        max_page_size: int | None = None,
    ) -> JsonObject:
        """GET ``path``; ``max_page_size`` sends ``Prefer: odata.maxpagesize``."""
        prefer = {"Prefer": f"odata.maxpagesize={max_page_size}"} if max_page_size else {}
        extra = {**prefer, **(headers or {})}
        return _json(self.request("GET", path, params=params, headers=extra))

    def post(
        self,
        path: str,
        body: object = None,
        *,
        headers: Mapping[str, str] | None = None,
        return_representation: bool = False,
    ) -> JsonObject:
        """POST ``body`` as JSON; ``return_representation`` asks for the created row back."""
        prefer = {"Prefer": "return=representation"} if return_representation else {}
        extra = {**prefer, **(headers or {})}
        return _json(self.request("POST", path, json_body=body, headers=extra))

    def patch(
        self,
        path: str,
        body: object,
        *,
        headers: Mapping[str, str] | None = None,
        return_representation: bool = False,
    ) -> JsonObject:
        """PATCH ``body`` as JSON (update, or upsert without If-Match/If-None-Match)."""
        prefer = {"Prefer": "return=representation"} if return_representation else {}
        extra = {**prefer, **(headers or {})}
        return _json(self.request("PATCH", path, json_body=body, headers=extra))

    def delete(self, path: str, *, headers: Mapping[str, str] | None = None) -> JsonObject:
        """DELETE ``path``."""
        return _json(self.request("DELETE", path, headers=headers))

    # -- the request loop ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; :class:`DataverseError` otherwise.

        ``content`` is a raw body (a ``$batch`` envelope) sent instead of ``json_body``; its
        Content-Type comes in ``headers``.
        """
        url = path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")
        base_headers = dict(_ODATA_HEADERS)
        if method == "GET":
            base_headers["If-None-Match"] = "null"  # reference 2.1: no cached results
        if content is None and json_body is not None:
            content = json.dumps(json_body).encode("utf-8")
            base_headers["Content-Type"] = "application/json; charset=utf-8"
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.stats.requests += 1
            request_headers = {
                **base_headers,
                **(headers or {}),
                "Authorization": f"Bearer {self._tokens.token()}",
            }
            try:
                response = self._http.request(
                    method, url, params=params, content=content, headers=request_headers
                )
            except _RETRYABLE_TRANSPORT as error:
                if attempt > self.retry.max_retries:
                    raise DataverseUnreachableError(
                        f"{method} {self._short(url)}: {type(error).__name__} after "
                        f"{attempt} attempts: {error}"
                    ) from None
                self._wait(attempt, None, f"{type(error).__name__} on {method} {self._short(url)}")
                continue
            except httpx.HTTPError as error:
                raise DataverseUnreachableError(
                    f"{method} {self._short(url)}: {type(error).__name__}: {error}"
                ) from None
            status = response.status_code
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
            if status < 400:
                return response
            if status == 401 and not refreshed:
                # The token expired or was revoked between msal's check and the request.
                refreshed = True
                self._tokens.invalidate()
                continue
            refusal = _error_of(response, method, self._short(url))
            if status == 429:
                self.stats.throttled += 1
            if status not in TRANSIENT_STATUSES or attempt > self.retry.max_retries:
                raise refusal
            what = f"{status} {refusal.code} on {method} {self._short(url)}"
            self._wait(attempt, refusal.retry_after, what)

    def _wait(self, attempt: int, retry_after: float | None, what: str) -> None:
        delay = self.retry.delay(attempt, retry_after, self._rng)
        self.stats.retries += 1
        self.stats.waited_s += delay
        _log.warning(
            "%s: retry %d of %d in %.2f s%s",
            what,
            attempt,
            self.retry.max_retries,
            delay,
            f" (Retry-After {retry_after:g} s)" if retry_after is not None else "",
        )
        self._sleep(delay)

    def _short(self, url: str) -> str:
        return url.removeprefix(self.base_url)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool, if this client opened it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def make_http_client(
    *, ca_file: Path | None = None, timeout_s: float = 120.0, max_connections: int = 52
) -> httpx.Client:
    """An httpx client with a connection pool, trusting ``ca_file`` in addition to nothing else.

    With ``ca_file`` (the emulator's self-signed certificate) only that file is trusted;
    without it, the system's default CAs.
    """
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as error:
            raise DataverseConfigError(f"dataverse_ca_file {ca_file}: {error}") from None
    return httpx.Client(
        verify=verify,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


def client_from_settings(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    timeout_s: float = 120.0,
    max_connections: int = 52,
) -> DataverseClient:
    """A client for the environment the settings name, authenticating with msal.

    Raises :class:`DataverseConfigError` naming every missing setting. One httpx client (with
    ``dataverse_ca_file`` trusted, if set) serves both the authority and the Web API.
    """
    missing = [name for name in ("dataverse_url", "client_id") if not getattr(settings, name, None)]
    if not (settings.tenant_id or settings.authority_url):
        missing.append("tenant_id (or authority_url)")
    if settings.client_secret is None and settings.certificate_path is None:
        missing.append("client_secret (or certificate_path)")
    if missing:
        raise DataverseConfigError(
            "missing settings: " + ", ".join(missing) + " (crmledger.toml or CRMLEDGER_* variables)"
        )
    assert settings.dataverse_url is not None
    assert settings.client_id is not None
    http = make_http_client(
        ca_file=settings.dataverse_ca_file, timeout_s=timeout_s, max_connections=max_connections
    )
    certificate = (
        CertificateCredential(settings.certificate_path, settings.certificate_password)
        if settings.client_secret is None and settings.certificate_path is not None
        else None
    )
    tokens = MsalTokenProvider(
        client_id=settings.client_id,
        authority=authority_for(settings.tenant_id, settings.authority_url),
        dataverse_url=settings.dataverse_url,
        secret=settings.client_secret,
        certificate=certificate,
        http_client=http,
    )
    return DataverseClient(settings.dataverse_url, tokens, http=http, owns_http=True, retry=retry)


def _json(response: httpx.Response) -> JsonObject:
    if not response.content:
        entity_id = response.headers.get("OData-EntityId")
        return {"@odata.id": entity_id} if entity_id else {}
    try:
        parsed = response.json()
    except ValueError:
        raise DataverseError(
            response.status_code, "", "the response is not JSON", method=response.request.method
        ) from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _error_of(response: httpx.Response, method: str, path: str) -> DataverseError:
    code, message = "", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or "")
        message = str(body["error"].get("message") or "")
    if not message:
        message = response.reason_phrase or "error without a message"
    return DataverseError(
        response.status_code,
        code,
        message,
        retry_after=_retry_after(response.headers.get("Retry-After")),
        method=method,
        path=path,
    )


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number (what Dataverse sends) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
