"""What every read model takes from an event in the same way: keys, phases and times."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC
from itertools import islice
from typing import TypeVar

from ledger.events import Event

T = TypeVar("T")

CHUNK = 500
"""Keys per ``IN (...)`` when a projection loads the rows a batch touches."""


def split_key(key: str) -> tuple[str, str]:
    """``Kunden:1739201`` → ``("Kunden", "1739201")``; a key without a colon has no code."""
    table, _, code = key.partition(":")
    return table, code


def event_time(event: Event) -> str:
    """``occurred_at`` as fixed-width ISO-8601 UTC text, which sorts as it reads."""
    return event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def phase_number(event: Event) -> int | None:
    """The event's phase as a number, or None when it has none (``extract``, no phase)."""
    phase = event.phase
    return int(phase) if phase is not None and phase.isdigit() else None


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
