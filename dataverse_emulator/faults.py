"""Injected faults for reliability tests: throttling, gateway errors, timeouts, dropped connections.

A spec such as ``"429:0.05,503:0.02,timeout:0.01,reset:0.01"`` gives each kind the probability
that a Web API request suffers it. Draws come from one RNG seeded with ``fault_seed``, so the same
seed and the same sequence of requests fail the same way every run.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.types import Receive, Send

from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.limits import REQUESTS_EXCEEDED

FAULT_KINDS = ("429", "502", "503", "504", "timeout", "reset")
_GATEWAY_CODE = "0x0"  # the front end answers these, not Dataverse, so no Dataverse code applies
_GATEWAY_MESSAGES = {
    502: "Bad Gateway: the front end received an invalid response from the web server.",
    503: "Service Unavailable: the web server is temporarily unable to handle the request.",
    504: "Gateway Timeout: the web server did not answer the front end in time.",
}
_THROTTLE_RETRY_AFTER_S = 1
_RESET_DECLARED_LENGTH = 1024  # promised, never delivered, so the client sees a broken body


def parse_fault_spec(spec: str | None) -> tuple[tuple[str, float], ...]:
    """``"429:0.05,reset:0.01"`` → ``(("429", 0.05), ("reset", 0.01))``.

    Raises ``ValueError`` naming the offending part for an unknown kind, a probability that is
    not a number in [0, 1], a kind given twice, or probabilities adding up to more than 1.
    """
    if spec is None or not spec.strip():
        return ()
    parsed: dict[str, float] = {}
    for raw in spec.split(","):
        part = raw.strip()
        kind, sep, value = (s.strip() for s in part.partition(":"))
        if not sep:
            raise ValueError(f"fault {part!r}: expected KIND:PROBABILITY, e.g. 503:0.02")
        if kind not in FAULT_KINDS:
            kinds = ", ".join(FAULT_KINDS)
            raise ValueError(f"fault {part!r}: unknown kind {kind!r}; use one of {kinds}")
        try:
            probability = float(value)
        except ValueError:
            raise ValueError(f"fault {part!r}: probability {value!r} is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"fault {part!r}: probability must be between 0 and 1")
        if kind in parsed:
            raise ValueError(f"fault {part!r}: kind {kind!r} is given twice")
        parsed[kind] = probability
    total = sum(parsed.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"faults {spec!r}: probabilities add up to {total:g}, more than 1")
    return tuple(parsed.items())


@dataclass(frozen=True)
class Fault:
    """One injected failure; ``respond`` plays it out on an ASGI connection."""

    kind: str
    timeout_s: float = 0.0
    max_requests: int = 6000
    window_s: float = 300.0

    async def respond(self, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        """Send the fault's response, with ``headers`` added to any complete response.

        ``reset`` starts a response and abandons it, so the server closes the connection midway;
        ``timeout`` holds the request for ``timeout_s`` (or until the client gives up), then 504.
        """
        if self.kind == "reset":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(_RESET_DECLARED_LENGTH).encode())],
                }
            )
            await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})
            return
        if self.kind == "timeout":
            if await _client_left_within(receive, self.timeout_s):
                return
            error = _gateway_error(504)
        elif self.kind == "429":
            error = DataverseError(
                429,
                REQUESTS_EXCEEDED,
                f"Number of requests exceeded the limit of {self.max_requests} over time window "
                f"of {self.window_s:g} seconds.",
                {"Retry-After": str(_THROTTLE_RETRY_AFTER_S)},
            )
        else:
            error = _gateway_error(int(self.kind))
        body = json.dumps(error.body()).encode()
        raw_headers = [
            (b"content-type", b"application/json; odata.metadata=minimal"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


class FaultInjector:
    """Draws, per Web API request, whether and how it fails, from a seeded RNG."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._spec = parse_fault_spec(config.faults)
        self._rng = random.Random(config.fault_seed)
        self._lock = threading.Lock()
        self._timeout_s = config.fault_timeout_s / config.time_scale
        self._limits = config.limits

    @property
    def active(self) -> bool:
        """Whether any fault has a probability above zero."""
        return any(p > 0 for _, p in self._spec)

    def draw(self) -> Fault | None:
        """The fault for the next request, or ``None``; exactly one RNG draw per call."""
        with self._lock:
            roll = self._rng.random()
        threshold = 0.0
        for kind, probability in self._spec:
            threshold += probability
            if roll < threshold:
                return Fault(
                    kind,
                    timeout_s=self._timeout_s,
                    max_requests=self._limits.max_requests,
                    window_s=self._limits.window_s,
                )
        return None


def _gateway_error(status: int) -> DataverseError:
    return DataverseError(status, _GATEWAY_CODE, _GATEWAY_MESSAGES[status])


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the client disconnects."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except TimeoutError:
        return False
    return True
