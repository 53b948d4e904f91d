"""The event envelope: deterministic ids, canonical JSON, immutability and upcasting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from ledger.event_types import RecordRejected, TransformDecided
from ledger.events import (
    Event,
    EventDecodeError,
    EventPayload,
    Topic,
    canonical_json,
    event_type,
    upcaster,
)

MOMENT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def decided(cause: str = "hash-1") -> Event:
    return Event.create(
        TransformDecided(target_table="account", target_id="id-1", payload={"name": "Müller GmbH"}),
        run_id="r1",
        key="Kunden:1739201",
        cause=cause,
        phase="1",
        occurred_at=MOMENT,
    )


def test_the_same_cause_gives_the_same_event_id_and_another_cause_another() -> None:
    assert decided().event_id == decided().event_id
    assert decided("hash-2").event_id != decided().event_id


def test_canonical_json_is_independent_of_key_order_and_keeps_umlauts() -> None:
    assert canonical_json({"b": 1, "a": [Decimal("1.10"), "ä"]}) == '{"a":["1.10","ä"],"b":1}'


def test_an_event_survives_encoding_and_decoding_unchanged() -> None:
    event = decided()
    assert Event.from_json(event.to_json()) == event
    assert Event.from_json(event.to_json()).to_json() == event.to_json()


def test_timestamps_are_stored_in_utc_and_naive_ones_are_refused() -> None:
    berlin = timezone(timedelta(hours=1))
    event = decided().model_copy(update={"occurred_at": MOMENT.astimezone(berlin)})
    assert json.loads(event.to_json())["occurred_at"] == "2026-03-01T12:30:00Z"
    with pytest.raises(ValidationError):
        Event.model_validate(json.loads(decided().to_json()) | {"occurred_at": "2026-03-01T12:30"})


def test_events_are_immutable() -> None:
    with pytest.raises(ValidationError):
        decided().run_id = "other"  # type: ignore[misc]


def test_the_topic_follows_the_event_type() -> None:
    assert decided().topic is Topic.DECISIONS
    rejected = Event.create(
        RecordRejected(reasons={"E-Mail": ["invalid"]}), run_id="r", key="Kunden:1", cause="x"
    )
    assert rejected.topic is Topic.DECISIONS
    assert rejected.typed() == RecordRejected(reasons={"E-Mail": ["invalid"]})


def test_an_unknown_event_type_is_a_clear_decode_error() -> None:
    stored = json.loads(decided().to_json()) | {"type": "NoSuchThing"}
    with pytest.raises(EventDecodeError, match="unknown event type 'NoSuchThing'"):
        Event.from_json(json.dumps(stored))


@event_type
class _AddressRecorded(EventPayload):
    """A test-only type in its second version: v1 held one free-text ``address`` line."""

    event_type: ClassVar[str] = "TestAddressRecorded"
    topic: ClassVar[Topic] = Topic.SOURCE
    schema_version: ClassVar[int] = 2

    street: str
    city: str


@upcaster("TestAddressRecorded", from_version=1)
def _split_address(payload: dict[str, Any]) -> dict[str, Any]:
    street, city = payload.pop("address").split(", ")
    return payload | {"street": street, "city": city}


def test_an_event_stored_at_an_old_schema_version_is_upcast_when_read() -> None:
    stored_v1 = json.loads(decided().to_json()) | {
        "type": "TestAddressRecorded",
        "schema_version": 1,
        "payload": {"address": "Hauptstraße 5, Berlin"},
    }

    event = Event.from_json(json.dumps(stored_v1))

    assert event.schema_version == 2
    assert event.typed() == _AddressRecorded(street="Hauptstraße 5", city="Berlin")


def test_an_event_from_a_newer_crmledger_is_refused_not_misread() -> None:
    stored = json.loads(decided().to_json()) | {"schema_version": 9}
    with pytest.raises(EventDecodeError, match="newer than this crmledger knows"):
        Event.from_json(json.dumps(stored))
