"""Reference section 7: service protection limits per client, 429 with Retry-After, x-ms-dop-hint.

``time_scale`` shrinks the 300-second window so the limits are hit and cleared in seconds.
"""

from __future__ import annotations

import concurrent.futures
import math
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import msal
import pytest

from dataverse_emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    Limits,
)
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.limits import ServiceProtection
from dataverse_emulator.server import start_emulator
from tests.emulator._serve import GuardedApi, serve

OTHER_CLIENT = "crmledger-other"
CLIENTS = {DEFAULT_CLIENT_ID: "secret", OTHER_CLIENT: "other-secret"}
EXECUTION_MESSAGE = (
    "Combined execution time of incoming requests exceeded limit of {ms} milliseconds over time "
    "window of {s} seconds. Decrease number of concurrent requests or reduce the duration of "
    "requests and try again later."
)


@dataclass
class Running:
    api: GuardedApi
    base_url: str
    http: httpx.Client

    def call(
        self, path: str = "WhoAmI", client_id: str = DEFAULT_CLIENT_ID, **params: int
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api.token(self.base_url, client_id)}"}
        url = f"{self.base_url}/api/data/v9.2/{path}"
        if path == "work":
            return self.http.post(url, headers=headers, params=params)
        return self.http.get(url, headers=headers)


@contextmanager
def running(limits: Limits, *, time_scale: float = 1.0, enabled: bool = True) -> Iterator[Running]:
    config = EmulatorConfig(
        clients=CLIENTS, limits=limits, time_scale=time_scale, limits_enabled=enabled
    )
    api = GuardedApi(config)
    with serve(api.guard) as base_url, httpx.Client(timeout=10) as http:
        yield Running(api, base_url, http)


def test_burst_over_the_request_limit_is_429_until_retry_after_has_passed() -> None:
    # 200 s of window at time_scale 100: two real seconds.
    with running(Limits(window_s=200, max_requests=5), time_scale=100) as emulator:
        statuses = [emulator.call().status_code for _ in range(5)]
        throttled = emulator.call()
        retry_after = int(throttled.headers["Retry-After"])
        time.sleep(retry_after)
        after_waiting = emulator.call()

    assert statuses == [200] * 5
    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": {
            "code": "0x80072322",
            "message": (
                "Number of requests exceeded the limit of 5 over time window of 200 seconds."
            ),
        }
    }
    assert 1 <= retry_after <= 2
    assert after_waiting.status_code == 200


def test_continued_sending_while_throttled_makes_the_wait_longer() -> None:
    with running(Limits(window_s=200, max_requests=3), time_scale=100) as emulator:
        for _ in range(3):
            emulator.call()
        first = emulator.call()
        first_at = time.monotonic()
        time.sleep(1.0)
        kept_sending = [emulator.call().status_code for _ in range(3)]
        time.sleep(max(0.0, first_at + int(first.headers["Retry-After"]) - time.monotonic()))
        after_first_retry_after = emulator.call()

    assert first.status_code == 429
    assert kept_sending == [429] * 3
    # The throttled requests count too, so the window is still full when the first wait is over.
    assert after_first_retry_after.status_code == 429


def test_each_client_id_is_a_separate_user() -> None:
    with running(Limits(window_s=300, max_requests=2)) as emulator:
        for _ in range(2):
            emulator.call()
        first_throttled = emulator.call()
        other = emulator.call(client_id=OTHER_CLIENT)

    assert first_throttled.status_code == 429
    assert other.status_code == 200
    assert other.json() == {"client_id": OTHER_CLIENT}


def test_batch_inner_requests_count_against_the_request_limit() -> None:
    with running(Limits(window_s=300, max_requests=5)) as emulator:
        batch = emulator.call("work", requests=4)  # a $batch of 4 operations: 1 + 4 requests
        next_request = emulator.call()

    assert batch.status_code == 204
    assert next_request.status_code == 429


def test_execution_time_limit_binds_when_record_costs_add_up() -> None:
    limits = Limits(
        window_s=100,
        max_requests=1000,
        max_execution_ms=1000,
        base_cost_ms=10,
        per_record_cost_ms=2,
    )
    with running(limits, time_scale=100) as emulator:
        cheap = emulator.call("work", records=100)  # 10 + 200 ms
        heavy = emulator.call("work", records=400)  # 10 + 800 ms: 1,020 ms in the window
        throttled = emulator.call()
        time.sleep(int(throttled.headers["Retry-After"]))
        after_waiting = emulator.call()

    assert cheap.status_code == heavy.status_code == 204
    assert throttled.status_code == 429
    assert throttled.json()["error"] == {
        "code": "0x80072321",
        "message": EXECUTION_MESSAGE.format(ms="1,000", s="100"),
    }
    assert after_waiting.status_code == 200


def test_concurrency_limit_answers_429_immediately() -> None:
    with running(Limits(max_concurrent=2)) as emulator:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        held = [pool.submit(emulator.call, "hold") for _ in range(2)]
        for _ in range(2):
            assert emulator.api.arrived.acquire(timeout=5)
        started = time.monotonic()
        third = emulator.call()
        elapsed = time.monotonic() - started
        emulator.api.release.set()
        held_statuses = [future.result(timeout=5).status_code for future in held]
        pool.shutdown()
        after_release = emulator.call()

    assert third.status_code == 429
    assert third.json()["error"] == {
        "code": "0x80072326",
        "message": "Number of concurrent requests exceeded the limit of 2.",
    }
    assert elapsed < 1.0
    assert int(third.headers["Retry-After"]) >= 1
    assert held_statuses == [204, 204]
    assert after_release.status_code == 200
    assert emulator.api.guard.stats()[DEFAULT_CLIENT_ID]["concurrent_peak"] == 2


def test_every_web_api_response_carries_the_dop_hint() -> None:
    with running(Limits(max_requests=1, dop_hint=7)) as emulator:
        ok = emulator.call()
        throttled = emulator.call()
        unauthorized = emulator.http.get(f"{emulator.base_url}/api/data/v9.2/WhoAmI")
        app_error = emulator.call("missing", client_id=OTHER_CLIENT)
        outside = emulator.http.get(f"{emulator.base_url}/_emulator/ping")

    assert [r.status_code for r in (ok, throttled, unauthorized, app_error)] == [200, 429, 401, 404]
    for response in (ok, throttled, unauthorized, app_error):
        assert response.headers["x-ms-dop-hint"] == "7"
    assert app_error.json()["error"]["code"] == "0x80040217"
    assert outside.status_code == 200
    assert "x-ms-dop-hint" not in outside.headers


def test_debug_headers_count_down_the_window() -> None:
    limits = Limits(max_requests=10, max_execution_ms=1000, base_cost_ms=10, per_record_cost_ms=1)
    with running(limits) as emulator:
        first = emulator.call("work", records=90)
        second = emulator.call()

    assert first.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "9"
    assert second.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] == "8"
    assert float(second.headers["x-ms-ratelimit-time-remaining-xrm-requests"]) == 900.0


def test_limits_off_never_throttles_but_still_counts() -> None:
    limits = Limits(max_requests=2, max_execution_ms=1, max_concurrent=1)
    with running(limits, enabled=False) as emulator:
        statuses = {emulator.call("work", records=10).status_code for _ in range(10)}
        stats = emulator.api.guard.stats()[DEFAULT_CLIENT_ID]

    assert statuses == {204}
    assert stats == {
        "requests": 10,
        "throttled": 0,
        "execution_ms": 10 * (limits.base_cost_ms + 10 * limits.per_record_cost_ms),
        "concurrent_peak": 1,
        "faults": {},
    }


def test_stats_count_requests_throttles_and_execution_per_client() -> None:
    limits = Limits(max_requests=3, base_cost_ms=10, per_record_cost_ms=1)
    with running(limits) as emulator:
        emulator.call("work", records=5, requests=1)
        for _ in range(2):
            emulator.call()
        emulator.call(client_id=OTHER_CLIENT)
        stats = emulator.api.guard.stats()

    assert stats[DEFAULT_CLIENT_ID]["requests"] == 4  # 1 + 1 inner, 1 admitted, 1 throttled
    assert stats[DEFAULT_CLIENT_ID]["throttled"] == 1
    assert stats[DEFAULT_CLIENT_ID]["execution_ms"] == 15 + 10
    assert stats[OTHER_CLIENT]["requests"] == 1


@pytest.mark.parametrize(
    ("limits", "code", "message"),
    [
        (
            Limits(),
            "0x80072322",
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
        ),
        (
            Limits(max_requests=10**9, base_cost_ms=1_200_000),
            "0x80072321",
            EXECUTION_MESSAGE.format(ms="1,200,000", s="300"),
        ),
    ],
)
def test_default_limits_answer_with_the_documented_messages(
    limits: Limits, code: str, message: str
) -> None:
    now = [0.0]
    protection = ServiceProtection(EmulatorConfig(limits=limits), clock=lambda: now[0])

    error = _admit_until_throttled(protection, now)

    assert (error.status, error.code, error.message) == (429, code, message)
    # The window opened at t=0 and is 300 s long; events are kept in buckets of 300/600 s.
    assert math.ceil(300 - now[0]) <= int(error.headers["Retry-After"]) <= math.ceil(300.5 - now[0])


def _admit_until_throttled(protection: ServiceProtection, now: list[float]) -> DataverseError:
    """Send requests 10 ms apart on a simulated clock until one is throttled."""
    while True:
        try:
            protection.admit("app").release()
        except DataverseError as error:
            return error
        now[0] += 0.01


def test_default_concurrency_limit_is_52() -> None:
    protection = ServiceProtection(EmulatorConfig())
    tickets = [protection.admit("app") for _ in range(52)]

    with pytest.raises(DataverseError) as raised:
        protection.admit("app")

    assert raised.value.code == "0x80072326"
    assert raised.value.message == "Number of concurrent requests exceeded the limit of 52."
    for ticket in tickets:
        ticket.release()
    protection.admit("app").release()


def test_the_full_emulator_throttles_a_burst_and_recovers_after_retry_after() -> None:
    # The documented 300 s window shrunk a hundredfold: three real seconds.
    config = EmulatorConfig(tls=True, limits=Limits(max_requests=40), time_scale=100)
    with start_emulator(config) as emulator:
        assert emulator.cert_path is not None
        trust = ssl.create_default_context(cafile=emulator.cert_path)
        with httpx.Client(verify=trust, timeout=10) as http:
            token = msal.ConfidentialClientApplication(
                DEFAULT_CLIENT_ID,
                client_credential=DEFAULT_CLIENT_SECRET,
                authority=emulator.authority,
                instance_discovery=False,
                http_client=http,
            ).acquire_token_for_client(scopes=[emulator.root_url.rstrip("/") + "/.default"])
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            burst = [
                http.post(
                    emulator.base_url + "accounts", json={"name": f"burst {n}"}, headers=headers
                )
                for n in range(45)
            ]
            throttled = next(response for response in burst if response.status_code == 429)
            time.sleep(int(throttled.headers["Retry-After"]))
            after_waiting = http.get(emulator.base_url + "accounts?$top=1", headers=headers)

    assert [r.status_code for r in burst[:40]] == [204] * 40
    assert {r.status_code for r in burst[40:]} == {429}
    assert throttled.json()["error"]["code"] == "0x80072322"
    assert throttled.headers["x-ms-dop-hint"]
    assert after_waiting.status_code == 200
