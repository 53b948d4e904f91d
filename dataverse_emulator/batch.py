"""`$batch`: the multipart/mixed envelope, changesets and their execution (reference section 5).

The envelope is parsed by hand rather than with :mod:`email`, because Dataverse is strict where
a mail parser is lenient: bare LF line endings are a payload error, and a changeset may not hold
a GET or another changeset.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from urllib.parse import urlsplit

from dataverse_emulator.errors import DataverseError
from dataverse_emulator.records import ApiRequest, Reply, RequestContext, WebApi

MAX_BATCH_REQUESTS = 1000
MAX_URL_LENGTH = 65_536  # 64 KB inside a batch (reference section 0)
CONTINUE_ON_ERROR = "odata.continue-on-error"
PAYLOAD_ERROR = "0x80048d19"
_CRLF = b"\r\n"
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


@dataclass(frozen=True)
class InnerRequest:
    """One HTTP request inside a `$batch`, with header names in lower case."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """Write requests that succeed or fail together."""

    requests: tuple[InnerRequest, ...]


@dataclass(frozen=True)
class InnerResponse:
    """The result of one inner request, as it is written into the batch response."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSetResponse:
    """The results of one changeset, wrapped in its own `changesetresponse_` boundary."""

    responses: tuple[InnerResponse, ...]


BatchPart = InnerRequest | ChangeSet
BatchResponsePart = InnerResponse | ChangeSetResponse


def register(web_api: WebApi) -> None:
    """Serve `POST /api/data/v9.2/$batch` through `web_api`'s dispatcher."""

    def operation(request: ApiRequest, ctx: RequestContext) -> Reply:
        return execute_batch(web_api, request, ctx)

    web_api.add_operation("$batch", operation)


def execute_batch(web_api: WebApi, request: ApiRequest, ctx: RequestContext) -> Reply:
    """Run a `$batch` request and write its multipart response.

    Standalone requests run in order, each on its own; a changeset runs inside one store
    transaction and is rolled back as a whole when any of its requests fails. Without
    `Prefer: odata.continue-on-error` the batch stops at the first failure and answers 400 with
    only that failure; with it, the batch answers 200 with every result. Every inner request is
    charged as one request to the caller's service protection limits.
    """
    if request.method != "POST":
        raise DataverseError(
            405,
            "0x80060888",
            f"The requested resource does not support http method '{request.method}'.",
        )
    parts = parse_batch(request.headers.get("content-type", ""), request.body)
    continue_on_error = request.prefer.get(CONTINUE_ON_ERROR, "false") != "false"
    results: list[BatchResponsePart] = []
    for part in parts:
        if isinstance(part, ChangeSet):
            result = _run_changeset(web_api, part, ctx)
        else:
            result = _run(web_api, part, replace(ctx, content_ids={}))
        failed = isinstance(result, InnerResponse) and result.status >= 400
        if failed and not continue_on_error:
            content_type, body = serialize_batch([result])
            return Reply(400, {"Content-Type": content_type, "OData-Version": "4.0"}, body)
        results.append(result)
    content_type, body = serialize_batch(results)
    headers = {"Content-Type": content_type, "OData-Version": "4.0"}
    if continue_on_error:
        headers["Preference-Applied"] = CONTINUE_ON_ERROR
    return Reply(200, headers, body)


class _ChangeSetError(Exception):
    """Raised inside a changeset's transaction to roll it back."""

    def __init__(self, response: InnerResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _run_changeset(web_api: WebApi, changeset: ChangeSet, ctx: RequestContext) -> BatchResponsePart:
    # Content-ID references resolve only within the changeset that defined them.
    scoped = replace(ctx, content_ids={})
    responses: list[InnerResponse] = []
    try:
        with web_api.records.store.transaction():
            for request in changeset.requests:
                response = _run(web_api, request, scoped)
                if response.status >= 400:
                    raise _ChangeSetError(response)
                responses.append(response)
    except _ChangeSetError as failure:
        # A failed changeset is answered by the one failure, not by a changesetresponse.
        return failure.response
    return ChangeSetResponse(tuple(responses))


def _run(web_api: WebApi, request: InnerRequest, ctx: RequestContext) -> InnerResponse:
    ctx.charge(requests=1)
    reply = web_api.execute(
        ApiRequest.parse(request.method, request.url, request.headers, request.body), ctx
    )
    if request.content_id is not None and reply.entity is not None and reply.status < 400:
        ctx.content_ids[request.content_id] = reply.entity
    return InnerResponse(reply.status, tuple(reply.headers.items()), reply.body, request.content_id)


def payload_error(detail: str) -> DataverseError:
    """A 400 payload error of the 0x80048d19 family, the code Dataverse uses for bad envelopes."""
    return DataverseError(
        400, PAYLOAD_ERROR, f"Error identified in Payload provided by the user: {detail}"
    )


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    """Parse a `$batch` request body into standalone requests and changesets, in order.

    Raises :class:`DataverseError` (400) for a malformed envelope, bare LF line endings, a GET or
    a nested changeset inside a changeset, a repeated Content-ID, or more than 1,000 requests.
    """
    parts: list[BatchPart] = []
    content_ids: set[str] = set()
    for raw in _split_parts(body, _boundary(content_type)):
        headers, content = _part_headers(raw)
        part_type = headers.get("content-type", "")
        if part_type.lower().startswith("multipart/mixed"):
            requests = tuple(
                _inner_request(*_part_headers(inner), in_changeset=True)
                for inner in _split_parts(content, _boundary(part_type))
            )
            parts.append(ChangeSet(requests))
        else:
            requests = (_inner_request(headers, content, in_changeset=False),)
            parts.append(requests[0])
        for request in requests:
            if request.content_id is None:
                continue
            if request.content_id in content_ids:
                raise payload_error(
                    f"The Content-ID '{request.content_id}' is used more than once in the batch."
                )
            content_ids.add(request.content_id)
    count = sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)
    if count > MAX_BATCH_REQUESTS:
        raise payload_error(
            f"The batch contains {count} requests; a batch may contain at most "
            f"{MAX_BATCH_REQUESTS} requests."
        )
    return parts


def serialize_batch(
    parts: Sequence[BatchResponsePart], boundary: str | None = None
) -> tuple[str, bytes]:
    """Write a batch response: its Content-Type (with the boundary) and its CRLF body."""
    boundary = boundary or f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for part in parts:
        chunks.append(b"--" + boundary.encode() + _CRLF)
        if isinstance(part, ChangeSetResponse):
            inner = f"changesetresponse_{uuid.uuid4()}"
            chunks.append(f"Content-Type: multipart/mixed; boundary={inner}".encode() + _CRLF)
            chunks.append(_CRLF)
            for response in part.responses:
                chunks.append(b"--" + inner.encode() + _CRLF)
                chunks.append(_response_part(response) + _CRLF)
            chunks.append(b"--" + inner.encode() + b"--" + _CRLF)
        else:
            chunks.append(_response_part(part) + _CRLF)
    chunks.append(b"--" + boundary.encode() + b"--" + _CRLF)
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)


def _response_part(response: InnerResponse) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if response.content_id is not None:
        lines.append(f"Content-ID: {response.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append("")
    # The CRLF that closes the blank line after the headers, then the body; the CRLF in front of
    # the next delimiter belongs to the delimiter (RFC 2046), so it is added by the caller.
    return "\r\n".join(lines).encode() + _CRLF + response.body


def _boundary(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/mixed"):
        raise payload_error(
            f"The content type '{content_type}' is not valid for a batch; "
            "expected 'multipart/mixed' with a boundary."
        )
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise payload_error(f"The content type '{content_type}' has no boundary parameter.")
    return match.group(1) or match.group(2)


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = re.escape(b"--" + boundary.encode())
    lines = re.compile(rb"(?:\A|\r\n)" + delimiter + rb"(?:(--)|[ \t]*(?:\r\n|\Z))")
    parts: list[bytes] = []
    start: int | None = None
    for match in lines.finditer(body):
        if start is not None:
            parts.append(body[start : match.start()])
        if match.group(1):
            return parts
        start = match.end()
    if re.search(rb"(?:\A|\n)" + delimiter, body) and b"\n" in body.replace(_CRLF, b""):
        raise payload_error("Stream was not readable. Batch line endings must be CRLF.")
    raise payload_error(f"The batch body has no closing delimiter '--{boundary}--'.")


def _split_head(part: bytes) -> tuple[list[str], bytes]:
    """Split a part into its header lines (leading blank lines skipped) and its content."""
    while part.startswith(_CRLF):
        part = part[len(_CRLF) :]
    head, blank, content = part.partition(_CRLF + _CRLF)
    if not blank and head.endswith(_CRLF):
        head = head[: -len(_CRLF)]
    if b"\n" in head.replace(_CRLF, b""):
        raise payload_error("Stream was not readable. Batch line endings must be CRLF.")
    return (head.decode("utf-8").split("\r\n") if head else []), content


def _headers(lines: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise payload_error(f"The header line '{line}' is not valid.")
        headers[name.strip().lower()] = value.strip()
    return headers


def _part_headers(part: bytes) -> tuple[dict[str, str], bytes]:
    lines, content = _split_head(part)
    return _headers(lines), content


def _inner_request(
    headers: Mapping[str, str], content: bytes, *, in_changeset: bool
) -> InnerRequest:
    part_type = headers.get("content-type", "")
    if part_type.lower().startswith("multipart/mixed"):
        raise payload_error(
            "A changeset cannot contain another changeset; batches can't be nested."
        )
    if part_type.split(";")[0].strip().lower() != "application/http":
        raise payload_error(
            f"The content type '{part_type}' of a batch part is not valid; "
            "expected 'application/http'."
        )
    lines, body = _split_head(content)
    request_line = lines[0] if lines else ""
    method, _, rest = request_line.partition(" ")
    url, _, version = rest.rpartition(" ")
    if method not in _METHODS or not url or not version.startswith("HTTP/"):
        raise payload_error(f"The request line '{request_line}' of a batch part is not valid.")
    if len(url) > MAX_URL_LENGTH:
        raise payload_error(
            f"The URL of a batch part is {len(url)} characters long; at most {MAX_URL_LENGTH} "
            "are allowed."
        )
    if urlsplit(url).path.rstrip("/").endswith("$batch"):
        raise payload_error("A batch cannot contain another batch; batches can't be nested.")
    if in_changeset and method == "GET":
        raise payload_error(
            "The HTTP method 'GET' is not valid in a changeset; changesets may contain only "
            "POST, PATCH, PUT and DELETE requests."
        )
    http_headers = _headers(lines[1:])
    content_id = headers.get("content-id") or http_headers.pop("content-id", None)
    return InnerRequest(method, url, http_headers, body, content_id)
