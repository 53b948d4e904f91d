"""The gate in front of the Web API: injected faults, bearer tokens, service protection limits.

``Guard`` wraps the emulator's ASGI app. For every request under ``/api/data/v9.2/`` it, in order,
draws a fault (and plays it out if one comes up), authenticates the bearer token (401), admits the
request against the client's limits (429), hands the app the client id and a ``Ticket`` in
``scope["state"]``, and adds ``x-ms-dop-hint`` and the rate-limit debug headers to the response.
Everything else (token and discovery endpoints, ``/_emulator/``) passes straight through.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.datastructures import URL, Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dataverse_emulator.auth import TokenService
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.faults import FaultInjector
from dataverse_emulator.limits import DOP_HINT_HEADER, ServiceProtection

API_ROOT = "/api/data/v9.2"
UNAUTHENTICATED = (
    "(unauthenticated)"  # whom a fault on a request without a valid token is booked to
)


class Guard:
    """ASGI middleware: ``Guard(app, config, token_service)``."""

    def __init__(
        self,
        app: ASGIApp,
        config: EmulatorConfig,
        token_service: TokenService,
        *,
        protection: ServiceProtection | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        self.app = app
        self.tokens = token_service
        self.protection = protection or ServiceProtection(config)
        self.faults = faults or FaultInjector(config)
        self._faults_by_client: dict[str, Counter[str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one connection event; only http requests to the Web API are checked."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == API_ROOT or path.startswith(API_ROOT + "/")):
            await self.app(scope, receive, send)
            return
        fault = self.faults.draw() if self.faults.active else None
        url = URL(scope=scope)
        base_url = f"{url.scheme}://{url.netloc}"
        dop_hint = {DOP_HINT_HEADER: str(self.protection.dop_hint)}
        try:
            client_id = self.tokens.client_of(
                Headers(scope=scope).get("authorization"), base_url=base_url
            )
        except DataverseError as error:
            if fault is None:
                await _reply(error, dop_hint, scope, receive, send)
                return
            client_id = UNAUTHENTICATED
        if fault is not None:
            self._faults_by_client.setdefault(client_id, Counter())[fault.kind] += 1
            await fault.respond(receive, send, dop_hint)
            return
        try:
            ticket = self.protection.admit(client_id)
        except DataverseError as error:
            await _reply(error, self.protection.headers(client_id), scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["client_id"] = client_id
        state["ticket"] = ticket

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = ticket.headers()
                names = {name.encode("latin-1") for name in extra}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                added = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
                message = {**message, "headers": kept + added}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            ticket.release()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per client id: requests, throttled (429s of the limits), execution_ms (modelled),
        concurrent_peak, and faults injected by kind (e.g. ``{"503": 2, "reset": 1}``)."""
        result: dict[str, dict[str, Any]] = {
            client: {**numbers, "faults": {}} for client, numbers in self.protection.stats().items()
        }
        for client, kinds in self._faults_by_client.items():
            entry = result.setdefault(
                client,
                {"requests": 0, "throttled": 0, "execution_ms": 0.0, "concurrent_peak": 0},
            )
            entry["faults"] = dict(kinds)
        return result


async def _reply(
    error: DataverseError, headers: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    response = error.response()
    for name, value in headers.items():
        response.headers[name] = value
    await response(scope, receive, send)
