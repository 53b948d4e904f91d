"""The confirmation gate: nothing is transformed under a map no person has confirmed.

``crmledger map confirm`` appends ``MappingConfirmed`` with the map's content hash. The transform
stage calls :func:`require_confirmed` with the map it is given; editing the map changes its hash,
so the edited map needs a confirmation of its own.
"""

from __future__ import annotations

from datetime import datetime

from ledger.event_types import MappingConfirmed
from ledger.events import Event, Topic
from ledger.log import EventLog
from producers.mapping.model import MapError, MigrationMap

CONFIRM_RUN = "mapping"
"""The run id of confirmation events: a confirmed map holds for every run that uses it."""


class MapNotConfirmedError(MapError):
    """The map given to the transform stage has not been confirmed (or was edited since)."""


def confirmations(log: EventLog) -> dict[str, tuple[MappingConfirmed, datetime]]:
    """Every confirmed map hash with its latest confirmation and when it happened."""
    found: dict[str, tuple[MappingConfirmed, datetime]] = {}
    for stored in log.read([Topic.CONTROL]):
        event = stored.event
        if event.type != MappingConfirmed.event_type:
            continue
        payload = MappingConfirmed.model_validate(event.payload)
        previous = found.get(payload.map_hash)
        if previous is None or previous[1] <= event.occurred_at:
            found[payload.map_hash] = (payload, event.occurred_at)
    return found


def confirm(log: EventLog, migration_map: MigrationMap, *, by: str, note: str = "") -> Event:
    """Append ``MappingConfirmed`` for ``migration_map`` and return the event."""
    if not by.strip():
        raise MapError("a confirmation needs the name of the person confirming (--by)")
    digest = migration_map.content_hash
    payload = MappingConfirmed(map_hash=digest, confirmed_by=by.strip(), note=note)
    moment = datetime.now().astimezone()
    event = Event.create(
        payload, run_id=CONFIRM_RUN, key=f"map:{digest}",
        cause=f"{payload.confirmed_by}|{moment.isoformat()}", occurred_at=moment,
    )  # fmt: skip
    log.append([event])
    return event


def require_confirmed(log: EventLog, migration_map: MigrationMap) -> MappingConfirmed:
    """The confirmation of ``migration_map``; :class:`MapNotConfirmedError` when there is none."""
    digest = migration_map.content_hash
    found = confirmations(log).get(digest)
    if found is None:
        known = confirmations(log)
        hint = (
            " The log holds confirmations of other versions: the map was edited after it was"
            " confirmed."
            if known
            else ""
        )
        raise MapNotConfirmedError(
            f"the map (hash {digest[:12]}) has not been confirmed.{hint} Review it, then run"
            f" 'crmledger map confirm MAP --by NAME'."
        )
    return found[0]
