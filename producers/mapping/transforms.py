"""Named transforms: how one Dataverse column's value is made from work4all source values.

Every transform has the same signature::

    def transform(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome

``values`` are the *normalised* source values (``SourceRecordExtracted.normalised``) of the
column map's ``sources``, in order. ``params`` are the column map's parameters. ``context`` gives
what a transform cannot know alone (other migrated records, owners, settings).

An :class:`Outcome` carries the value (``None`` leaves the column out of the payload), notes for
lossy or defaulted values, and an ``error`` when the value is invalid: the transform stage turns
errors of required columns into a rejection and errors of optional columns into a dropped value
plus a note. Notes and errors start with a reason code (``truncated``, ``owner_fallback``, …) so
reports and tests can count them: see :func:`note`.

A lookup's value is a :class:`Bind`; the stage writes it as ``<target>@odata.bind``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Bind:
    """A reference to another Dataverse row: ``/accounts(<id>)``."""

    entity_set: str
    target_id: str

    def __str__(self) -> str:
        return f"/{self.entity_set}({self.target_id})"


@dataclass(slots=True)
class Outcome:
    """What a transform made of its source values."""

    value: Any = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def note(code: str, message: str) -> str:
    """A note or error text: ``"<code>: <message>"``; the code is a short snake_case reason."""
    return f"{code}: {message}"


def reason_code(text: str) -> str:
    """The reason code of a note or error made by :func:`note`."""
    return text.split(":", 1)[0]


class Context(Protocol):
    """What the transform stage tells a transform about the rest of the migration."""

    def resolve(self, object_name: str, source_key: Any) -> Bind | None:
        """The Dataverse row that the record ``source_key`` of map object ``object_name`` becomes,
        or ``None`` when that record is not migrated (missing, rejected)."""
        ...

    def owner(self, user_code: Any) -> tuple[Bind | None, list[str]]:
        """The ``systemuser`` for a work4all ``Mitarbeiter`` code, with notes (departed, no
        e-mail match, fallback owner used); ``None`` when there is neither a match nor a
        fallback owner."""
        ...

    def setting(self, name: str) -> Any:
        """A map-wide setting (:class:`producers.mapping.model.MapSettings`)."""
        ...


Transform = Callable[[Sequence[Any], Mapping[str, Any], Context], Outcome]

TRANSFORMS: dict[str, Transform] = {}
"""Every transform by name; a map may name only these."""


def transform(name: str) -> Callable[[Transform], Transform]:
    """Register a transform under ``name``."""

    def register(function: Transform) -> Transform:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        TRANSFORMS[name] = function
        return function

    return register


@transform("copy")
def copy(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """The first source value unchanged."""
    return Outcome(values[0] if values else None)


@transform("constant")
def constant(values: Sequence[Any], params: Mapping[str, Any], context: Context) -> Outcome:
    """``params['value']`` whatever the source holds."""
    return Outcome(params.get("value"))
