"""What one decided row becomes on the wire: bodies, the state step after them, before-images.

Dataverse creates records in their default state (``statecode`` is not valid for create,
reference 9.5), so a decision's ``statecode``/``statuscode`` are the state the row must *end* in:

* activities, accounts, contacts: created open, then ``PATCH {statecode, statuscode}``
  (SetState) when the wanted state is not the open one; an open state's ``statuscode`` is valid
  on create and stays in the body;
* products: created in Draft, then published (``PATCH {"statecode":0,"statuscode":1}``) or
  retired, always (reference 10.4: a product must be published to be sold). Only a product in
  Draft or Under Revision can be edited (0x8004F995), so an update of a published or retired one
  is revised first (:data:`REVISE`, ``PATCH {"statecode":3,"statuscode":3}``), then patched, then
  set to the state the decision wants (:func:`needs_revision`);
* opportunities: won or lost with ``WinOpportunity``/``LoseOpportunity`` (reference 10.3), whose
  ``opportunityclose`` activity gets the deterministic id :func:`close_activity_id`, so a rollback
  can find it and a retry never makes a second one.

The writer sends a create (or update) and its steps in one changeset, so they are written
together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.events import deterministic_id
from producers.mapping.rules import entity_set
from producers.mapping.stage import CLEARED_BIND

ACTIVITY_TABLES = frozenset(
    {"phonecall", "task", "appointment", "email", "letter", "fax", "opportunityclose"}
)

BULK_TABLES = frozenset(
    {
        "account",
        "opportunity",
        "opportunityproduct",
        "quote",
        "quotedetail",
        "pricelevel",
        "productpricelevel",
    }
)
"""Standard tables whose reference pages list CreateMultiple/UpdateMultiple (reference 6.1).

Custom tables (a publisher prefix: ``w4a_openitem``) have them too; every other table is
written with ``$batch``.
"""

DRAFT_EDITABLE_STATES = (2, 3)
"""The product states whose columns an update may change: Draft, Under Revision (reference 10.4)."""

_STATE = ("statecode", "statuscode")
_CREATE_ONLY = frozenset({"overriddencreatedon"})
_POLYMORPHIC = ("parentcustomerid", "customerid", "regardingobjectid", "objectid", "partyid")


def primary_id(table: str) -> str:
    """The primary-key column of ``table`` (activities share ``activityid``)."""
    return "activityid" if table in ACTIVITY_TABLES else f"{table}id"


def supports_bulk(table: str) -> bool:
    """Whether the writer uses CreateMultiple/UpdateMultiple for ``table``."""
    return table in BULK_TABLES or "_" in table


def close_activity_id(opportunity_id: str) -> str:
    """The id of the ``opportunityclose`` activity that closing this opportunity creates."""
    return str(deterministic_id("opportunityclose", opportunity_id.lower()))


@dataclass(frozen=True)
class Step:
    """What must follow the create (or update) of a row: a state change or a close action."""

    state: int
    status: int | None
    close: bool = False
    """True: ``WinOpportunity`` (state 1) or ``LoseOpportunity`` (state 2); else SetState."""

    @property
    def name(self) -> str:
        """How intents and failure messages name the step."""
        if self.close:
            return "WinOpportunity" if self.state == 1 else "LoseOpportunity"
        return f"SetState {self.state}/{self.status if self.status is not None else '-'}"


REVISE = Step(3, 3)
"""SetState Under Revision (status 3): what lets an update change a published or retired product."""


def step_of(table: str, payload: Mapping[str, Any], *, create: bool) -> Step | None:
    """The state step a row of ``table`` with ``payload`` needs after its create or update.

    An update sets the state in its own body (a PATCH may), except an opportunity's close and a
    product's state: a product is edited in Draft or Under Revision and set to the state it must
    end in afterwards (:func:`needs_revision`).
    """
    state, status = payload.get("statecode"), payload.get("statuscode")
    if table == "product":
        if state is None and not create:
            return None
        state = 0 if state is None else int(state)
        return Step(state, status if status is not None else (1 if state == 0 else 2))
    if state is None:
        return None
    if table == "opportunity" and state in (1, 2):
        return Step(int(state), status, close=True)
    if not create or state == 0:
        return None
    return Step(int(state), status)


def needs_revision(table: str, changes: Iterable[str], statecode: Any) -> bool:
    """Whether an update that writes ``changes`` (column names, ``<nav>@odata.bind``) must revise
    the row first (:data:`REVISE`): a product whose current ``statecode`` is not Draft or Under
    Revision (or was not read), when the update changes more than the state (reference 10.4:
    "only draft products can be edited", 0x8004F995; a state-only PATCH needs no revision)."""
    return (
        table == "product"
        and statecode not in DRAFT_EDITABLE_STATES
        and any(name not in _STATE for name in changes)
    )


def body_of(
    table: str, payload: Mapping[str, Any], binds: Mapping[str, str], *, create: bool
) -> dict[str, Any]:
    """The create or update body: the payload's columns and ``<nav>@odata.bind`` lookups.

    A cleared lookup (:data:`~producers.mapping.stage.CLEARED_BIND`) is not in the body: an
    update disassociates it with its own request (:func:`cleared_lookups`), and a create leaves
    it empty, as it leaves every column whose value is ``None``.
    """
    step = step_of(table, payload, create=create)
    body: dict[str, Any] = {}
    for column, value in payload.items():
        if (not create and column in _CREATE_ONLY) or (create and value is None):
            continue
        if column in _STATE and (create or step is not None):
            # on create, only an open state's status is valid (reference 9.5)
            if create and column == "statuscode" and step is None and table != "product":
                body[column] = value
            continue
        body[column] = value
    for navigation, reference in binds.items():
        if reference != CLEARED_BIND:
            body[f"{navigation}@odata.bind"] = reference
    return body


def cleared_lookups(binds: Mapping[str, str]) -> list[str]:
    """The navigation properties whose lookup the decision empties."""
    return [navigation for navigation, reference in binds.items() if reference == CLEARED_BIND]


def clear_request(table: str, row_id: str, navigation: str) -> tuple[str, str]:
    """(method, path) that empties a lookup: ``DELETE <set>(<id>)/<nav>/$ref`` (reference 2.9)."""
    return "DELETE", f"{entity_set(table)}({row_id})/{navigation}/$ref"


def step_request(
    table: str, row_id: str, payload: Mapping[str, Any], step: Step
) -> tuple[str, str, dict[str, Any]]:
    """(method, path, body) of the request that performs ``step`` on the row."""
    if step.close:
        won = step.state == 1
        close: dict[str, Any] = {
            "activityid": close_activity_id(row_id),
            "subject": ("Won: " if won else "Lost: ") + str(payload.get("name") or row_id)[:190],
            "opportunityid@odata.bind": f"/opportunities({row_id})",
        }
        if payload.get("actualvalue") is not None:
            close["actualrevenue"] = payload["actualvalue"]
        if payload.get("actualclosedate") is not None:
            close["actualend"] = payload["actualclosedate"]
        status = step.status if step.status is not None else (3 if won else 4)
        action = "WinOpportunity" if won else "LoseOpportunity"
        return "POST", action, {"Status": status, "OpportunityClose": close}
    body: dict[str, Any] = {"statecode": step.state}
    if step.status is not None:
        body["statuscode"] = step.status
    return "PATCH", f"{entity_set(table)}({row_id})", body


def lookup_column(navigation: str) -> str:
    """The lookup column a navigation property sets (``parentcustomerid_account`` → the
    ``parentcustomerid`` column)."""
    for column in _POLYMORPHIC:
        if navigation.startswith(column + "_"):
            return column
    return navigation


def read_columns(body: Mapping[str, Any]) -> list[str]:
    """The ``$select`` names that read back what ``body`` writes (lookups as ``_x_value``)."""
    names: list[str] = []
    for name in body:
        if name.endswith("@odata.bind"):
            names.append(f"_{lookup_column(name.removesuffix('@odata.bind'))}_value")
        elif "@" not in name:
            names.append(name)
    return names


def before_image(body: Mapping[str, Any], row: Mapping[str, Any], *, state: bool) -> dict[str, Any]:
    """The row's values of every column ``body`` writes, as a body that restores them.

    Lookups are ``<nav>@odata.bind`` to the row they pointed at (the navigation property is
    adapted when a polymorphic lookup pointed at another table), or ``None`` when empty; a
    lookup the write clears is in ``body`` with the value ``None``.
    ``state`` adds the row's ``statecode``/``statuscode`` (the write changes the state).
    """
    image: dict[str, Any] = {}
    for name, value in body.items():
        if name.endswith("@odata.bind"):
            navigation = name.removesuffix("@odata.bind")
            column = lookup_column(navigation)
            old = row.get(f"_{column}_value")
            if old is None:
                image[name] = None
                continue
            kind = row.get(f"_{column}_value@Microsoft.Dynamics.CRM.lookuplogicalname")
            if value is None:  # cleared: the table a polymorphic navigation names
                named = navigation.removeprefix(f"{column}_").split("_", 1)[0]
                now_set = entity_set(named) if navigation != column else entity_set(str(kind))
            else:
                now_set = str(value).lstrip("/").split("(", 1)[0]
            old_set = entity_set(str(kind)) if kind else now_set
            if old_set != now_set and navigation != column:
                now_table = next((t for t in _tables_of(now_set) if t in navigation), "")
                if now_table and kind:
                    navigation = navigation.replace(f"_{now_table}", f"_{kind}", 1)
            image[f"{navigation}@odata.bind"] = f"/{old_set}({old})"
        elif "@" not in name and name not in _STATE:
            image[name] = row.get(name)
    if state:
        for name in _STATE:
            if name in row:
                image[name] = row.get(name)
    return image


def _tables_of(set_name: str) -> list[str]:
    # entity_set is not invertible in general; the tables a bind can name are few
    candidates = ("account", "contact", "opportunity", "systemuser", "team", "phonecall")
    return [table for table in candidates if entity_set(table) == set_name]
