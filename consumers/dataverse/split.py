"""Isolate the bad records of an all-or-nothing bulk request and write the others.

On standard tables ``CreateMultiple``/``UpdateMultiple``/``UpsertMultiple`` fail the whole request
when one target fails, and the error does not always say which one (reference 6.6).
:func:`isolate_failures` sends a batch; when it fails because of a record, it resends the rest:

* when the error names the failing target (an ``index`` attribute, or ``Targets[i]`` in the message
  as the emulator's payload errors have), that target is reported with the error and everything
  else is sent again at once: ``k + 1`` requests for ``k`` bad records;
* otherwise the failed part is halved; when a left half is written whole, the right half is known
  to hold the failure, so it is split without being sent, and a single record left over takes its
  parent's error. At most ``1 + 2·k·⌈log₂ n⌉`` requests (and never more than ``2n - 1``) for ``k``
  bad records among ``n``: one for the whole batch, two for the children of each failed part, and
  a failed part lies on the path from the batch to a bad record.

Every record ends either written, rejected with its own error, or — when a request fails for a
reason no record explains (auth, a 5xx after retries) — unsent with that error, and nothing more is
sent. ``send`` must be all-or-nothing: it writes every item it is given or none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

RECORD_STATUSES = frozenset({400, 404, 409, 412, 413, 422})
"""Statuses of an error that one record (or too many records) can cause; halving can help."""

_TARGET_INDEX = re.compile(r"\bTargets\[(\d+)\]")


@dataclass(frozen=True)
class Written(Generic[T, R]):
    """A record the service wrote, with what ``send`` returned for it."""

    index: int
    item: T
    result: R


@dataclass(frozen=True)
class Rejected(Generic[T]):
    """A record the service refused, with its own error."""

    index: int
    item: T
    error: Exception


@dataclass(frozen=True)
class Unsent(Generic[T]):
    """A record not written because a request failed for a reason no record explains."""

    index: int
    item: T
    error: Exception


ItemOutcome = Written[T, R] | Rejected[T] | Unsent[T]


@dataclass
class SplitReport(Generic[T, R]):
    """Per input item, in input order, what became of it; and how many requests it took."""

    outcomes: list[ItemOutcome[T, R]]
    requests: int

    @property
    def written(self) -> list[Written[T, R]]:
        """The records written."""
        return [o for o in self.outcomes if isinstance(o, Written)]

    @property
    def rejected(self) -> list[Rejected[T]]:
        """The records refused, each with its own error."""
        return [o for o in self.outcomes if isinstance(o, Rejected)]

    @property
    def unsent(self) -> list[Unsent[T]]:
        """The records not written for a request-level reason (worth retrying later)."""
        return [o for o in self.outcomes if isinstance(o, Unsent)]


def is_record_error(error: Exception) -> bool:
    """Whether ``error`` can be the fault of a record in the request (so splitting helps).

    An error with a ``status`` in :data:`RECORD_STATUSES`; a ``ValueError`` raised by ``send``
    itself (a target it cannot serialise) also counts.
    """
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status in RECORD_STATUSES
    return isinstance(error, ValueError)


def failing_index(error: Exception, size: int) -> int | None:
    """The position of the failing target within the request, if the error names it.

    An integer ``index`` attribute, else the first ``Targets[i]`` in the error's ``message`` (or
    its text). ``None`` when neither is there or the position is outside the request.
    """
    candidate = getattr(error, "index", None)
    if not isinstance(candidate, int) or isinstance(candidate, bool):
        message = getattr(error, "message", None)
        found = _TARGET_INDEX.search(message if isinstance(message, str) else str(error))
        candidate = int(found.group(1)) if found else None
    return candidate if candidate is not None and 0 <= candidate < size else None


def isolate_failures(
    items: Sequence[T],
    send: Callable[[Sequence[T]], Sequence[R]],
    *,
    locate: Callable[[Exception, int], int | None] = failing_index,
    splittable: Callable[[Exception], bool] = is_record_error,
) -> SplitReport[T, R]:
    """Write ``items`` with ``send``, isolating each record that makes a request fail.

    ``send(chunk)`` writes all of ``chunk`` and returns one result per item, in order (the ids
    of ``CreateMultiple``), or raises. ``locate(error, len(chunk))`` gives the failing item's
    position when the error names it; ``splittable(error)`` says whether a record can be to blame.
    """
    return _Isolation(items, send, locate, splittable).run()


class _AbortError(Exception):
    """A request failed for a reason no record explains; stop sending."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Isolation(Generic[T, R]):
    items: Sequence[T]
    send: Callable[[Sequence[T]], Sequence[R]]
    locate: Callable[[Exception, int], int | None]
    splittable: Callable[[Exception], bool]
    requests: int = 0
    outcomes: dict[int, ItemOutcome[T, R]] = field(default_factory=dict)

    def run(self) -> SplitReport[T, R]:
        try:
            self._settle(list(range(len(self.items))), None)
        except _AbortError as abort:
            for index, item in enumerate(self.items):
                self.outcomes.setdefault(index, Unsent(index, item, abort.error))
        ordered = [self.outcomes[index] for index in range(len(self.items))]
        return SplitReport(ordered, self.requests)

    def _settle(self, part: list[int], known_error: Exception | None) -> bool:
        """Settle every item of ``part``; True iff ``part`` was written by one request.

        ``known_error``: ``part`` is known to fail with this error, so it is not sent whole.
        """
        whole = True
        while known_error is None and part:
            error = self._try(part)
            if error is None:
                return whole
            position = self.locate(error, len(part))
            if position is None:
                known_error = error
                break
            # The service named the record: everything else goes again at once.
            self._reject(part[position], error)
            part = part[:position] + part[position + 1 :]
            whole = False
        if known_error is None:
            return whole
        if len(part) == 1:
            self._reject(part[0], known_error)
            return False
        middle = len(part) // 2
        left, right = part[:middle], part[middle:]
        if self._settle(left, None):
            # The failure is in the right half (the service is all-or-nothing and deterministic).
            self._settle(right, known_error)
        else:
            self._settle(right, None)
        return False

    def _try(self, part: list[int]) -> Exception | None:
        chunk = [self.items[index] for index in part]
        self.requests += 1
        try:
            results = self.send(chunk)
        except Exception as error:
            if not self.splittable(error):
                raise _AbortError(error) from error
            return error
        if len(results) != len(part):
            raise ValueError(f"send returned {len(results)} results for {len(part)} items")
        for index, result in zip(part, results, strict=True):
            self.outcomes[index] = Written(index, self.items[index], result)
        return None

    def _reject(self, index: int, error: Exception) -> None:
        self.outcomes[index] = Rejected(index, self.items[index], error)
