"""Dataverse errors as the Web API returns them: ``{"error":{"code":"0x…","message":"…"}}``."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class DataverseError(Exception):
    """An error response: HTTP status, Dataverse hex code, message and extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str]]:
        """The documented JSON body."""
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> JSONResponse:
        """The HTTP response for this error."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)
