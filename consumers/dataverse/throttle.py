"""Adaptive concurrency and pacing for Dataverse writes, within the service protection limits.

Dataverse limits each user per web server to 52 concurrent requests, 6,000 requests and 20 minutes
of execution time per sliding 5-minute window, answering 429 with ``Retry-After`` beyond them, and
recommends at most ``x-ms-dop-hint`` parallel requests (reference section 7). A :class:`Throttle`
shared by a pool of writer threads keeps the client just under those limits:

* a 429 (or a 503 carrying ``Retry-After``) pauses *every* worker until the moment the service
  named, so one refusal is not followed by a storm of more refusals;
* the number of requests in flight stays at or below the latest ``x-ms-dop-hint``;
* the concurrency limit adapts by AIMD: slow start until the first refusal, then one more slot per
  window of successes while the pool is full, and a multiplicative cut on a 429 for concurrency,
  a 503, or a window 429 that found the pool full — once per round trip: refusals of requests
  sent before the cut are the same congestion, not new evidence. The limit then stays below the
  refused level for ``probe_interval_s`` and grows slowly above it, because every probe of a
  concurrency limit costs a pause of every worker;
* a 429 for a window limit (or one whose code does not say) also paces request starts at a
  little under the success rate measured over the service's 5-minute window — the rate a sliding
  window sustains — and the pace grows slowly while it holds the workers back. Without it, a
  window-limited client bursts into every slot the window frees and is refused after each burst.

The pace and the success rate behind it are counted in *weight*: requests as the service counts
them against its request limit, not HTTP requests. Each request inside a ``$batch`` counts
(reference 5.3, 13.11), so a ``$batch`` weighs 1 + its inner requests, while a read or a
``CreateMultiple``/``UpdateMultiple`` weighs 1. Callers pass it: ``acquire(weight=n)``,
``run(operation, weight=n)`` (1 by default). Counted in HTTP requests, a pace learned from
``$batch``es of a hundred requests would hold the bulk requests after them to one a second.
Concurrency is counted in HTTP requests: a ``$batch`` takes one of the 52 slots.

:class:`RetryPolicy` and :meth:`Throttle.run` retry transient failures (429, 502, 503, 504,
timeouts, dropped connections) a bounded number of times: the service's ``Retry-After`` first,
otherwise exponential backoff with full jitter.

The clock and sleep are injectable, so tests and simulations run in virtual time.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable

import httpx

T = TypeVar("T")

DOP_HINT_HEADER = "x-ms-dop-hint"
SERVICE_WINDOW_S = 300.0
"""The sliding window of the service protection limits (reference 7.1)."""

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class Outcome(StrEnum):
    """How one request ended, as far as capacity and retrying are concerned."""

    SUCCESS = "success"
    """The service did the work."""
    REJECTED = "rejected"
    """The service answered with an error that repeating will not fix (400, 404, 412…)."""
    THROTTLED = "throttled"
    """429: a limit over the window (requests, execution time), or one the code does not name."""
    CONCURRENCY_LIMITED = "concurrency_limited"
    """429 for too many concurrent requests (0x80072326, 0x80072327)."""
    BUSY = "busy"
    """503: the service is overloaded."""
    TRANSIENT = "transient"
    """502, 504, a timeout or a dropped connection: the same request may succeed later."""


CONCURRENCY_CODES = frozenset({"0x80072326", "0x80072327"})
"""Dataverse codes of a 429 for concurrency, not for the window (reference 7.2, 7.4)."""

_REFUSALS = frozenset({Outcome.THROTTLED, Outcome.CONCURRENCY_LIMITED})
_CONGESTION = _REFUSALS | {Outcome.BUSY}
_RETRYABLE = _CONGESTION | {Outcome.TRANSIENT}


@runtime_checkable
class HttpFailure(Protocol):
    """An error that carries the HTTP status and ``Retry-After`` (seconds) of a response.

    ``consumers.dataverse.errors.DataverseError`` is one; this module needs no more of it.
    """

    @property
    def status(self) -> int:
        """The HTTP status of the response."""
        ...

    @property
    def retry_after(self) -> float | None:
        """The response's ``Retry-After`` in seconds, ``None`` if it had none."""
        ...


def outcome_of_status(status: int, code: str = "") -> Outcome:
    """The outcome an HTTP status (and the Dataverse error code, if known) stands for."""
    if status < 400:
        return Outcome.SUCCESS
    if status == 429:
        concurrency = code.lower() in CONCURRENCY_CODES
        return Outcome.CONCURRENCY_LIMITED if concurrency else Outcome.THROTTLED
    if status == 503:
        return Outcome.BUSY
    if status in (502, 504):
        return Outcome.TRANSIENT
    return Outcome.REJECTED


def outcome_of_error(error: BaseException) -> tuple[Outcome, float | None]:
    """The outcome and ``Retry-After`` of a failed request, from the error it raised.

    An error with a ``status`` is judged by it; one with a boolean ``transient`` attribute says
    itself whether it is worth retrying; timeouts and connection errors (builtin or httpx) are
    transient; anything else is rejected.
    """
    if isinstance(error, HttpFailure) and isinstance(error.status, int):
        code = getattr(error, "code", "")
        return outcome_of_status(error.status, code if isinstance(code, str) else ""), (
            error.retry_after
        )
    transient = getattr(error, "transient", None)
    if isinstance(transient, bool):
        return (Outcome.TRANSIENT if transient else Outcome.REJECTED), None
    if isinstance(error, _TRANSPORT_ERRORS):
        return Outcome.TRANSIENT, None
    return Outcome.REJECTED, None


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds from response headers; ``None`` if absent or not a number."""
    value = _header(headers, "Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: Dataverse sends seconds (reference 7.3)
    return max(0.0, seconds) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class ThrottleSettings:
    """How a :class:`Throttle` adapts; the defaults suit Dataverse's documented limits."""

    initial_limit: int = 4
    """Concurrent requests at the start (Microsoft: start low, raise slowly)."""
    min_limit: int = 1
    max_limit: int = 52
    """Never more in flight than this, whatever the dop hint says (the documented 52)."""
    increase: float = 1.0
    """Slots added per window of ``limit`` successes after the first refusal."""
    decrease: float = 0.7
    """The limit is multiplied by this on a 429 or 503."""
    probe_interval_s: float = 60.0
    """The limit stays below the level last refused until this long after the refusal."""
    probe_slowdown: float = 8.0
    """Growth at or above the last refused level is then this many times slower."""
    rate_decrease: float = 0.9
    """After a refusal, starts are paced at this share of the measured success rate (weight
    of successful requests per second)."""
    rate_growth_per_s: float = 0.02
    """The pace then grows by this fraction per second while the client uses it."""
    min_rate_per_s: float = 0.1
    """The pace never falls below this much weight per second."""
    rate_window_s: float = SERVICE_WINDOW_S
    """The success rate that sets the pace is measured over this long."""
    display_window_s: float = 10.0
    """``requests_per_s`` in :class:`ThrottleStats` is measured over this long."""
    pause_without_retry_after_s: float = 1.0
    """How long a 429 that names no ``Retry-After`` pauses every worker."""
    max_pause_s: float = 900.0
    """A longer ``Retry-After`` is taken as this (a guard against nonsense headers)."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError("need 1 <= min_limit <= initial_limit <= max_limit")
        if not (0 < self.decrease < 1 and 0 < self.rate_decrease <= 1):
            raise ValueError("decrease and rate_decrease must be in (0, 1)")
        if self.increase <= 0 or self.probe_slowdown < 1 or self.rate_window_s <= 0:
            raise ValueError("increase and rate_window_s must be positive, probe_slowdown >= 1")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures: ``Retry-After`` first, else full-jitter backoff.

    A 429 with ``Retry-After`` is the service saying when to come back, so it has its own, larger
    bound; every other retryable failure counts against ``max_attempts``.
    """

    max_attempts: int = 5
    """Attempts in all for failures without ``Retry-After`` (502, 503, 504, timeouts, resets)."""
    max_throttled_attempts: int = 20
    """Attempts in all for 429s (and 503s) that carry ``Retry-After``."""
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after failed attempt ``attempt``."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return rng.uniform(0.0, ceiling)  # full jitter: retries of a burst spread out

    def allows(self, outcome: Outcome, retry_after: float | None, *, told: int, other: int) -> bool:
        """Whether a request that just ended with ``outcome`` may be sent again.

        ``told`` attempts so far ended in a refusal with ``Retry-After``, ``other`` in anything
        else (the first attempt included).
        """
        if outcome not in _RETRYABLE:
            return False
        if retry_after is not None and outcome in _CONGESTION:
            return told < self.max_throttled_attempts
        return other < self.max_attempts


@dataclass(frozen=True)
class ThrottleStats:
    """A snapshot of a :class:`Throttle` for progress displays and tests."""

    limit: int
    """Concurrent requests allowed now."""
    in_flight: int
    dop_hint: int | None
    """The latest ``x-ms-dop-hint``, ``None`` before any response carried one."""
    rate_limit_per_s: float | None
    """The pace of request starts in weight per second (requests as the service counts them),
    ``None`` while unpaced (before the first refusal)."""
    paused_for_s: float
    """Seconds until a ``Retry-After`` pause ends, 0 when not paused."""
    requests: int
    """Requests that ended, whatever their outcome."""
    succeeded: int
    throttled: int
    """429s for the window limits (or not saying which limit)."""
    concurrency_limited: int
    """429s for the concurrency limit."""
    busy: int
    """503s."""
    transient: int
    rejected: int
    retries: int
    decreases: int
    """How many times the limit was cut."""
    requests_per_s: float
    """Requests that ended per second, over the display window."""
    weight_succeeded: float = 0.0
    """The weight of the requests that succeeded: requests as the service counts them."""


class _RateMeter:
    """Weight of events per second over a sliding window, in bounded memory (60 buckets per
    window)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._bucket_s = window_s / 60
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]
        self._total = 0.0
        self._since: float | None = None

    def start(self, now: float) -> None:
        if self._since is None:
            self._since = now

    def add(self, now: float, weight: float = 1.0) -> None:
        self.start(now)
        if self._buckets and now - self._buckets[-1][0] < self._bucket_s:
            self._buckets[-1][1] += weight
        else:
            self._buckets.append([now, weight])
        self._total += weight

    def rate(self, now: float) -> float:
        while self._buckets and now - self._buckets[0][0] >= self._window_s:
            self._total -= self._buckets.popleft()[1]
        if self._since is None:
            return 0.0
        # Before a whole window has passed, the rate is over the time since the first request.
        span = min(self._window_s, now - self._since)
        return self._total / span if span > 0 else 0.0


class Slot:
    """Permission for one request of ``weight``; release it with the request's outcome.

    Used as a context manager it releases itself: with the outcome of an exception leaving the
    block, else with what :meth:`observe_response` saw, else as a success.
    """

    def __init__(
        self, throttle: Throttle, epoch: int, fills: int, started_at: float, weight: float = 1.0
    ) -> None:
        self._throttle = throttle
        self.epoch = epoch
        self.fills = fills
        self.started_at = started_at
        self.weight = weight
        self._seen: tuple[Outcome, float | None] | None = None
        self.released = False

    def observe_response(
        self, status: int, headers: Mapping[str, str], *, code: str = ""
    ) -> Outcome:
        """Note the response's status, headers (dop hint) and Dataverse error ``code``; the
        slot's outcome follows them."""
        outcome = self._throttle.observe_response(status, headers, code=code)
        self._seen = (outcome, retry_after_of(headers))
        return outcome

    def release(
        self, outcome: Outcome = Outcome.SUCCESS, *, retry_after: float | None = None
    ) -> None:
        """Give the slot back; the throttle adapts to ``outcome``. Releasing twice is an error."""
        if self.released:
            raise RuntimeError("slot released twice")
        self.released = True
        self._throttle._release(self, outcome, retry_after)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.released:
            return
        if exc is not None:
            outcome, retry_after = self._throttle._classify(exc)
            self.release(outcome, retry_after=retry_after)
        elif self._seen is not None:
            self.release(self._seen[0], retry_after=self._seen[1])
        else:
            self.release(Outcome.SUCCESS)


class Throttle:
    """Admits requests of many threads within the adaptive limits described in the module.

    Typical use by a writer's worker thread::

        result = throttle.run(lambda: client.post(path, body))
        parts = throttle.run(send_batch, weight=1 + inner_requests)

    or, to handle retries itself::

        with throttle.acquire() as slot:
            response = client.request("POST", path, json_body=body)
            slot.observe_response(response.status_code, response.headers)
    """

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        classify: Callable[[BaseException], tuple[Outcome, float | None]] = outcome_of_error,
    ) -> None:
        self.settings = settings or ThrottleSettings()
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._classify = classify
        self._lock = threading.Condition()
        self._limit = float(self.settings.initial_limit)
        self._refused_at: float | None = None  # the limit when the service last refused
        self._cut_at = -math.inf
        self._dop_hint: int | None = None
        self._in_flight = 0
        self._fills = 0  # how many times the pool has been full
        self._epoch = 0
        self._paused_until = -math.inf
        self._rate: float | None = None
        self._rate_updated_at = 0.0
        self._next_start = -math.inf
        self._successes = _RateMeter(self.settings.rate_window_s)
        self._ended = _RateMeter(self.settings.display_window_s)
        self._counts = dict.fromkeys(Outcome, 0)
        self._weight_succeeded = 0.0
        self._retries = 0
        self._decreases = 0

    # -- admitting ------------------------------------------------------------------------

    def acquire(self, weight: float = 1.0) -> Slot:
        """Wait until a request may start and return its slot.

        ``weight`` is what the request counts against the service's request limit (a ``$batch``:
        1 + its inner requests); the pace holds the next start back by ``weight / pace``.
        """
        _check_weight(weight)
        while True:
            with self._lock:
                slot = self._admit(weight)
                if slot is not None:
                    return slot
                wait = self._wait_locked()
                if wait is None:
                    self._lock.wait()  # a release or a higher limit notifies
                    continue
            self._sleep(wait)

    def try_acquire(self, weight: float = 1.0) -> Slot | None:
        """A slot for a request of ``weight`` if one may start now, else ``None`` (see
        :meth:`wait_s`)."""
        _check_weight(weight)
        with self._lock:
            return self._admit(weight)

    def wait_s(self) -> float | None:
        """Seconds until a pause or the pace lets the next request start; ``None`` when only a
        release can (every slot is taken); 0 when a request may start now."""
        with self._lock:
            return self._wait_locked() if self._admit_blocked() else 0.0

    def _admit(self, weight: float) -> Slot | None:
        if self._admit_blocked():
            return None
        now = self._clock()
        self._successes.start(now)
        slot = Slot(self, self._epoch, self._fills, now, weight)
        self._in_flight += 1
        if self._in_flight >= self._current_limit():
            self._fills += 1
        if self._rate is not None:
            # A request starts when the pace has paid for the one before; its own weight then
            # holds the next one back. Idle time does not bank a burst.
            self._next_start = max(self._next_start, now) + weight / self._rate
        return slot

    def _admit_blocked(self) -> bool:
        now = self._clock()
        return (
            now < self._paused_until
            or now < self._next_start
            or self._in_flight >= self._current_limit()
        )

    def _wait_locked(self) -> float | None:
        now = self._clock()
        timed = max(self._paused_until, self._next_start) - now
        if timed > 0:
            return timed
        return None if self._in_flight >= self._current_limit() else 0.0

    def _current_limit(self) -> int:
        return max(self.settings.min_limit, min(int(self._limit), self._cap()))

    def _cap(self) -> int:
        cap = self.settings.max_limit
        if self._dop_hint is not None:
            cap = min(cap, max(self.settings.min_limit, self._dop_hint))
        return cap

    # -- learning ---------------------------------------------------------------------------

    def observe_response(
        self, status: int, headers: Mapping[str, str], *, code: str = ""
    ) -> Outcome:
        """Learn from any response: ``x-ms-dop-hint`` caps the limit; ``Retry-After`` on a 429
        or 503 pauses every worker. Returns the outcome the status stands for.

        It may be called for every response (an httpx response hook does that) besides the
        slot's own outcome; it counts nothing, so nothing is counted twice.
        """
        outcome = outcome_of_status(status, code)
        hint = _header(headers, DOP_HINT_HEADER)
        with self._lock:
            if hint is not None and hint.strip().isdigit() and int(hint) > 0:
                self._dop_hint = int(hint)
                self._limit = min(self._limit, float(self._cap()))
            if outcome in _CONGESTION:
                self._pause(outcome, retry_after_of(headers))
            self._lock.notify_all()
        return outcome

    def _release(self, slot: Slot, outcome: Outcome, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            saturated = self._fills > slot.fills  # the pool was full while this one ran
            self._in_flight -= 1
            self._counts[outcome] += 1
            self._ended.add(now)
            if outcome in _CONGESTION:
                self._pause(outcome, retry_after)
                if slot.epoch == self._epoch:  # the first refusal since the last cut
                    self._cut(now, outcome, saturated=saturated)
            elif outcome is Outcome.SUCCESS:
                self._successes.add(now, slot.weight)
                self._weight_succeeded += slot.weight
                if saturated:  # a limit the workers do not reach proves nothing by growing
                    self._grow_limit(now)
                self._grow_rate(now, paced=now <= self._next_start)
            self._lock.notify_all()

    def _pause(self, outcome: Outcome, retry_after: float | None) -> None:
        if retry_after is None:
            if outcome not in _REFUSALS:
                return  # a 503 without Retry-After slows the limit, not the whole pool
            retry_after = self.settings.pause_without_retry_after_s
        until = self._clock() + min(retry_after, self.settings.max_pause_s)
        self._paused_until = max(self._paused_until, until)

    def _cut(self, now: float, outcome: Outcome, *, saturated: bool) -> None:
        settings = self.settings
        self._epoch += 1
        self._decreases += 1
        # A window limit refusing a pool that the pace holds below its limit says nothing
        # about concurrency; cutting it anyway would ratchet the limit down to one.
        if saturated or outcome is not Outcome.THROTTLED:
            current = float(self._current_limit())
            self._refused_at = current
            self._cut_at = now
            self._limit = max(float(settings.min_limit), current * settings.decrease)
        if outcome is not Outcome.THROTTLED:
            return  # fewer in flight is the whole answer to concurrency and overload
        measured = self._successes.rate(now)
        pace = max(settings.min_rate_per_s, settings.rate_decrease * measured)
        self._rate = pace if self._rate is None else min(self._rate, pace)
        self._rate_updated_at = now

    def _grow_limit(self, now: float) -> None:
        settings = self.settings
        ceiling = float(self._cap())
        if self._refused_at is None:
            self._limit += 1.0  # slow start: the limit doubles every round trip
        else:
            below_refused = self._refused_at - 1
            step = settings.increase / max(self._limit, 1.0)
            if self._limit >= below_refused:
                step /= settings.probe_slowdown
            self._limit += step
            if now - self._cut_at < settings.probe_interval_s:
                # Each probe of a refused level costs a pause of every worker; probe rarely.
                ceiling = min(ceiling, max(float(settings.min_limit), below_refused))
        self._limit = min(self._limit, ceiling)

    def _grow_rate(self, now: float, *, paced: bool) -> None:
        if self._rate is None:
            return
        if paced:  # the pace grows only while it is what holds the workers back
            elapsed = max(0.0, now - self._rate_updated_at)
            self._rate *= (1.0 + self.settings.rate_growth_per_s) ** elapsed
        self._rate_updated_at = now

    # -- retrying ---------------------------------------------------------------------------

    def run(
        self, operation: Callable[[], T], *, retry: RetryPolicy | None = None, weight: float = 1.0
    ) -> T:
        """Call ``operation`` in a slot of ``weight`` (see :meth:`acquire`), retrying transient
        failures; return its result.

        A refusal with ``Retry-After`` is waited out by the pause every worker observes; other
        retryable failures wait a full-jitter backoff in this thread only. The last error is
        raised when the policy allows no more attempts, and at once for a non-retryable one.
        """
        policy = retry or self.retry
        told, other = 0, 0
        while True:
            slot = self.acquire(weight)
            try:
                result = operation()
            except Exception as error:
                outcome, retry_after = self._classify(error)
                slot.release(outcome, retry_after=retry_after)
                told_now = retry_after is not None and outcome in _CONGESTION
                told, other = (told + 1, other) if told_now else (told, other + 1)
                if not policy.allows(outcome, retry_after, told=told, other=other):
                    raise
                with self._lock:
                    self._retries += 1
                if not told_now:  # a Retry-After is waited out by the pause release set
                    self._sleep(policy.delay(other, None, self._rng))
                continue
            except BaseException:
                slot.release(Outcome.REJECTED)
                raise
            slot.release(Outcome.SUCCESS)
            return result

    # -- figures ----------------------------------------------------------------------------

    def stats(self) -> ThrottleStats:
        """The current limit, pause, pace and counts."""
        with self._lock:
            now = self._clock()
            counts = self._counts
            return ThrottleStats(
                limit=self._current_limit(),
                in_flight=self._in_flight,
                dop_hint=self._dop_hint,
                rate_limit_per_s=self._rate,
                paused_for_s=max(0.0, self._paused_until - now),
                requests=sum(counts.values()),
                succeeded=counts[Outcome.SUCCESS],
                throttled=counts[Outcome.THROTTLED],
                concurrency_limited=counts[Outcome.CONCURRENCY_LIMITED],
                busy=counts[Outcome.BUSY],
                transient=counts[Outcome.TRANSIENT],
                rejected=counts[Outcome.REJECTED],
                retries=self._retries,
                decreases=self._decreases,
                requests_per_s=self._ended.rate(now),
                weight_succeeded=self._weight_succeeded,
            )


def _check_weight(weight: float) -> None:
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"a request's weight must be positive, not {weight!r}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not isinstance(headers, httpx.Headers):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
