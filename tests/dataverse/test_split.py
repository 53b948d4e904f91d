"""Isolating bad records in all-or-nothing bulk requests: good records written, few requests."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from consumers.dataverse.split import (
    Rejected,
    Written,
    failing_index,
    isolate_failures,
)


class BulkError(Exception):
    """Stands for ``DataverseError``: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class AllOrNothing:
    """A CreateMultiple on a standard table: the first bad target fails the whole request."""

    def __init__(self, bad: set[str], *, names_index: bool = False) -> None:
        self.bad = bad
        self.names_index = names_index
        self.written: list[str] = []
        self.requests: list[list[str]] = []

    def __call__(self, targets: Sequence[str]) -> list[str]:
        self.requests.append(list(targets))
        for position, target in enumerate(targets):
            if target in self.bad:
                where = f"Targets[{position}]: " if self.names_index else ""
                raise BulkError(400, "0x80044331", f"{where}the length of '{target}' is too long")
        self.written.extend(targets)
        return [f"id-{target}" for target in targets]


def names(count: int) -> list[str]:
    return [f"r{number:04d}" for number in range(count)]


def test_a_clean_batch_is_written_in_one_request() -> None:
    send = AllOrNothing(set())

    report = isolate_failures(names(100), send)

    assert report.requests == 1
    assert [o.result for o in report.written] == [f"id-r{n:04d}" for n in range(100)]


def test_one_bad_record_is_isolated_with_its_own_error_and_the_rest_written() -> None:
    items = names(100)
    send = AllOrNothing({"r0042"})

    report = isolate_failures(items, send)

    assert sorted(send.written) == [item for item in items if item != "r0042"]
    [rejected] = report.rejected
    assert (rejected.index, rejected.item) == (42, "r0042")
    assert "r0042" in str(rejected.error)
    assert report.requests <= 1 + 2 * math.ceil(math.log2(100))


def test_outcomes_come_back_in_input_order_with_their_results() -> None:
    report = isolate_failures(names(9), AllOrNothing({"r0003", "r0007"}))

    assert [o.index for o in report.outcomes] == list(range(9))
    assert [type(o) for o in report.outcomes] == [
        Written,
        Written,
        Written,
        Rejected,
        Written,
        Written,
        Written,
        Rejected,
        Written,
    ]
    written = report.outcomes[4]
    assert isinstance(written, Written)
    assert written.result == "id-r0004"


@pytest.mark.parametrize(("count", "bad_count"), [(1000, 1), (1000, 3), (1000, 10), (100, 50)])
def test_bisection_stays_within_its_request_bound(count: int, bad_count: int) -> None:
    items = names(count)
    bad = set(random.Random(count + bad_count).sample(items, bad_count))
    send = AllOrNothing(bad)

    report = isolate_failures(items, send)

    bound = min(2 * count - 1, 1 + 2 * bad_count * math.ceil(math.log2(count)))
    print(f"\n{count} records, {bad_count} bad: {report.requests} requests (bound {bound})")
    assert report.requests <= bound
    assert {o.item for o in report.rejected} == bad
    assert sorted(send.written) == sorted(set(items) - bad)
    assert len(send.written) == len(set(send.written))  # nothing written twice


def test_an_error_naming_its_target_costs_one_request_per_bad_record() -> None:
    items = names(1000)
    bad = {"r0010", "r0500", "r0999"}
    send = AllOrNothing(bad, names_index=True)

    report = isolate_failures(items, send)

    assert report.requests == len(bad) + 1
    assert {o.item for o in report.rejected} == bad
    assert len(send.written) == 997


def test_every_record_bad_and_named_needs_no_deep_recursion() -> None:
    items = names(3000)

    report = isolate_failures(items, AllOrNothing(set(items), names_index=True))

    assert len(report.rejected) == 3000
    assert report.requests == 3000


def test_a_last_suspect_takes_its_parents_error_without_being_sent_alone() -> None:
    # [good, bad]: the batch fails, the left half is written, so the right one is the culprit.
    send = AllOrNothing({"r0001"})

    report = isolate_failures(names(2), send)

    assert report.requests == 2
    assert send.requests == [["r0000", "r0001"], ["r0000"]]
    assert [o.item for o in report.rejected] == ["r0001"]


def test_a_request_level_failure_stops_sending_and_leaves_the_rest_unsent() -> None:
    calls: list[int] = []

    def send(targets: Sequence[str]) -> list[str]:
        calls.append(len(targets))
        if len(calls) == 1:
            raise BulkError(400, "0x80044331", "one record is bad")
        if len(calls) == 2:
            return list(targets)  # the left half is written
        raise BulkError(503, "", "Service Unavailable")

    report = isolate_failures(names(8), send)

    assert len(report.written) == 4
    assert len(report.unsent) == 4
    assert {getattr(o.error, "status", 0) for o in report.unsent} == {503}
    assert len(calls) == 3


def test_a_duplicate_target_named_by_the_service_is_isolated() -> None:
    def send(targets: Sequence[str]) -> list[str]:
        seen: dict[str, int] = {}
        for position, target in enumerate(targets):
            if target in seen:
                raise BulkError(
                    400,
                    "0x80048d19",
                    f"Targets[{position}] has the same key as Targets[{seen[target]}]; "
                    "duplicate keys are not allowed in UpsertMultiple.",
                )
            seen[target] = position
        return list(targets)

    report = isolate_failures(["a", "b", "a", "c"], send)

    assert [(o.index, o.item) for o in report.rejected] == [(2, "a")]
    assert report.requests == 2


@pytest.mark.parametrize(
    ("error", "size", "expected"),
    [
        (BulkError(400, "0x80048d19", "Targets[3]: '@odata.type' is missing"), 10, 3),
        (BulkError(400, "0x80048d19", "Targets[12]: out of range"), 10, None),
        (BulkError(400, "0x80044331", "A validation error occurred."), 10, None),
    ],
)
def test_the_failing_target_is_read_from_the_error(
    error: Exception, size: int, expected: int | None
) -> None:
    assert failing_index(error, size) == expected


def test_an_index_attribute_names_the_failing_target() -> None:
    error = BulkError(400, "0x0", "bad")
    error.index = 4  # type: ignore[attr-defined]

    assert failing_index(error, 5) == 4


def test_an_empty_batch_sends_nothing() -> None:
    send = AllOrNothing(set())

    report = isolate_failures(list[str](), send)

    assert (report.requests, report.outcomes) == (0, [])
