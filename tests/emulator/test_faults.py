"""Fault injection (issue item 9): seeded, reproducible throttling, 5xx, timeouts and resets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from dataverse_emulator.config import DEFAULT_CLIENT_ID, EmulatorConfig
from dataverse_emulator.faults import FaultInjector, parse_fault_spec
from tests.emulator._serve import GuardedApi, serve


@contextmanager
def running(faults: str, **config: float) -> Iterator[tuple[GuardedApi, str, httpx.Client]]:
    api = GuardedApi(EmulatorConfig(faults=faults, **config))  # type: ignore[arg-type]
    with serve(api.guard) as base_url, httpx.Client(timeout=10) as http:
        http.headers["Authorization"] = f"Bearer {api.token(base_url)}"
        yield api, base_url, http


def _whoami(base_url: str, http: httpx.Client) -> httpx.Response:
    return http.get(f"{base_url}/api/data/v9.2/WhoAmI")


def test_spec_gives_each_kind_its_probability() -> None:
    spec = "429:0.05, 502:0.01,503:0.02,504:0.01,timeout:0.01,reset:0.01"

    assert parse_fault_spec(spec) == (
        ("429", 0.05),
        ("502", 0.01),
        ("503", 0.02),
        ("504", 0.01),
        ("timeout", 0.01),
        ("reset", 0.01),
    )
    assert parse_fault_spec(None) == parse_fault_spec("") == ()


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("429:0.05,500:0.1", "'500:0.1'"),
        ("503", "'503'"),
        ("503:often", "'503:often'"),
        ("503:1.5", "'503:1.5'"),
        ("503:0.1,503:0.2", "'503:0.2'"),
        ("503:0.6,reset:0.6", "add up to 1.2"),
    ],
)
def test_bad_spec_is_refused_naming_the_bad_part(spec: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse_fault_spec(spec)


def test_same_seed_gives_the_same_faults() -> None:
    spec = "429:0.1,503:0.1,reset:0.1"

    def kinds(seed: int) -> list[str | None]:
        injector = FaultInjector(EmulatorConfig(faults=spec, fault_seed=seed))
        return [fault.kind if fault else None for fault in (injector.draw() for _ in range(200))]

    assert kinds(7) == kinds(7)
    assert kinds(7) != kinds(8)
    assert {"429", "503", "reset", None} == set(kinds(7))


def test_same_seed_fails_the_same_requests_over_http() -> None:
    def statuses() -> list[int]:
        with running("429:0.2,503:0.2", fault_seed=42) as (_, base_url, http):
            return [_whoami(base_url, http).status_code for _ in range(30)]

    first = statuses()

    assert first == statuses()
    assert {200, 429, 503} == set(first)


def test_429_fault_is_a_real_looking_throttling_error() -> None:
    with running("429:1") as (_, base_url, http):
        response = _whoami(base_url, http)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["x-ms-dop-hint"] == "50"
    assert response.json() == {
        "error": {
            "code": "0x80072322",
            "message": (
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
            ),
        }
    }


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_faults_answer_the_status_with_a_dataverse_error_body(status: int) -> None:
    with running(f"{status}:1") as (_, base_url, http):
        response = _whoami(base_url, http)

    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message"}
    assert response.headers["x-ms-dop-hint"] == "50"


def test_timeout_fault_outlasts_a_client_timeout() -> None:
    # 30 s at time_scale 100: the response is held for 0.3 s.
    with running("timeout:1", time_scale=100) as (_, base_url, http):
        with pytest.raises(httpx.ReadTimeout):
            http.get(f"{base_url}/api/data/v9.2/WhoAmI", timeout=0.1)
        started = time.monotonic()
        patient = _whoami(base_url, http)
        waited = time.monotonic() - started

    assert patient.status_code == 504
    assert waited >= 0.3


def test_reset_fault_drops_the_connection_without_a_complete_response() -> None:
    with running("reset:1") as (_, base_url, http):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            _whoami(base_url, http)
        http.headers.pop("Authorization")
        outside = http.get(f"{base_url}/_emulator/ping")

    assert outside.status_code == 200  # the server itself lives on


def test_faults_are_booked_per_client_and_skip_the_limits() -> None:
    with running("503:0.5", fault_seed=3) as (api, base_url, http):
        statuses = [_whoami(base_url, http).status_code for _ in range(20)]
        stats = api.guard.stats()[DEFAULT_CLIENT_ID]

    assert stats["faults"] == {"503": statuses.count(503)}
    assert stats["requests"] == statuses.count(200)


def test_no_spec_injects_nothing() -> None:
    with running("") as (_, base_url, http):
        statuses = {_whoami(base_url, http).status_code for _ in range(20)}

    assert statuses == {200}
