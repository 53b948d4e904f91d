"""The adaptive throttle: Retry-After pauses, the dop hint, AIMD, pacing, bounded retries."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from consumers.dataverse.throttle import (
    Outcome,
    RetryPolicy,
    Throttle,
    ThrottleSettings,
    outcome_of_error,
    retry_after_of,
)
from consumers.writing import batch
from tests.dataverse.simulated_service import ServiceLimits, run_fixed, run_throttled


class FakeClock:
    """Virtual time: ``sleep`` advances it and is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RefusalError(Exception):
    """Stands for ``DataverseError``: a status, a code and a Retry-After."""

    def __init__(self, status: int, retry_after: float | None = None, code: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.retry_after = retry_after


def throttle_with(clock: FakeClock, **settings: float) -> Throttle:
    return Throttle(
        ThrottleSettings(**settings),  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
    )


def test_a_429_pauses_every_worker_until_the_retry_after_moment() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    refused, other = throttle.acquire(), throttle.acquire()

    refused.release(Outcome.THROTTLED, retry_after=5)

    assert throttle.try_acquire() is None
    assert throttle.wait_s() == pytest.approx(5)
    assert throttle.stats().paused_for_s == pytest.approx(5)
    other.release()
    clock.now = 4.9
    assert throttle.try_acquire() is None
    clock.now = 5.0
    assert throttle.try_acquire() is not None


def test_acquire_sleeps_out_a_pause_with_the_injected_sleep() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    throttle.acquire().release(Outcome.THROTTLED, retry_after=3)

    throttle.acquire()

    assert clock.now == pytest.approx(3)


def test_a_429_without_retry_after_still_pauses_everyone_briefly() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, pause_without_retry_after_s=1.5)

    throttle.acquire().release(Outcome.THROTTLED)

    assert throttle.wait_s() == pytest.approx(1.5)


def test_an_absurd_retry_after_is_capped() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, max_pause_s=900)

    throttle.acquire().release(Outcome.THROTTLED, retry_after=86_400)

    assert throttle.wait_s() == pytest.approx(900)


def test_concurrency_never_exceeds_the_latest_dop_hint() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=8)

    throttle.observe_response(200, httpx.Headers({"x-ms-dop-hint": "2"}))
    slots = [throttle.try_acquire(), throttle.try_acquire(), throttle.try_acquire()]

    assert slots[2] is None
    assert throttle.stats().limit == 2
    assert throttle.stats().dop_hint == 2
    assert throttle.wait_s() is None  # only a release can let the next one in


def test_the_limit_grows_no_higher_than_the_dop_hint() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=2)
    throttle.observe_response(200, {"X-MS-DOP-HINT": "5"})

    for _ in range(50):
        slots = [throttle.acquire() for _ in range(throttle.stats().limit)]
        for slot in slots:
            slot.release()

    assert throttle.stats().limit == 5


def test_slow_start_doubles_the_limit_each_saturated_round() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=2)

    for expected in (4, 8, 16, 32):
        slots = [throttle.acquire() for _ in range(throttle.stats().limit)]
        for slot in slots:
            slot.release()
        assert throttle.stats().limit == expected


def test_a_limit_the_workers_do_not_reach_does_not_grow() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=4)

    for _ in range(100):
        throttle.acquire().release()

    assert throttle.stats().limit == 4


def test_refusals_of_one_round_trip_cut_the_limit_once() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=10, decrease=0.5)
    slots = [throttle.acquire() for _ in range(10)]

    for slot in slots:
        slot.release(Outcome.CONCURRENCY_LIMITED, retry_after=1)

    stats = throttle.stats()
    assert stats.limit == 5
    assert stats.decreases == 1
    assert stats.concurrency_limited == 10


def test_a_refusal_after_the_cut_cuts_again() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=8, decrease=0.5)
    first = [throttle.acquire() for _ in range(8)]
    for slot in first:
        slot.release(Outcome.CONCURRENCY_LIMITED, retry_after=1)
    clock.now = 1.0

    second = [throttle.acquire() for _ in range(4)]
    for slot in second:
        slot.release(Outcome.CONCURRENCY_LIMITED, retry_after=1)

    assert throttle.stats().limit == 2


def test_the_limit_stays_below_a_refused_level_until_the_probe_interval() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=8, probe_interval_s=60)
    slots = [throttle.acquire() for _ in range(8)]
    for slot in slots:
        slot.release(Outcome.CONCURRENCY_LIMITED, retry_after=1)
    clock.now = 1.0

    for _ in range(500):
        slots = [throttle.acquire() for _ in range(throttle.stats().limit)]
        for slot in slots:
            slot.release()
    assert throttle.stats().limit == 7
    clock.now = 61.0
    for _ in range(500):
        slots = [throttle.acquire() for _ in range(throttle.stats().limit)]
        for slot in slots:
            slot.release()
    assert throttle.stats().limit > 7


def test_a_503_cuts_the_limit_but_pauses_no_one_without_retry_after() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=10, decrease=0.5)
    slots = [throttle.acquire() for _ in range(10)]

    slots[0].release(Outcome.BUSY)

    assert throttle.stats().limit == 5
    assert throttle.stats().busy == 1
    assert throttle.stats().paused_for_s == 0


def test_a_window_refusal_paces_starts_below_the_measured_success_rate() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=50, rate_decrease=0.9)
    for _ in range(100):  # 10 successes a second for 10 seconds
        throttle.acquire().release()
        clock.now += 0.1

    throttle.acquire().release(Outcome.THROTTLED, retry_after=1)

    rate = throttle.stats().rate_limit_per_s
    assert rate is not None
    assert rate == pytest.approx(9, rel=0.05)
    clock.now += 1
    throttle.acquire()
    assert throttle.wait_s() == pytest.approx(1 / rate)


def test_the_pace_and_the_measured_rate_count_weight_not_http_requests() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=50, rate_decrease=0.9)
    for _ in range(100):  # one $batch of 100 inner requests a second: 101 requests a second
        throttle.acquire(weight=101).release()
        clock.now += 1

    throttle.acquire().release(Outcome.THROTTLED, retry_after=1)

    assert throttle.stats().weight_succeeded == 100 * 101
    assert throttle.stats().rate_limit_per_s == pytest.approx(0.9 * 101, rel=0.05)


def test_a_heavy_request_holds_the_next_start_back_by_its_weight() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=50, rate_decrease=1.0)
    for _ in range(100):  # 10 requests a second
        throttle.acquire().release()
        clock.now += 0.1
    throttle.acquire().release(Outcome.THROTTLED, retry_after=1)
    clock.now += 1
    rate = throttle.stats().rate_limit_per_s
    assert rate is not None

    throttle.acquire(weight=20)

    assert throttle.wait_s() == pytest.approx(20 / rate)


def test_light_requests_after_heavy_ones_are_not_starved_by_the_pace() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock, initial_limit=50, rate_decrease=0.9, rate_growth_per_s=0)
    for _ in range(60):  # a $batch phase: one $batch of 100 inner requests a second
        throttle.acquire(weight=101).release()
        clock.now += 1
    throttle.acquire(weight=101).release(Outcome.THROTTLED, retry_after=1)

    started, light = clock.now, 0
    while clock.now < started + 11:  # then a bulk phase: requests that weigh 1
        throttle.acquire().release()
        light += 1

    # The window admitted ~101 requests a second; the pace lets ~91 of them start each second,
    # not the ~1 HTTP request a second the $batch phase sent.
    assert light >= 10 * 0.9 * 101 * 0.95


def test_run_passes_the_weight_of_its_request_to_the_pace() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)

    assert throttle.run(lambda: "ok", weight=7) == "ok"

    assert throttle.stats().weight_succeeded == 7
    assert throttle.stats().succeeded == 1


@pytest.mark.parametrize("weight", [0, -1, float("nan"), float("inf")])
def test_a_request_must_weigh_something(weight: float) -> None:
    throttle = throttle_with(FakeClock())

    with pytest.raises(ValueError, match="weight"):
        throttle.acquire(weight=weight)


def test_a_batch_counts_itself_and_every_request_of_its_changesets() -> None:
    create = batch.Request("POST", "tasks", {"subject": "call back"})
    close = batch.Request("PATCH", "tasks(1)", {"statecode": 1})

    assert batch.service_requests([[create, close], [create], [create, close]]) == 1 + 5


def test_a_concurrency_refusal_does_not_pace() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)

    throttle.acquire().release(Outcome.CONCURRENCY_LIMITED, retry_after=1)

    assert throttle.stats().rate_limit_per_s is None


def test_the_slot_releases_itself_with_the_outcome_of_its_exception() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)

    with pytest.raises(RefusalError), throttle.acquire():
        raise RefusalError(429, retry_after=2)

    stats = throttle.stats()
    assert (stats.throttled, stats.in_flight) == (1, 0)
    assert stats.paused_for_s == pytest.approx(2)


def test_the_slot_releases_itself_with_the_response_it_observed() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)

    with throttle.acquire() as slot:
        slot.observe_response(503, {"Retry-After": "4", "x-ms-dop-hint": "3"})

    stats = throttle.stats()
    assert (stats.busy, stats.dop_hint, stats.in_flight) == (1, 3, 0)
    assert stats.paused_for_s == pytest.approx(4)


def test_a_slot_cannot_be_released_twice() -> None:
    slot = throttle_with(FakeClock()).acquire()
    slot.release()

    with pytest.raises(RuntimeError):
        slot.release()


def test_run_retries_transient_errors_with_full_jitter_backoff() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    failures = [RefusalError(502), httpx.ReadTimeout("slow"), ConnectionResetError()]

    def operation() -> str:
        if failures:
            raise failures.pop(0)
        return "written"

    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=60)
    assert throttle.run(operation, retry=policy) == "written"
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps, start=1):
        assert 0 <= slept <= 2.0 ** (attempt - 1)
    assert throttle.stats().retries == 3
    assert throttle.stats().transient == 3


def test_run_waits_out_retry_after_instead_of_backing_off() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    sent_at: list[float] = []

    def operation() -> str:
        sent_at.append(clock.now)
        if len(sent_at) == 1:
            raise RefusalError(429, retry_after=7, code="0x80072322")
        return "written"

    assert throttle.run(operation) == "written"
    assert sent_at == [0.0, 7.0]
    assert clock.sleeps == [7.0]


def test_run_gives_up_after_the_bounded_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1
        raise RefusalError(504)

    with pytest.raises(RefusalError):
        throttle.run(operation, retry=RetryPolicy(max_attempts=3))
    assert calls == 3


def test_run_bounds_429s_with_retry_after_separately() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1
        raise RefusalError(429, retry_after=1)

    with pytest.raises(RefusalError):
        throttle.run(operation, retry=RetryPolicy(max_attempts=2, max_throttled_attempts=6))
    assert calls == 6


def test_run_does_not_retry_a_rejected_record() -> None:
    clock = FakeClock()
    throttle = throttle_with(clock)
    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1
        raise RefusalError(400, code="0x80044331")

    with pytest.raises(RefusalError):
        throttle.run(operation)
    assert calls == 1
    assert throttle.stats().rejected == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RefusalError(429, 3, "0x80072322"), (Outcome.THROTTLED, 3)),
        (RefusalError(429, 1, "0x80072326"), (Outcome.CONCURRENCY_LIMITED, 1)),
        (RefusalError(503, None), (Outcome.BUSY, None)),
        (RefusalError(502), (Outcome.TRANSIENT, None)),
        (RefusalError(412, None, "0x80040237"), (Outcome.REJECTED, None)),
        (httpx.ConnectError("refused"), (Outcome.TRANSIENT, None)),
        (httpx.ReadTimeout("slow"), (Outcome.TRANSIENT, None)),
        (TimeoutError(), (Outcome.TRANSIENT, None)),
        (KeyError("x"), (Outcome.REJECTED, None)),
    ],
)
def test_errors_are_classified_by_status_code_and_kind(
    error: BaseException, expected: tuple[Outcome, float | None]
) -> None:
    assert outcome_of_error(error) == expected


def test_an_error_may_say_itself_whether_it_is_transient() -> None:
    class UnreachableError(Exception):
        transient = True

    assert outcome_of_error(UnreachableError()) == (Outcome.TRANSIENT, None)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "42"}, 42.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "-3"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after_is_read_in_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_of(headers) == expected


def test_threads_sharing_a_throttle_never_exceed_its_limit() -> None:
    throttle = Throttle(ThrottleSettings(initial_limit=3, max_limit=3))
    in_flight, peak = 0, 0
    lock = threading.Lock()

    def operation() -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.001)
        with lock:
            in_flight -= 1

    def worker() -> None:
        for _ in range(25):
            throttle.run(operation)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 3
    assert throttle.stats().succeeded == 200
    assert throttle.stats().in_flight == 0


# -- simulation: a service with limits, a pool of 64 workers, virtual time ------------------

SCENARIOS = {
    "52 concurrent, dop hint 50": ServiceLimits(max_concurrent=52, dop_hint=50, latency_s=0.2),
    "16 concurrent, no hint": ServiceLimits(max_concurrent=16, latency_s=0.2),
    "600 requests / 30 s": ServiceLimits(max_requests=600, window_s=30, dop_hint=50, latency_s=0.1),
    "60 s execution / 15 s": ServiceLimits(
        max_execution_s=60, max_requests=300, window_s=15, dop_hint=50, latency_s=0.2
    ),
    "8 concurrent and 1,200 requests / 60 s": ServiceLimits(
        max_concurrent=8, max_requests=1200, window_s=60, latency_s=0.2
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_throttle_converges_near_the_limit_with_few_429s(name: str) -> None:
    limits = SCENARIOS[name]
    duration = 10 * limits.window_s if limits.max_requests else 120.0
    figures, _ = run_throttled(limits, duration_s=duration, measure_from_s=duration / 2)
    baseline = run_fixed(limits, concurrency=50, duration_s=duration, measure_from_s=duration / 2)

    print(f"\n{name}\n  {figures.line()}\n  {baseline.line()}")
    assert figures.share_of_max >= 0.9
    assert figures.refused_share <= 0.01
    assert figures.peak_in_flight <= min(limits.max_concurrent, limits.dop_hint or 64)


def test_the_window_limited_baseline_storms_where_the_throttle_does_not() -> None:
    limits = SCENARIOS["60 s execution / 15 s"]
    figures, throttle = run_throttled(limits, duration_s=150, measure_from_s=75)
    baseline = run_fixed(limits, concurrency=50, duration_s=150, measure_from_s=75)

    assert baseline.refused_share > 20 * figures.refused_share
    assert figures.rate > baseline.rate
    assert throttle.stats().rate_limit_per_s is not None
