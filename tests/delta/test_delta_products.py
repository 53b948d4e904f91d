"""Delta runs that change published products: revised, updated, set to their state again.

Dataverse edits only Draft or Under Revision products (reference 10.4, 0x8004F995), and the
migration publishes every product it creates. A newer export that renames, reprices or retires
an item (work4all ``Artikel``) must still update the product, in one changeset, and leave it as
a fresh migration of the newer export would; rolling the delta back must leave every product as
the base migration did, published again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consumers.dataverse.client import client_from_settings
from consumers.delta import DeltaMigrationSummary, deletion_totals
from consumers.rollback import Action, RollbackPlan, _changeset, rollback
from consumers.writing import rows
from ledger.event_types import (
    DestinationWriteFailed,
    DestinationWriteIntended,
    DestinationWritten,
    SourceRecordChanged,
    TransformDecided,
)
from ledger.events import Event
from ledger.log import open_log
from producers.mapping.context import target_id
from tests.delta.conftest import Generations
from tests.delta.products_conftest import (
    ProductEdits,
    copy_export,
    edit_products,
    free_product,
    retired_codes,
)
from tests.delta.test_delta import BASE, DELTA, FRESH, _delta, _migrate, _rows
from tests.migration.conftest import Target, target_for

Row = tuple[str, str]


def _product(code: int) -> Row:
    return ("product", target_id("Artikel", code).lower())


def _digest(target: Target) -> str:
    """The emulator's content digest (without row versions and modification times)."""
    return target.emulator.emulator.store.digest(content=True)


def _run_events(target: Target, run_id: str) -> list[Event]:
    with open_log(target.settings.log_url) as log:
        return [stored.event for stored in log.read() if stored.event.run_id == run_id]


def _published_products(target: Target, export: Path) -> tuple[list[int], list[int]]:
    """The ``Artikel`` codes the base run wrote as products: (active ones, retired ones)."""
    written = {
        event.key
        for event in _run_events(target, BASE)
        if event.type == DestinationWritten.event_type
        and event.payload["target_table"] == "product"
    }
    codes = sorted(int(key.split(":", 1)[1]) for key in written if key.startswith("Artikel:"))
    retired = retired_codes(export)
    return [c for c in codes if c not in retired], [c for c in codes if c in retired]


def _rollback(target: Target) -> tuple[int, int]:
    """Roll the delta run back, then again: (rows restored, events the second call appended)."""
    with open_log(target.settings.log_url) as log, client_from_settings(target.settings) as c:
        first = rollback(log, c, run_id=DELTA)
        second = rollback(log, c, run_id=DELTA)
    assert not first.failed, first.failed
    return sum(first.restored.values()), second.appended


def _by_type(events: list[Event], event_type: str, table: str = "product") -> dict[str, Event]:
    return {
        event.key: event
        for event in events
        if event.type == event_type and event.payload.get("target_table") == table
    }


def test_a_delta_updates_published_and_retired_products_like_a_fresh_run_and_rolls_back(
    generations: Generations, tls_dir: Path, tmp_path: Path
) -> None:
    with target_for(
        generations.first, tls_dir, log_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        db_url=f"sqlite:///{tmp_path / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        base_rows, base_digest = _rows(target), _digest(target)
        active, retired = _published_products(target, generations.first)
        assert len(active) >= 4, active
        assert retired, "the export has no retired item"
        edits = ProductEdits(
            renamed=[active[0], active[2], retired[0]],
            repriced=[active[1], active[2]],
            retired=[active[3]],
        )
        newer = copy_export(generations.first, tmp_path / "newer")
        edit_products(newer, edits)
        summary = _delta(target, newer, "delete")
        events = _run_events(target, DELTA)
        delta_rows = _rows(target)
        restored, appended_again = _rollback(target)
        restored_rows, restored_digest = _rows(target), _digest(target)

    assert summary.passed, (summary.stopped, summary.failures)
    changed = {e.key for e in events if e.type == SourceRecordChanged.event_type}
    assert changed == {f"Artikel:{code}" for code in edits.changed}
    assert {e.key for e in events if e.type == TransformDecided.event_type} == changed
    assert not [e for e in events if e.type == DestinationWriteFailed.event_type]

    # every changed product was updated: revised, patched and set to its state, one changeset
    written = _by_type(events, DestinationWritten.event_type)
    intents = _by_type(events, DestinationWriteIntended.event_type)
    assert set(written) == changed
    assert {e.payload["op"] for e in written.values()} == {"update"}
    for code in edits.changed:
        key, row = f"Artikel:{code}", _product(code)
        ends = "SetState 1/2" if code in (*retired, *edits.retired) else "SetState 0/1"
        assert intents[key].payload["steps"] == ["SetState 3/3", ends], key
        image = written[key].payload["before_image"]
        for column in ("name", "price", "statecode", "statuscode"):
            assert image[column] == base_rows[row].get(column), (key, column)
    for code in edits.renamed:
        assert delta_rows[_product(code)]["name"] == "Neu: " + base_rows[_product(code)]["name"]
    for code in edits.repriced:
        assert delta_rows[_product(code)]["price"] != base_rows[_product(code)]["price"]
    for code in (*retired, *edits.retired):
        assert (
            delta_rows[_product(code)]["statecode"],
            delta_rows[_product(code)]["statuscode"],
        ) == (1, 2)
    assert all(
        delta_rows[_product(code)]["statecode"] == 0 for code in active if code not in edits.retired
    )

    # the delta's target equals a fresh migration of the newer export, row for row
    with target_for(
        newer, tls_dir, log_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        db_url=f"sqlite:///{tmp_path / 'fresh-projections.db'}", run_id=FRESH,
    ) as fresh:  # fmt: skip
        _migrate(fresh, FRESH)
        fresh_rows = _rows(fresh)
    assert set(delta_rows) == set(fresh_rows)
    differing = _differing(delta_rows, fresh_rows)
    assert not differing, list(differing.items())[:5]

    # rolling the delta back leaves every product as the base migration did
    assert restored == len(changed)
    assert appended_again == 0, "a finished rollback appends nothing"
    products = [_product(code) for code in edits.changed]
    assert {row: restored_rows[row] for row in products} == {
        row: base_rows[row] for row in products
    }
    assert restored_digest == base_digest


@dataclass(frozen=True)
class _Deactivated:
    """A base migration, a delta run that renames one product and deactivates a deleted one,
    and the rollback of that delta run."""

    renamed: int
    deleted: int
    summary: DeltaMigrationSummary
    events: list[Event]
    base_rows: dict[Row, dict[str, Any]]
    delta_rows: dict[Row, dict[str, Any]]
    restored_rows: dict[Row, dict[str, Any]]
    restored: int
    base_digest: str
    restored_digest: str


@pytest.fixture(scope="module")
def deactivated(
    generations: Generations, tls_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> _Deactivated:
    """Migrate, run a "deactivate" delta that deletes an item no other record refers to and
    renames another, and roll it back."""
    folder = tmp_path_factory.mktemp("deactivated")
    first = copy_export(generations.first, folder / "first")
    unused = free_product(first)  # deleting it changes no other record's decision
    with target_for(
        first, tls_dir, log_url=f"sqlite:///{folder / 'ledger.db'}",
        db_url=f"sqlite:///{folder / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        base_rows, base_digest = _rows(target), _digest(target)
        active, _retired = _published_products(target, first)
        assert unused in active
        other = next(code for code in active if code != unused)
        newer = copy_export(first, folder / "newer")
        edit_products(newer, ProductEdits(renamed=[other], deleted=[unused]))
        summary = _delta(target, newer, "deactivate")
        events = _run_events(target, DELTA)
        delta_rows = _rows(target)
        restored, _appended = _rollback(target)
        return _Deactivated(
            other, unused, summary, events, base_rows, delta_rows, _rows(target), restored,
            base_digest, _digest(target),
        )  # fmt: skip


def test_a_delta_retires_the_product_of_a_deleted_item_in_deactivate_mode(
    deactivated: _Deactivated,
) -> None:
    run = deactivated
    assert run.summary.passed, (run.summary.stopped, run.summary.failures)
    assert deletion_totals(run.summary)["deactivated"] == 1
    written = _by_type(run.events, DestinationWritten.event_type)
    renamed, deleted = f"Artikel:{run.renamed}", f"Artikel:{run.deleted}"
    assert set(written) == {renamed, deleted}
    assert written[deleted].payload["before_image"] == {"statecode": 0, "statuscode": 1}
    gone, kept = run.delta_rows[_product(run.deleted)], run.base_rows[_product(run.deleted)]
    assert (gone["statecode"], gone["statuscode"]) == (1, 2)  # Retired
    state = ("statecode", "statuscode")
    assert {c: v for c, v in gone.items() if c not in state} == {
        c: v for c, v in kept.items() if c not in state
    }
    assert run.delta_rows[_product(run.renamed)]["name"].startswith("Neu: ")
    assert run.delta_rows[_product(run.renamed)]["statecode"] == 0
    # the product updated in the same run is restored and published again
    row = _product(run.renamed)
    assert run.restored_rows[row] == run.base_rows[row]


def test_rolling_back_a_deactivate_delta_publishes_the_deactivated_product_again(
    deactivated: _Deactivated,
) -> None:
    row = _product(deactivated.deleted)
    assert deactivated.restored_rows[row] == deactivated.base_rows[row]
    assert deactivated.restored == 2
    assert deactivated.restored_digest == deactivated.base_digest


def test_only_an_update_of_a_product_outside_draft_or_revision_needs_a_revision() -> None:
    assert rows.needs_revision("product", ["name", "statecode"], 0)  # Active
    assert rows.needs_revision("product", ["price"], 1)  # Retired
    assert rows.needs_revision("product", ["name"], None)  # state not read
    assert not rows.needs_revision("product", ["name"], 2)  # Draft
    assert not rows.needs_revision("product", ["name"], 3)  # Under Revision
    assert not rows.needs_revision("product", ["statecode", "statuscode"], 0)  # SetState only
    assert not rows.needs_revision("account", ["name"], 1)


def test_a_product_restore_revises_restores_and_sets_the_state_of_the_before_image() -> None:
    image = {"name": "Alt", "price": 10.0, "statecode": 0, "statuscode": 1}
    action = Action("restore", "product", "p-1", "Artikel:1", 3, "u-1", "updated", image)
    plan = RollbackPlan("r", "run", (3,), current={("product", "p-1"): {"statecode": 0}})
    requests = [(r.method, r.path, r.body) for r in _changeset(action, plan)]
    assert requests == [
        ("PATCH", "products(p-1)", {"statecode": 3, "statuscode": 3}),
        ("PATCH", "products(p-1)", {"name": "Alt", "price": 10.0}),
        ("PATCH", "products(p-1)", {"statecode": 0, "statuscode": 1}),
    ]
    # a draft product is edited as it is; without a state in the image it keeps its own
    plan.current[("product", "p-1")] = {"statecode": 2, "statuscode": 0}
    draft = Action("restore", "product", "p-1", "Artikel:1", 3, "u-1", "updated", {"name": "A"})
    requests = [(r.method, r.path, r.body) for r in _changeset(draft, plan)]
    assert requests == [
        ("PATCH", "products(p-1)", {"name": "A"}),
        ("PATCH", "products(p-1)", {"statecode": 2, "statuscode": 0}),
    ]
    # a state-only restore (a deactivation's) needs no revision
    state = Action("restore", "product", "p-1", "Artikel:1", 3, "u-1", "deactivated",
                   {"statecode": 0, "statuscode": 1})  # fmt: skip
    requests = [(r.method, r.path, r.body) for r in _changeset(state, plan)]
    assert requests == [("PATCH", "products(p-1)", {"statecode": 0, "statuscode": 1})]


def _differing(
    left: dict[Row, dict[str, Any]], right: dict[Row, dict[str, Any]]
) -> dict[Row, dict[str, tuple[Any, Any]]]:
    """Per row in both, the columns whose values differ: (left, right)."""
    return {
        row: {
            column: (left[row].get(column), right[row].get(column))
            for column in set(left[row]) | set(right[row])
            if left[row].get(column) != right[row].get(column)
        }
        for row in set(left) & set(right)
        if left[row] != right[row]
    }
