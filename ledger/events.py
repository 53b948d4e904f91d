"""The event envelope, the core event types, canonical encoding and upcasting.

Every fact crmledger records is an :class:`Event`: a frozen envelope around a JSON payload. The
payload's shape is given by a registered :class:`EventPayload` subclass (one per event type);
the envelope's ``schema_version`` says which version of that shape was written, and old versions
are upgraded on read by registered upcasters, never rewritten in the log.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Namespace for every deterministic id crmledger derives (event ids here, target ids later).
LEDGER_NAMESPACE = uuid.UUID("6f0c3d1e-5a2b-5c4d-9e8f-0a1b2c3d4e5f")


class Topic(StrEnum):
    """The stage a fact belongs to; each is one Kafka topic (or one SQLite log stream)."""

    SOURCE = "source"
    DECISIONS = "decisions"
    WRITES = "writes"
    CONTROL = "control"


class EventDecodeError(ValueError):
    """A stored event could not be decoded into an :class:`Event`."""


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        # Source data holds local, naive timestamps: they stay as written, without a zone.
        return _iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON-encodable in an event")


def canonical_json(value: object) -> str:
    """Encode ``value`` as canonical JSON: sorted keys, no insignificant whitespace, UTF-8 text.

    Equal values always give equal text, so hashes of it (content hashes, event ids) are stable.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def content_hash(value: object) -> str:
    """SHA-256 hex digest of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("event timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def deterministic_id(*parts: str) -> uuid.UUID:
    """A uuid5 in crmledger's namespace of the given parts; the same parts give the same id."""
    return uuid.uuid5(LEDGER_NAMESPACE, "\x1f".join(parts))


class EventPayload(BaseModel):
    """Base of every event type's payload; subclasses name the type and its topic.

    Subclasses set ``event_type`` (past tense, e.g. ``"RecordVerified"``), ``topic`` and
    ``schema_version`` (bumped whenever the payload shape changes, with an upcaster registered
    for the previous version).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    schema_version: ClassVar[int] = 1


_PAYLOADS: dict[str, type[EventPayload]] = {}
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def event_type(cls: type[EventPayload]) -> type[EventPayload]:
    """Class decorator: register ``cls`` as the payload of events of type ``cls.event_type``."""
    name = cls.event_type
    if name in _PAYLOADS and _PAYLOADS[name] is not cls:
        raise ValueError(f"event type {name!r} is registered twice")
    _PAYLOADS[name] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register a function upgrading a ``type_name`` payload by one version.

    The function receives the payload dict written at ``from_version`` and returns it as it is
    at ``from_version + 1``. Reading applies upcasters in a chain up to the current version.
    """

    def register(function: Upcaster) -> Upcaster:
        _UPCASTERS[(type_name, from_version)] = function
        return function

    return register


def payload_class(type_name: str) -> type[EventPayload]:
    """The registered payload class of an event type."""
    try:
        return _PAYLOADS[type_name]
    except KeyError:
        raise EventDecodeError(f"unknown event type {type_name!r}") from None


def topic_of(type_name: str) -> Topic:
    """The topic events of ``type_name`` are appended to."""
    return payload_class(type_name).topic


class Event(BaseModel):
    """The immutable envelope of one fact in the ledger."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    type: str
    schema_version: int = Field(ge=1)
    run_id: str
    phase: str | None = None
    key: str = Field(min_length=1)
    causation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    occurred_at: datetime
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.astimezone(UTC)

    @classmethod
    def create(
        cls,
        payload: EventPayload,
        *,
        run_id: str,
        key: str,
        cause: str,
        phase: str | None = None,
        causation_id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Self:
        """Wrap ``payload`` in an envelope whose id is derived from what caused it.

        ``cause`` names the cause uniquely within the run and key (for example the content hash
        of the source row, or the id of the event being reacted to): a retried step passes the
        same cause and therefore produces the same ``event_id``, which consumers drop as a
        duplicate.
        """
        name = type(payload).event_type
        return cls(
            event_id=deterministic_id(name, run_id, key, cause),
            type=name,
            schema_version=type(payload).schema_version,
            run_id=run_id,
            phase=phase,
            key=key,
            causation_id=causation_id,
            correlation_id=correlation_id,
            occurred_at=occurred_at or datetime.now(UTC),
            payload=payload.model_dump(mode="json"),
        )

    @property
    def topic(self) -> Topic:
        """The topic this event belongs to."""
        return topic_of(self.type)

    def typed(self) -> EventPayload:
        """The payload as its registered, validated model."""
        return payload_class(self.type).model_validate(self.payload)

    def to_json(self) -> str:
        """Canonical JSON of the whole envelope, as stored in the log."""
        # Built by hand rather than with model_dump: this runs once per appended event.
        return canonical_json(
            {
                "event_id": str(self.event_id),
                "type": self.type,
                "schema_version": self.schema_version,
                "run_id": self.run_id,
                "phase": self.phase,
                "key": self.key,
                "causation_id": str(self.causation_id) if self.causation_id else None,
                "correlation_id": str(self.correlation_id) if self.correlation_id else None,
                "occurred_at": _iso(self.occurred_at),
                "payload": self.payload,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Decode a stored envelope, upcasting an old ``schema_version`` to the current one."""
        try:
            event = cls.model_validate_json(text)
        except ValidationError as error:
            raise EventDecodeError(f"stored event is not a valid envelope: {error}") from error
        if event.schema_version == payload_class(event.type).schema_version:
            return event
        return cls.model_validate(upcast(event.model_dump()))


def upcast(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a decoded envelope dict to the current schema version of its type."""
    envelope = dict(raw)
    name = envelope.get("type")
    if not isinstance(name, str):
        raise EventDecodeError("stored event has no type")
    current = payload_class(name).schema_version
    version = int(envelope.get("schema_version", 1))
    if version > current:
        raise EventDecodeError(
            f"{name} schema_version {version} is newer than this crmledger knows ({current})"
        )
    payload = dict(envelope.get("payload") or {})
    while version < current:
        try:
            step = _UPCASTERS[(name, version)]
        except KeyError:
            raise EventDecodeError(f"no upcaster for {name} v{version}") from None
        payload = step(payload)
        version += 1
    envelope["payload"] = payload
    envelope["schema_version"] = version
    return envelope
