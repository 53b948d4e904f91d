"""Service protection API limits (reference section 7), per client over a sliding window.

Every client id is its own "user". Over the last ``window_s / time_scale`` real seconds a client
may send ``max_requests`` requests and use ``max_execution_ms`` of modelled execution time, and it
may have ``max_concurrent`` requests in flight. Execution time is modelled, not measured: each
request costs ``base_cost_ms`` plus ``per_record_cost_ms`` per record it touches, so the limit
binds the way it does in a tenant regardless of how fast this machine is.

A throttled request still counts as a request, which is how "continued sending makes the wait
longer" (7.2) comes about; it costs no execution time, because it never ran.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dataverse_emulator.config import EmulatorConfig, Limits
from dataverse_emulator.errors import DataverseError

REQUESTS_EXCEEDED = "0x80072322"
EXECUTION_TIME_EXCEEDED = "0x80072321"
CONCURRENCY_EXCEEDED = "0x80072326"

DOP_HINT_HEADER = "x-ms-dop-hint"
BURST_REMAINING_HEADER = "x-ms-ratelimit-burst-remaining-xrm-requests"
TIME_REMAINING_HEADER = "x-ms-ratelimit-time-remaining-xrm-requests"

_BUCKETS_PER_WINDOW = 600


@dataclass
class ClientStats:
    """What one client has done since the emulator started."""

    requests: int = 0
    throttled: int = 0
    execution_ms: float = 0.0
    concurrent: int = 0
    concurrent_peak: int = 0

    def as_dict(self) -> dict[str, int | float]:
        """The statistics as plain JSON values (without the momentary ``concurrent``)."""
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "execution_ms": self.execution_ms,
            "concurrent_peak": self.concurrent_peak,
        }


class _Series:
    """Amounts over time in the sliding window, oldest first.

    Events closer together than one bucket (1/600 of the window) share an entry that leaves the
    window with its last event, so memory stays bounded under any load and a client is never let
    in early; at worst it waits one bucket longer than an exact count would ask.
    """

    def __init__(self, length_s: float) -> None:
        self._length_s = length_s
        self._bucket_s = length_s / _BUCKETS_PER_WINDOW
        self._entries: deque[list[float]] = deque()  # [first_at, last_at, amount]
        self.total = 0.0

    def add(self, now: float, amount: float) -> None:
        if self._entries and now - self._entries[-1][0] < self._bucket_s:
            last = self._entries[-1]
            last[1] = now
            last[2] += amount
        else:
            self._entries.append([now, now, amount])
        self.total += amount

    def slide(self, now: float) -> None:
        # An entry counts while less than one window has passed since its last event.
        while self._entries and now - self._entries[0][1] >= self._length_s:
            self.total -= self._entries.popleft()[2]
        if not self._entries:
            self.total = 0.0  # drop accumulated float error

    def seconds_until_below(self, limit: float, now: float) -> float:
        """Real seconds until the total in the window is below ``limit``."""
        total, wait = self.total, 0.0
        for _, last_at, amount in self._entries:
            if total < limit:
                break
            total -= amount
            wait = last_at + self._length_s - now
        return wait


class _Window:
    """One client's requests and execution milliseconds in the sliding window."""

    def __init__(self, length_s: float) -> None:
        self.requests = _Series(length_s)
        self.execution_ms = _Series(length_s)

    def slide(self, now: float) -> None:
        self.requests.slide(now)
        self.execution_ms.slide(now)


class Ticket:
    """One admitted request: charge what it does, then release it when its response is sent."""

    def __init__(self, protection: ServiceProtection, client_id: str) -> None:
        self.client_id = client_id
        self._protection = protection
        self._records = 0
        self._released = False

    def charge(self, requests: int = 0, records: int = 0) -> None:
        """Count ``requests`` more requests (a ``$batch``'s inner ones) and ``records`` touched.

        Requests enter the window now; record costs enter it with the request's execution time
        when the ticket is released.
        """
        if requests:
            self._protection._add_requests(self.client_id, requests)
        self._records += records

    def release(self) -> None:
        """Finish the request: it leaves the concurrency count and its execution time is booked.

        Releasing twice has no further effect.
        """
        if self._released:
            return
        self._released = True
        self._protection._finish(self.client_id, self._records)

    def headers(self) -> dict[str, str]:
        """``x-ms-dop-hint`` and the rate-limit debug headers for this client, as of now."""
        return self._protection.headers(self.client_id)


class ServiceProtection:
    """The per-client limits of one emulated web server; ``admit`` throttles with 429s."""

    def __init__(
        self, config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits: Limits = config.limits
        self._enabled = config.limits_enabled
        self._window_s = config.limits.window_s / config.time_scale
        self._clock = clock
        self._lock = threading.Lock()  # the app may call charge/release from worker threads
        self._windows: dict[str, _Window] = {}
        self._stats: dict[str, ClientStats] = {}

    @property
    def dop_hint(self) -> int:
        """The recommended degree of parallelism sent as ``x-ms-dop-hint`` (reference 7.6)."""
        return self._limits.dop_hint

    def admit(self, client_id: str) -> Ticket:
        """Admit one request of ``client_id`` or raise the documented 429 ``DataverseError``.

        The concurrency limit is checked first and answers at once; then the request count and
        the execution time over the window. ``Retry-After`` is the whole number of real seconds
        after which, if the client sends nothing meanwhile, its next request is admitted.
        """
        with self._lock:
            now = self._clock()
            window = self._window(client_id)
            stats = self._stats.setdefault(client_id, ClientStats())
            window.slide(now)
            stats.requests += 1
            window.requests.add(now, 1)
            if self._enabled:
                error = self._throttle(window, stats, now)
                if error is not None:
                    stats.throttled += 1
                    raise error
            stats.concurrent += 1
            stats.concurrent_peak = max(stats.concurrent_peak, stats.concurrent)
        return Ticket(self, client_id)

    def headers(self, client_id: str) -> dict[str, str]:
        """``x-ms-dop-hint`` plus the remaining requests and execution ms in the window."""
        with self._lock:
            window = self._window(client_id)
            window.slide(self._clock())
            burst = max(0, self._limits.max_requests - round(window.requests.total))
            remaining_ms = max(0.0, self._limits.max_execution_ms - window.execution_ms.total)
        return {
            DOP_HINT_HEADER: str(self._limits.dop_hint),
            BURST_REMAINING_HEADER: str(burst),
            TIME_REMAINING_HEADER: f"{remaining_ms:.2f}",
        }

    def stats(self) -> dict[str, dict[str, int | float]]:
        """Per client id: ``requests``, ``throttled``, ``execution_ms``, ``concurrent_peak``."""
        with self._lock:
            return {client: s.as_dict() for client, s in self._stats.items()}

    def _throttle(self, window: _Window, stats: ClientStats, now: float) -> DataverseError | None:
        limits = self._limits
        if stats.concurrent >= limits.max_concurrent:
            return _too_many(
                CONCURRENCY_EXCEEDED,
                f"Number of concurrent requests exceeded the limit of {limits.max_concurrent}.",
                1,
            )
        # The request being admitted is already in the window, so the previous ones must be fewer.
        over_requests = window.requests.total - 1 >= limits.max_requests
        over_time = window.execution_ms.total >= limits.max_execution_ms
        if not (over_requests or over_time):
            return None
        # Waiting must clear both limits, so the next request is not throttled by the other one.
        wait = max(
            window.requests.seconds_until_below(limits.max_requests, now),
            window.execution_ms.seconds_until_below(limits.max_execution_ms, now),
        )
        retry_after = max(1, math.ceil(wait))
        window_s = f"{limits.window_s:g}"
        if over_requests:
            return _too_many(
                REQUESTS_EXCEEDED,
                f"Number of requests exceeded the limit of {limits.max_requests} over time "
                f"window of {window_s} seconds.",
                retry_after,
            )
        return _too_many(
            EXECUTION_TIME_EXCEEDED,
            "Combined execution time of incoming requests exceeded limit of "
            f"{limits.max_execution_ms:,} milliseconds over time window of {window_s} seconds. "
            "Decrease number of concurrent requests or reduce the duration of requests and try "
            "again later.",
            retry_after,
        )

    def _window(self, client_id: str) -> _Window:
        window = self._windows.get(client_id)
        if window is None:
            window = self._windows[client_id] = _Window(self._window_s)
        return window

    def _add_requests(self, client_id: str, count: int) -> None:
        with self._lock:
            self._window(client_id).requests.add(self._clock(), count)
            self._stats.setdefault(client_id, ClientStats()).requests += count

    def _finish(self, client_id: str, records: int) -> None:
        cost = self._limits.base_cost_ms + records * self._limits.per_record_cost_ms
        with self._lock:
            self._window(client_id).execution_ms.add(self._clock(), cost)
            stats = self._stats[client_id]
            stats.execution_ms += cost
            stats.concurrent -= 1


def _too_many(code: str, message: str, retry_after: int) -> DataverseError:
    return DataverseError(429, code, message, {"Retry-After": str(retry_after)})
