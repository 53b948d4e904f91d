"""The :class:`~producers.mapping.transforms.Context` the transform stage gives every transform.

Lookups resolve within the run: a record resolves when pass 1 saw it under the named object and
pass 2 has not rejected it; a duplicate or a merged supplier resolves to its survivor's row.
Owners are matched by e-mail: the bind addresses the ``systemuser`` by its primary e-mail
(``/systemusers(internalemailaddress='…')``), because the user's id is only known in the tenant;
the writer resolves it there. A user who left, a code without a match, a user without e-mail,
no owner at all or only a free-text name → the map's fallback owner plus a warning note.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ledger.events import deterministic_id
from producers.mapping import rules
from producers.mapping.index import Member, RunIndex, User
from producers.mapping.transforms import Bind, note

SYSTEMUSERS = "systemusers"


@lru_cache(maxsize=1 << 16)
def target_id(source_table: str, code: object) -> str:
    """The Dataverse id of the row a work4all record becomes: uuid5 of its table and ``Code``.

    Writers reuse it, so a retried write addresses the same row and never duplicates it.
    """
    return str(deterministic_id("target", source_table, str(code)))


def user_bind(email: str) -> Bind:
    """The bind of the ``systemuser`` with this primary e-mail address."""
    return Bind(SYSTEMUSERS, f"internalemailaddress='{email.replace(chr(39), chr(39) * 2)}'")


class StageContext:
    """What transforms may ask about the rest of the run while one object is decided."""

    def __init__(self, index: RunIndex) -> None:
        self._index = index
        self._map = index.migration_map
        self._objects = {obj.name: obj for obj in self._map.objects}
        self.rejected: dict[str, set[str]] = {obj.name: set() for obj in self._map.objects}
        self.rank = -1
        """rank of the object being decided; lookups to later objects are forward lookups."""
        self.forward: list[str] = []
        """lookups of the current record that point at a record decided later."""
        self._by_name = self._names(index.users.values())

    def resolve(self, object_name: str, source_key: Any) -> Bind | None:
        """The row record ``source_key`` of ``object_name`` becomes, or None if not migrated."""
        if source_key is None or source_key == "" or object_name not in self._objects:
            return None
        key = str(source_key)
        if key not in self._index.object_keys[object_name]:
            return None
        member: Member = self._index.redirects.get((object_name, key), (object_name, key))
        survivor = self._objects[member[0]]
        if self._index.ranks[member[0]] > self.rank:
            self.forward.append(f"{object_name}:{key}")
        elif member[1] in self.rejected[member[0]]:
            return None
        row = target_id(survivor.primary_source, member[1])
        return Bind(rules.entity_set(survivor.target), row)

    def owner(self, user_code: Any) -> tuple[Bind | None, list[str]]:
        """The owner for a work4all user code (or a free-text name), with warning notes."""
        if isinstance(user_code, str) and not user_code.strip().lstrip("-").isdigit():
            return self._free_text_owner(user_code)
        code = _code(user_code)
        if code is None:
            return self._fallback(rules.OWNER_MISSING, "the work4all record names no owner")
        user = self._index.users.get(code)
        if user is None:
            return self._fallback(rules.OWNER_UNMATCHED, f"Mitarbeiter {code} does not exist")
        if user.departed:
            return self._fallback(
                rules.OWNER_DEPARTED, f"Mitarbeiter {code} ({user.name}) has left (Ausgeschieden)"
            )
        if user.email is None:
            return self._fallback(
                rules.OWNER_NO_EMAIL, f"Mitarbeiter {code} ({user.name}) has no e-mail to match"
            )
        return user_bind(user.email), []

    def setting(self, name: str) -> Any:
        """A map-wide setting."""
        return getattr(self._map.settings, name)

    def _free_text_owner(self, text: str) -> tuple[Bind | None, list[str]]:
        candidates = self._by_name.get(_name_key(text), [])
        active = [user for user in candidates if not user.departed and user.email]
        if len(active) == 1:
            user = active[0]
            assert user.email is not None
            return user_bind(user.email), [
                note(
                    rules.OWNER_FREE_TEXT,
                    f"owner only named as free text {text!r}; matched to Mitarbeiter"
                    f" {user.code} ({user.name})",
                )
            ]
        why = "matches no active user" if not active else f"matches {len(active)} users"
        return self._fallback(rules.OWNER_FREE_TEXT, f"owner only named as {text!r}, which {why}")

    def _fallback(self, code: str, why: str) -> tuple[Bind | None, list[str]]:
        fallback = self._map.settings.fallback_owner
        if not fallback:
            return None, [
                note(code, f"{why}; no fallback owner is configured, the writing user owns it")
            ]
        return user_bind(fallback), [note(code, f"{why}; fallback owner {fallback}")]

    @staticmethod
    def _names(users: Any) -> dict[str, list[User]]:
        names: dict[str, list[User]] = {}
        for user in users:
            first, last = rules.fold(user.first), rules.fold(user.last)
            if not last:
                continue
            variants = {
                f"{first} {last}",
                f"{first[:1]} {last}",
                f"{first[:1]}{last}".replace(" ", ""),
                last,
            }
            for variant in variants:
                names.setdefault(variant, []).append(user)
        return names


def _name_key(text: str) -> str:
    return rules.fold(text)


def _code(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        code = int(value)
    except (TypeError, ValueError):
        return None
    return code or None
