"""Run an ASGI app on uvicorn on a free local port in a background thread, for real-HTTP tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from dataverse_emulator.auth import TokenService
from dataverse_emulator.config import DEFAULT_CLIENT_ID, EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.guard import Guard
from dataverse_emulator.limits import Ticket

_START_TIMEOUT_S = 10.0


@contextmanager
def serve(app: ASGIApp, *, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its origin, e.g. ``https://127.0.0.1:53211``.

    ``tls`` is ``(cert_path, key_path)``; without it the server speaks plain http.
    """
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it Nagle's
    # algorithm and delayed ACKs add 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


class GuardedApi:
    """A stand-in Web API behind the real ``Guard`` and ``TokenService``, for tests of both.

    Routes under ``/api/data/v9.2/``: ``GET WhoAmI`` echoes the client id; ``POST work`` charges
    ``?records=N`` records and ``?requests=N`` inner requests to the ticket; ``GET hold`` waits
    until ``release`` is set (``arrived`` counts who got in); ``GET missing`` answers a
    Dataverse 404. ``GET /_emulator/ping`` lies outside the guarded paths.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.tokens = TokenService(config)
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()
        routes = [
            *self.tokens.routes(),
            Route("/api/data/v9.2/WhoAmI", self._who_am_i),
            Route("/api/data/v9.2/work", self._work, methods=["POST"]),
            Route("/api/data/v9.2/hold", self._hold),
            Route("/api/data/v9.2/missing", self._missing),
            Route("/_emulator/ping", self._ping),
        ]
        app = Starlette(routes=routes, exception_handlers={DataverseError: _dataverse_error})
        self.guard = Guard(app, config, self.tokens)

    def token(self, base_url: str, client_id: str = DEFAULT_CLIENT_ID) -> str:
        """A valid access token for ``client_id`` with the server at ``base_url`` as audience."""
        return self.tokens.issue(client_id, base_url)

    async def _who_am_i(self, request: Request) -> JSONResponse:
        return JSONResponse({"client_id": request.state.client_id})

    async def _work(self, request: Request) -> Response:
        ticket: Ticket = request.state.ticket
        ticket.charge(
            requests=int(request.query_params.get("requests", 0)),
            records=int(request.query_params.get("records", 0)),
        )
        return Response(status_code=204)

    async def _hold(self, request: Request) -> Response:
        self.arrived.release()
        await asyncio.to_thread(self.release.wait, _START_TIMEOUT_S)
        return Response(status_code=204)

    async def _missing(self, request: Request) -> Response:
        raise DataverseError(404, "0x80040217", "account With Id = 1 Does Not Exist")

    async def _ping(self, request: Request) -> Response:
        return Response("pong")


async def _dataverse_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DataverseError)
    return exc.response()
