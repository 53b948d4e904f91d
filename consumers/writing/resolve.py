"""Binds the transform cannot make itself, resolved in the tenant and cached for the run.

* **Owners** are decided by e-mail (``/systemusers(internalemailaddress='a@b.c')``): a user's id
  exists only in the tenant. The writer reads the users of a batch with one query and binds
  ``/systemusers(<id>)``; a disabled user is bound all the same, so Dataverse refuses the record
  with its own error (0x80040225).
* **Units**: work4all units become unit groups, and Dataverse creates each group's base unit
  itself, with an id of its own (reference 10.4). A product's ``defaultuomid`` is bound to the
  base unit of its ``defaultuomscheduleid``; a price list item's, quote line's or invoice line's
  ``uomid`` to the default unit of its product.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from consumers.dataverse.client import DataverseClient

_USER_BIND = re.compile(r"^/?systemusers\(internalemailaddress='((?:[^']|'')*)'\)$")
_ID_BIND = re.compile(r"^/?(\w+)\(([0-9a-fA-F-]{36})\)$")
UNIT_TABLES = frozenset({"productpricelevel", "quotedetail", "opportunityproduct"})
_FILTER_CHUNK = 50

Call = Callable[[Callable[[], dict[str, Any]]], dict[str, Any]]


class UnresolvedError(Exception):
    """A bind names a row the tenant does not have (Dataverse's ObjectDoesNotExist)."""

    status = 404
    code = "0x80040217"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def user_email(reference: str) -> str | None:
    """The e-mail of an owner bind by primary e-mail, ``None`` for any other bind."""
    match = _USER_BIND.match(reference)
    return match.group(1).replace("''", "'") if match else None


def bound_id(reference: str, entity_set: str) -> str | None:
    """The id of a ``/<entity_set>(<id>)`` bind, else ``None``."""
    match = _ID_BIND.match(reference)
    return match.group(2).lower() if match and match.group(1) == entity_set else None


class Resolver:
    """Resolves owner and unit binds for the writer's threads, one query per batch and kind."""

    def __init__(self, client: DataverseClient, call: Call) -> None:
        self._client = client
        self._call = call
        self._lock = threading.Lock()
        self._users: dict[str, str | None] = {}
        self._base_units: dict[str, str | None] = {}
        self._product_units: dict[str, str | None] = {}

    def prepare(self, table: str, binds: Iterable[dict[str, str]]) -> None:
        """Look up, in as few queries as possible, what :meth:`resolve` will need."""
        emails: set[str] = set()
        schedules: set[str] = set()
        products: set[str] = set()
        for bind in binds:
            for reference in bind.values():
                email = user_email(reference)
                if email is not None:
                    emails.add(email.lower())
            if table == "product":
                schedule = bound_id(bind.get("defaultuomscheduleid", ""), "uomschedules")
                if schedule and "defaultuomid" not in bind:
                    schedules.add(schedule)
            if table in UNIT_TABLES and "uomid" not in bind:
                product = bound_id(bind.get("productid", ""), "products")
                if product:
                    products.add(product)
        self._fetch_users(emails - self._users.keys())
        self._fetch_base_units(schedules - self._base_units.keys())
        self._fetch_product_units(products - self._product_units.keys())

    def resolve(self, table: str, binds: dict[str, str]) -> dict[str, str]:
        """``binds`` with owners by id and the units Dataverse needs; :class:`UnresolvedError`."""
        resolved: dict[str, str] = {}
        for navigation, reference in binds.items():
            email = user_email(reference)
            if email is None:
                resolved[navigation] = reference
                continue
            user = self._users.get(email.lower())
            if user is None:
                raise UnresolvedError(
                    f"systemuser With internalemailaddress = '{email}' Does Not Exist"
                    f" ({navigation}: no user in the tenant has this primary e-mail)"
                )
            resolved[navigation] = f"/systemusers({user})"
        if table == "product" and "defaultuomid" not in resolved:
            schedule = bound_id(resolved.get("defaultuomscheduleid", ""), "uomschedules")
            if schedule is not None:
                unit = self._base_units.get(schedule)
                if unit is None:
                    raise UnresolvedError(
                        f"uomschedule With Id = {schedule} has no base unit (defaultuomid)"
                    )
                resolved["defaultuomid"] = f"/uoms({unit})"
        if table in UNIT_TABLES and "uomid" not in resolved:
            product = bound_id(resolved.get("productid", ""), "products")
            if product is not None:
                unit = self._product_units.get(product)
                if unit is None:
                    raise UnresolvedError(f"product With Id = {product} has no default unit")
                resolved["uomid"] = f"/uoms({unit})"
        return resolved

    def product_written(self, product_id: str, binds: dict[str, str]) -> None:
        """Remember the default unit of a product this writer has just written."""
        unit = bound_id(binds.get("defaultuomid", ""), "uoms")
        if unit is not None:
            with self._lock:
                self._product_units[product_id.lower()] = unit

    # -- queries ---------------------------------------------------------------------------

    def _fetch_users(self, emails: set[str]) -> None:
        found: dict[str, str | None] = dict.fromkeys(emails)
        for chunk in _chunks(sorted(emails)):
            clauses = " or ".join(
                f"internalemailaddress eq '{email.replace(chr(39), chr(39) * 2)}'"
                for email in chunk
            )
            for row in self._query("systemusers", "systemuserid,internalemailaddress", clauses):
                email = str(row.get("internalemailaddress") or "").lower()
                if email in found:
                    found[email] = str(row["systemuserid"]).lower()
        with self._lock:
            self._users.update(found)

    def _fetch_base_units(self, schedules: set[str]) -> None:
        found: dict[str, str | None] = dict.fromkeys(schedules)
        for chunk in _chunks(sorted(schedules)):
            clauses = " or ".join(f"_uomscheduleid_value eq {s}" for s in chunk)
            units: dict[str, list[dict[str, Any]]] = {}
            for row in self._query("uoms", "uomid,_uomscheduleid_value,_baseuom_value", clauses):
                units.setdefault(str(row["_uomscheduleid_value"]).lower(), []).append(row)
            for schedule, rows in units.items():
                # the base unit refers to itself; a group of one unit has only its base unit
                base = [r for r in rows if r.get("_baseuom_value") == r["uomid"]] or rows[:1]
                found[schedule] = str(base[0]["uomid"]).lower()
        with self._lock:
            self._base_units.update(found)

    def _fetch_product_units(self, products: set[str]) -> None:
        found: dict[str, str | None] = dict.fromkeys(products)
        for chunk in _chunks(sorted(products)):
            clauses = " or ".join(f"productid eq {p}" for p in chunk)
            for row in self._query("products", "productid,_defaultuomid_value", clauses):
                unit = row.get("_defaultuomid_value")
                found[str(row["productid"]).lower()] = str(unit).lower() if unit else None
        with self._lock:
            for product, unit in found.items():
                self._product_units.setdefault(product, unit)

    def _query(self, entity_set: str, select: str, clauses: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        params = {"$select": select, "$filter": clauses}

        result = self._call(functools.partial(self._client.get, entity_set, params))
        rows.extend(result.get("value", []))
        while "@odata.nextLink" in result:
            link = str(result["@odata.nextLink"])
            result = self._call(functools.partial(self._client.get, link))
            rows.extend(result.get("value", []))
        return rows


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _FILTER_CHUNK):
        yield items[start : start + _FILTER_CHUNK]
