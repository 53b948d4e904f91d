"""Bulk messages and opportunity close actions (reference sections 6 and 10.3).

`CreateMultiple`, `UpdateMultiple` and `UpsertMultiple` are bound actions on an entity set:
`POST /<set>/Microsoft.Dynamics.CRM.<X>Multiple` with `{"Targets": [...]}`. On standard tables
(all the emulator has) they are all-or-nothing: the targets are written in one store transaction,
and the first failing target rolls the whole request back and answers with its error.
`DeleteMultiple` exists only for elastic tables, so it is not bound here and an entity set answers
it like any unknown segment.

`WinOpportunity` and `LoseOpportunity` are unbound actions that create the closed
`opportunityclose` activity and move the opportunity to Won or Lost in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from dataverse_emulator import odata
from dataverse_emulator.errors import DataverseError
from dataverse_emulator.records import (
    Address,
    ApiRequest,
    Records,
    Reply,
    RequestContext,
    WebApi,
)
from dataverse_emulator.schema import Table

PAYLOAD_ERROR = "0x80048d19"
OPPORTUNITY_IS_ALREADY_CLOSED = "0x80040515"
_TYPE_PREFIX = "Microsoft.Dynamics.CRM."
_WON, _LOST = 1, 2
_CLOSE_COMPLETED = (1, 2)  # opportunityclose: Completed / Completed


def register(web_api: WebApi) -> None:
    """Add the bulk messages and the Win/LoseOpportunity actions to `web_api`."""
    records = web_api.records

    def bound(
        message: Callable[[Records, Table, list[Mapping[str, Any]], RequestContext], Reply],
    ) -> Callable[[ApiRequest, Table, RequestContext], Reply]:
        def action(request: ApiRequest, table: Table, ctx: RequestContext) -> Reply:
            targets = _targets(request, table)
            with records.store.transaction():
                return message(records, table, targets, ctx)

        return action

    web_api.add_bound_action("CreateMultiple", bound(_create_multiple))
    web_api.add_bound_action("UpdateMultiple", bound(_update_multiple))
    web_api.add_bound_action("UpsertMultiple", bound(_upsert_multiple))
    web_api.add_operation("WinOpportunity", lambda r, ctx: _close_opportunity(records, r, ctx))
    web_api.add_operation("LoseOpportunity", lambda r, ctx: _close_opportunity(records, r, ctx))


def _create_multiple(
    records: Records, table: Table, targets: list[Mapping[str, Any]], ctx: RequestContext
) -> Reply:
    """Create every target (client-chosen ids allowed): 200 with the new `Ids` in target order."""
    ids = [records.create(table.logical_name, target, ctx=ctx).id for target in targets]
    context = f"{ctx.base_url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    return Reply.json(200, {"@odata.context": context, "Ids": ids})


def _update_multiple(
    records: Records, table: Table, targets: list[Mapping[str, Any]], ctx: RequestContext
) -> Reply:
    """Update existing rows addressed by primary key: 204.

    Alternate keys can't address rows here (UpsertMultiple can); a row named twice is updated by
    its first target only.
    """
    seen: set[str] = set()
    for index, target in enumerate(targets):
        if "@odata.id" in target:
            raise _payload_error(
                f"Targets[{index}]: UpdateMultiple doesn't support alternate keys; "
                f"include the primary key '{table.primary_id}'."
            )
        row_id = _primary_key(table, target, index)
        if row_id is None:
            raise _payload_error(
                f"Targets[{index}]: the primary key '{table.primary_id}' is required."
            )
        if row_id in seen:
            continue
        seen.add(row_id)
        records.update(table.logical_name, row_id, _without(target, table.primary_id), ctx=ctx)
    return Reply(204, {"OData-Version": "4.0"})


def _upsert_multiple(
    records: Records, table: Table, targets: list[Mapping[str, Any]], ctx: RequestContext
) -> Reply:
    """Create or update each target by `@odata.id` (primary or alternate key) or primary key: 204.

    Two targets with the same key fail the request before anything is written.
    """
    addresses: list[Address | None] = [_upsert_address(table, t, i) for i, t in enumerate(targets)]
    seen: dict[object, int] = {}
    for index, address in enumerate(addresses):
        if address is None:
            continue
        identity = address if isinstance(address, str) else tuple(sorted(address.items()))
        if identity in seen:
            raise _payload_error(
                f"Targets[{index}] has the same key as Targets[{seen[identity]}]; "
                "duplicate keys are not allowed in UpsertMultiple."
            )
        seen[identity] = index
    for target, address in zip(targets, addresses, strict=True):
        body = {k: v for k, v in target.items() if k != "@odata.id"}
        if address is None:
            records.create(table.logical_name, body, ctx=ctx)
        else:
            records.upsert(table.logical_name, address, body, ctx=ctx)
    return Reply(204, {"OData-Version": "4.0"})


def _close_opportunity(records: Records, request: ApiRequest, ctx: RequestContext) -> Reply:
    """`WinOpportunity` / `LoseOpportunity`: 204 after closing the opportunity.

    Creates the `opportunityclose` activity from `OpportunityClose` and completes it, then sets the
    opportunity to Won (1) or Lost (2) with `Status`, `actualvalue` from the close's
    `actualrevenue` and `actualclosedate` from its `actualend` (today when it has none).
    400 0x80040515 if the opportunity is already closed, 400 0x80048408 if `Status` does not
    belong to the target state; nothing is written then.
    """
    if request.method != "POST":
        raise DataverseError(
            405,
            "0x80060888",
            f"The requested resource does not support http method '{request.method}'.",
        )
    won = request.path.rstrip("/") == "WinOpportunity"
    body = request.json()
    close = body.get("OpportunityClose") if isinstance(body, Mapping) else None
    status = body.get("Status") if isinstance(body, Mapping) else None
    if not isinstance(close, Mapping):
        raise _payload_error("The parameter 'OpportunityClose' is required and must be an object.")
    if isinstance(status, bool) or not isinstance(status, int):
        raise _payload_error("The parameter 'Status' is required and must be an integer.")
    bind = close.get("opportunityid@odata.bind")
    if not isinstance(bind, str):
        raise _payload_error("OpportunityClose must bind 'opportunityid@odata.bind'.")
    with records.store.transaction():
        opportunity = records.reference(bind, ctx)
        if opportunity.table != "opportunity":
            raise _payload_error(f"'{bind}' is not an opportunity.")
        current = records.get("opportunity", opportunity.id) or {}
        if current.get("statecode", 0) != 0:
            raise DataverseError(
                400, OPPORTUNITY_IS_ALREADY_CLOSED, "The opportunity is already closed."
            )
        activity = records.create("opportunityclose", close, ctx=ctx)
        records.set_state("opportunityclose", activity.id, *_CLOSE_COMPLETED, ctx=ctx)
        written = records.get("opportunityclose", activity.id) or {}
        values: dict[str, Any] = {
            "actualclosedate": (written.get("actualend") or _now())[:10],
        }
        if written.get("actualrevenue") is not None:
            values["actualvalue"] = written["actualrevenue"]
        records.set_state(
            "opportunity", opportunity.id, _WON if won else _LOST, status, ctx=ctx, values=values
        )
    return Reply(204, {"OData-Version": "4.0"})


def _targets(request: ApiRequest, table: Table) -> list[Mapping[str, Any]]:
    body = request.json()
    targets = body.get("Targets") if isinstance(body, Mapping) else None
    if not isinstance(targets, list):
        raise _payload_error("The parameter 'Targets' is required and must be an array.")
    expected = _TYPE_PREFIX + table.logical_name
    for index, target in enumerate(targets):
        if not isinstance(target, Mapping):
            raise _payload_error(f"Targets[{index}] must be an object.")
        kind = target.get("@odata.type")
        if kind is None:
            raise _payload_error(
                f"Targets[{index}] has no '@odata.type'; every target needs "
                f'"@odata.type": "{expected}".'
            )
        if kind != expected:
            raise _payload_error(
                f"Targets[{index}] has '@odata.type' '{kind}', but all targets must be "
                f"'{expected}'."
            )
    return targets


def _primary_key(table: Table, target: Mapping[str, Any], index: int) -> str | None:
    value = target.get(table.primary_id)
    if value is None:
        return None
    if not isinstance(value, str) or not odata.GUID.match(value):
        raise _payload_error(f"Targets[{index}]: '{table.primary_id}' must be a GUID.")
    return value.lower()


def _upsert_address(table: Table, target: Mapping[str, Any], index: int) -> Address | None:
    reference = target.get("@odata.id")
    if reference is None:
        return _primary_key(table, target, index)
    if not isinstance(reference, str):
        raise _payload_error(f"Targets[{index}]: '@odata.id' must be a string.")
    text = reference.split("/api/data/v9.2/", 1)[-1].lstrip("/")
    entity_set, paren, rest = text.partition("(")
    if entity_set != table.entity_set or not paren or not rest.endswith(")"):
        raise _payload_error(
            f"Targets[{index}]: '@odata.id' '{reference}' does not address a row of "
            f"'{table.entity_set}'."
        )
    address = odata.parse_key_predicate(rest[:-1])
    return address.lower() if isinstance(address, str) else address


def _without(target: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in target.items() if k != name}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _payload_error(detail: str) -> DataverseError:
    return DataverseError(
        400, PAYLOAD_ERROR, f"Error identified in Payload provided by the user: {detail}"
    )
