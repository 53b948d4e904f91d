"""The emulator's ASGI application: the Web API, the token endpoints and an inspection API.

`create_app` wires the pieces: `Records` and `WebApi` (this package's core), the operations other
modules contribute (`$batch`, bulk messages, metadata: each module's `register(web_api)`), the
`TokenService` endpoints, the `/_emulator/` inspection routes, and the `Guard` middleware that
authenticates and throttles every Web API request.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from dataverse_emulator import batch, bulk, metadata
from dataverse_emulator.auth import TokenService
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.guard import API_ROOT, Guard
from dataverse_emulator.records import API_PREFIX, ApiRequest, Records, WebApi
from dataverse_emulator.schema import ACTIVITY_SPACE, Schema, sales_schema
from dataverse_emulator.store import Store

_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


@dataclass
class Emulator:
    """The state of one emulator instance: its schema, rows and Web API."""

    config: EmulatorConfig
    schema: Schema
    store: Store
    records: Records
    web_api: WebApi

    @classmethod
    def build(cls, config: EmulatorConfig) -> Emulator:
        """A seeded emulator with every available extension registered."""
        schema = sales_schema()
        store = Store(config.db_path)
        records = Records(schema, store, config)
        records.seed()
        web_api = WebApi(records)
        for extension in (batch, bulk, metadata):
            extension.register(web_api)
        return cls(config, schema, store, records, web_api)


def create_app(config: EmulatorConfig, emulator: Emulator | None = None) -> ASGIApp:
    """The ASGI app for `config` (building a fresh `Emulator` unless one is given)."""
    core = emulator or Emulator.build(config)
    tokens = TokenService(config)
    guard_holder: list[Guard] = []

    async def web_api(request: Request) -> Response:
        state = request.scope.get("state") or {}
        client_id = state.get("client_id")
        if client_id is None:
            return DataverseError(401, "0x0", "The request has no bearer token.").response()
        base_url = f"{request.url.scheme}://{request.url.netloc}{API_PREFIX}"
        ctx = core.records.context_for(client_id, base_url=base_url, ticket=state.get("ticket"))
        api_request = ApiRequest.parse(
            request.method, str(request.url), request.headers, await request.body()
        )
        reply = await run_in_threadpool(core.web_api.execute, api_request, ctx)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def counts(_: Request) -> JSONResponse:
        # Every stored table, empty ones too; the activitypointer view holds no rows of its own.
        empty = {name: 0 for name in core.schema.tables if name != ACTIVITY_SPACE}
        return JSONResponse(empty | core.store.counts())

    async def digest(request: Request) -> JSONResponse:
        content = request.query_params.get("content", "false").lower() == "true"
        digest = await run_in_threadpool(lambda: core.store.digest(content=content))
        return JSONResponse({"digest": digest})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(guard_holder[0].stats())

    routes: list[BaseRoute] = [
        Route(API_ROOT, web_api, methods=_METHODS),
        Route(API_ROOT + "/{path:path}", web_api, methods=_METHODS),
        Route("/_emulator/counts", counts, methods=["GET"]),
        Route("/_emulator/digest", digest, methods=["GET"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        *tokens.routes(),
    ]
    guard = Guard(Starlette(routes=routes), config, tokens)
    guard_holder.append(guard)
    return guard
