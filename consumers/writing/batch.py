"""``$batch`` requests of changesets, and their responses (reference section 5).

Every changeset succeeds or fails as a whole; the writer puts one record's requests (its create
or update and the state changes around it) in one changeset, and sends the batch with
``Prefer: odata.continue-on-error`` so that one record's failure leaves the others written. The
response holds one part per changeset, in order: a ``changesetresponse`` when it was written, or
the one failing request's response when it was rolled back.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_CRLF = "\r\n"
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_STATUS_LINE = re.compile(r"^HTTP/\d\.\d (\d{3})")


@dataclass(frozen=True)
class Request:
    """One write inside a changeset: method, URL relative to the API root, JSON body, headers."""

    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """The response of one changeset: its status, and the error body when it failed."""

    status: int
    body: dict[str, Any]
    request_index: int | None = None
    """the position, in its changeset, of the request that failed (when the response says)."""

    @property
    def ok(self) -> bool:
        """Whether every request of the changeset succeeded (and was committed)."""
        return self.status < 400

    @property
    def error(self) -> tuple[str, str]:
        """The Dataverse error code and message of a failed changeset."""
        error = self.body.get("error") if isinstance(self.body.get("error"), dict) else {}
        assert isinstance(error, dict)
        return str(error.get("code") or ""), str(error.get("message") or "")


def service_requests(changesets: Sequence[Sequence[Request]]) -> int:
    """What a ``$batch`` of ``changesets`` counts against the service's request limit.

    Every request inside a ``$batch``, changeset contents included, counts toward the service
    protection limits (reference 5.3, 13.11). The reference does not say whether the ``$batch``
    request itself counts too; it is an HTTP request like any other, so it is counted, as the
    emulator does. A changeset stops at its failing request, so this is the most it can count.
    """
    return 1 + sum(len(changeset) for changeset in changesets)


def encode(changesets: Sequence[Sequence[Request]], base_url: str) -> tuple[str, bytes]:
    """The Content-Type (with its boundary) and CRLF body of a ``$batch`` of ``changesets``."""
    batch = f"batch_{uuid.uuid4().hex}"
    lines: list[str] = []
    content_id = 0
    for changeset in changesets:
        boundary = f"changeset_{uuid.uuid4().hex}"
        lines += [f"--{batch}", f"Content-Type: multipart/mixed; boundary={boundary}", ""]
        for request in changeset:
            content_id += 1
            lines += [
                f"--{boundary}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                f"Content-ID: {content_id}",
                "",
                f"{request.method} {base_url}{request.path} HTTP/1.1",
                "Content-Type: application/json; type=entry",
                *(f"{name}: {value}" for name, value in request.headers.items()),
                "",
                json.dumps(request.body if request.body is not None else {}, ensure_ascii=False),
            ]
        lines.append(f"--{boundary}--")
    lines += [f"--{batch}--", ""]
    return f"multipart/mixed; boundary={batch}", _CRLF.join(lines).encode("utf-8")


def decode(content_type: str, body: bytes, sizes: Sequence[int]) -> list[Part]:
    """One :class:`Part` per changeset of a ``$batch`` response, in request order.

    ``sizes`` are the request counts of the changesets as :func:`encode` numbered them, so that
    a failure's Content-ID tells which request of its changeset failed.
    """
    firsts = [1 + sum(sizes[:number]) for number in range(len(sizes))]
    parts: list[Part] = []
    for number, raw in enumerate(_split(body, _boundary(content_type))):
        headers, content = _mime(raw)
        kind = headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            inner = [_response(*_mime(part)) for part in _split(content, _boundary(kind))]
            failed = [part for part in inner if not part.ok]
            parts.append(failed[0] if failed else Part(200, {}))
        else:
            part = _response(headers, content)
            if part.request_index is not None and number < len(firsts):
                part = Part(part.status, part.body, part.request_index - firsts[number])
            parts.append(part)
    return parts


def _mime(part: bytes) -> tuple[dict[str, str], bytes]:
    head, _, content = part.partition(b"\r\n\r\n")
    return _headers(head), content


def _response(headers: dict[str, str], content: bytes) -> Part:
    """An inner response; ``request_index`` holds its Content-ID until the caller rebases it."""
    content_id = headers.get("content-id", "")
    text = content.decode("utf-8")
    head, _, payload = text.partition("\r\n\r\n")
    status_line = head.split("\r\n", 1)[0]
    match = _STATUS_LINE.match(status_line)
    if match is None:
        raise ValueError(f"a $batch response part has no status line: {status_line[:80]!r}")
    parsed: Any = {}
    if payload.strip():
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = {"error": {"code": "", "message": payload.strip()[:500]}}
    return Part(
        int(match.group(1)),
        parsed if isinstance(parsed, dict) else {},
        int(content_id) if content_id.isdigit() else None,
    )


def _boundary(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ValueError(f"the $batch response has no boundary: {content_type!r}")
    return match.group(1) or match.group(2)


def _split(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode()
    parts: list[bytes] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(chunk.removeprefix(b"\r\n").removesuffix(b"\r\n"))
    return parts


def _headers(head: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in head.decode("utf-8").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            found[name.strip().lower()] = value.strip()
    return found
