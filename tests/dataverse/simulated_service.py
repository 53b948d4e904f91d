"""A discrete-event simulation of Dataverse's service protection limits and a pool of writers.

The simulated service admits a request unless it would exceed ``max_concurrent`` requests in
flight, ``max_requests`` in the sliding window, or ``max_execution_s`` of execution time in the
window; beyond them it answers 429 with ``Retry-After`` (whole seconds, at least 1, until the
window has room), as reference section 7 and the emulator do. A refused request still counts as a
request. Every response carries ``x-ms-dop-hint`` when the limits name one.

Two clients run against it in virtual time: the adaptive :class:`Throttle` with a pool of workers,
and a fixed-concurrency baseline whose workers each sleep their own ``Retry-After`` (what peer
tools do). Used by tests/dataverse/test_throttle.py and benchmarks/throttle_simulation.py.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from consumers.dataverse.throttle import (
    DOP_HINT_HEADER,
    Slot,
    Throttle,
    ThrottleSettings,
)

CONCURRENCY_EXCEEDED = "0x80072326"
REQUESTS_EXCEEDED = "0x80072322"  # stands for execution time too; the client treats both alike


@dataclass(frozen=True)
class ServiceLimits:
    """The limits of the simulated service and how long its requests take."""

    max_concurrent: int = 52
    max_requests: int | None = None
    """Requests per window; ``None``: unlimited."""
    max_execution_s: float | None = None
    """Execution seconds per window; ``None``: unlimited."""
    window_s: float = 300.0
    dop_hint: int | None = None
    latency_s: float = 0.2
    """Mean time to answer an admitted request (its execution time), jittered ±20%."""
    refusal_latency_s: float = 0.01
    """Time to answer a 429: the service refuses before doing any work."""

    def max_rate(self) -> float:
        """The highest sustained rate of successful requests the limits allow (per second)."""
        rates = [self.max_concurrent / self.latency_s]
        if self.max_requests is not None:
            rates.append(self.max_requests / self.window_s)
        if self.max_execution_s is not None:
            rates.append(self.max_execution_s / self.window_s / self.latency_s)
        return min(rates)


class SimulatedService:
    """The service side: admits or refuses requests at virtual times."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.in_flight = 0
        self.peak_in_flight = 0
        self._requests: deque[float] = deque()
        self._execution: deque[tuple[float, float]] = deque()
        self._execution_total = 0.0

    def admit(self, now: float) -> tuple[float, str] | None:
        """``None`` when the request is admitted, else the ``Retry-After`` and code of its 429."""
        limits = self.limits
        self._slide(now)
        self._requests.append(now)
        if self.in_flight >= limits.max_concurrent:
            return 1.0, CONCURRENCY_EXCEEDED
        waits = []
        if limits.max_requests is not None and len(self._requests) - 1 >= limits.max_requests:
            excess = len(self._requests) - limits.max_requests
            waits.append(self._requests[excess - 1] + limits.window_s - now)
        if limits.max_execution_s is not None and self._execution_total >= limits.max_execution_s:
            total = self._execution_total
            for at, seconds in self._execution:
                total -= seconds
                if total < limits.max_execution_s:
                    waits.append(at + limits.window_s - now)
                    break
        if waits:
            return float(max(1, math.ceil(max(waits)))), REQUESTS_EXCEEDED
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return None

    def finish(self, now: float, execution_s: float) -> None:
        """An admitted request ends; its execution time enters the window."""
        self.in_flight -= 1
        self._execution.append((now, execution_s))
        self._execution_total += execution_s

    def headers(self) -> dict[str, str]:
        """The headers of every response."""
        hint = self.limits.dop_hint
        return {} if hint is None else {DOP_HINT_HEADER: str(hint)}

    def _slide(self, now: float) -> None:
        window = self.limits.window_s
        while self._requests and now - self._requests[0] >= window:
            self._requests.popleft()
        while self._execution and now - self._execution[0][0] >= window:
            self._execution_total -= self._execution.popleft()[1]
        if not self._execution:
            self._execution_total = 0.0


@dataclass
class RunFigures:
    """What one simulated run achieved."""

    name: str
    duration_s: float
    measured_from_s: float
    max_rate: float
    succeeded: int = 0
    refused: int = 0
    succeeded_measured: int = 0
    refused_measured: int = 0
    peak_in_flight: int = 0

    @property
    def rate(self) -> float:
        """Successful requests per second over the measured (steady) part of the run."""
        return self.succeeded_measured / (self.duration_s - self.measured_from_s)

    @property
    def share_of_max(self) -> float:
        """``rate`` as a share of the most the limits allow."""
        return self.rate / self.max_rate

    @property
    def refused_share(self) -> float:
        """429s among all requests sent over the measured part of the run."""
        sent = self.succeeded_measured + self.refused_measured
        return self.refused_measured / sent if sent else 0.0

    def line(self) -> str:
        """One line of figures for a report."""
        return (
            f"{self.name:<28} {self.rate:8.2f} req/s = {self.share_of_max:6.1%} of "
            f"{self.max_rate:.2f}; 429s {self.refused_measured:5d} = {self.refused_share:6.2%} "
            f"of {self.succeeded_measured + self.refused_measured} sent; "
            f"peak in flight {self.peak_in_flight}"
        )


class _Loop:
    """Virtual time and a queue of timed callbacks."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, moment: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(moment, self.now), self._seq, callback))

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            moment, _, callback = heapq.heappop(self._queue)
            self.now = moment
            callback()
        self.now = end


def run_throttled(
    limits: ServiceLimits,
    *,
    workers: int = 64,
    duration_s: float,
    measure_from_s: float,
    settings: ThrottleSettings | None = None,
    codes: bool = True,
    seed: int = 1,
) -> tuple[RunFigures, Throttle]:
    """``workers`` threads sharing one :class:`Throttle`, each sending requests back to back.

    ``codes=False`` hides the 429s' error codes from the throttle (as a bare HTTP status would).
    """
    loop = _Loop()
    service = SimulatedService(limits)
    throttle = Throttle(
        settings,
        clock=lambda: loop.now,
        sleep=_no_sleep,
        rng=random.Random(seed),
    )
    jitter = random.Random(seed)
    figures = RunFigures("adaptive (Throttle)", duration_s, measure_from_s, limits.max_rate())
    waiting: deque[int] = deque(range(workers))
    wake_pending = [False]

    def drain() -> None:
        while waiting:
            slot = throttle.try_acquire()
            if slot is None:
                schedule_wake()
                return
            send(waiting.popleft(), slot)

    def send(worker: int, slot: Slot) -> None:
        refusal = service.admit(loop.now)
        figures.peak_in_flight = max(figures.peak_in_flight, service.in_flight)
        if refusal is not None:
            retry_after, code = refusal
            headers = {**service.headers(), "Retry-After": f"{retry_after:g}"}

            def refused() -> None:
                outcome = slot.observe_response(429, headers, code=code if codes else "")
                slot.release(outcome, retry_after=retry_after)
                figures.refused += 1
                figures.refused_measured += loop.now >= measure_from_s
                waiting.append(worker)
                drain()

            loop.at(loop.now + limits.refusal_latency_s, refused)
            return
        latency = limits.latency_s * jitter.uniform(0.8, 1.2)

        def done() -> None:
            service.finish(loop.now, latency)
            slot.observe_response(200, service.headers())
            slot.release()
            figures.succeeded += 1
            figures.succeeded_measured += loop.now >= measure_from_s
            waiting.append(worker)
            drain()

        loop.at(loop.now + latency, done)

    def schedule_wake() -> None:
        wait = throttle.wait_s()
        if wait is None or wake_pending[0]:
            return  # a release will wake the waiting workers
        wake_pending[0] = True

        def wake() -> None:
            wake_pending[0] = False
            drain()

        loop.at(loop.now + wait, wake)

    loop.at(0.0, drain)
    loop.run_until(duration_s)
    return figures, throttle


def run_fixed(
    limits: ServiceLimits,
    *,
    concurrency: int,
    duration_s: float,
    measure_from_s: float,
    seed: int = 1,
) -> RunFigures:
    """The baseline: ``concurrency`` workers, each waiting out its own ``Retry-After`` only."""
    loop = _Loop()
    service = SimulatedService(limits)
    jitter = random.Random(seed)
    figures = RunFigures(
        f"fixed concurrency {concurrency}", duration_s, measure_from_s, limits.max_rate()
    )

    def send() -> None:
        refusal = service.admit(loop.now)
        figures.peak_in_flight = max(figures.peak_in_flight, service.in_flight)
        if refusal is not None:
            retry_after = refusal[0]

            def refused() -> None:
                figures.refused += 1
                figures.refused_measured += loop.now >= measure_from_s
                loop.at(loop.now + retry_after, send)

            loop.at(loop.now + limits.refusal_latency_s, refused)
            return
        latency = limits.latency_s * jitter.uniform(0.8, 1.2)

        def done() -> None:
            service.finish(loop.now, latency)
            figures.succeeded += 1
            figures.succeeded_measured += loop.now >= measure_from_s
            send()

        loop.at(loop.now + latency, done)

    for _ in range(concurrency):
        loop.at(0.0, send)
    loop.run_until(duration_s)
    return figures


def _no_sleep(seconds: float) -> None:
    raise AssertionError("the simulation never blocks; it uses try_acquire and wait_s")
