"""Rolling back a whole run leaves the target exactly as it was before the run."""

from __future__ import annotations

from consumers.rollback import plan_rollback, rollback
from ledger.event_types import DestinationDeleted, DestinationRestored, RollbackPlanned
from tests.rollback.conftest import RUN, Migrated


def test_rolling_back_the_run_gives_back_the_digest_from_before_it_updated_rows_included(
    migrated: Migrated,
) -> None:
    assert migrated.digest() != migrated.baseline.digest_before

    summary = rollback(migrated.log, migrated.client, run_id=RUN)

    assert summary.failed == []
    assert migrated.digest() == migrated.baseline.digest_before
    assert summary.restored["account"] == len(migrated.baseline.updated_accounts)
    assert summary.restored["contact"] == 1
    assert summary.deleted["opportunityclose"] > 0
    assert summary.deleted["uom"] == summary.deleted["uomschedule"] > 0
    contact = migrated.client.get(
        f"contacts({migrated.baseline.updated_contact})",
        {"$select": "lastname,_parentcustomerid_value"},
    )
    assert contact["lastname"] == "Vorher"
    assert contact["_parentcustomerid_value"] is None


def test_each_action_appends_one_event_keyed_by_the_source_key_and_a_second_rollback_does_nothing(
    migrated: Migrated,
) -> None:
    first = rollback(migrated.log, migrated.client, run_id=RUN)
    end = migrated.log.end_position()
    digest = migrated.digest()

    again = rollback(migrated.log, migrated.client, run_id=RUN)

    assert again.plan.empty
    assert again.appended == 0
    assert migrated.log.end_position() == end
    assert migrated.digest() == digest
    events = [s.event for s in migrated.log.read() if s.event.run_id == RUN]
    plans = [e for e in events if e.type == RollbackPlanned.event_type]
    undone = [
        e
        for e in events
        if e.type in (DestinationDeleted.event_type, DestinationRestored.event_type)
    ]
    assert len(plans) == 1
    assert len(plans[0].payload["actions"]) == len(undone) == first.done
    assert len({(e.payload["target_table"], e.payload["target_id"]) for e in undone}) == len(undone)
    assert all(":" in e.key and not e.key.startswith("rollback") for e in undone)
    restored = [e for e in undone if e.type == DestinationRestored.event_type]
    assert all(e.payload["restored"] for e in restored)


def test_the_plan_deletes_children_before_their_parents(migrated: Migrated) -> None:
    plan = plan_rollback(migrated.log, migrated.client, run_id=RUN)
    order = [action.table for action in plan.actions]

    def last(table: str) -> int:
        return max(i for i, t in enumerate(order) if t == table)

    def first(table: str) -> int:
        return min(i for i, t in enumerate(order) if t == table)

    assert last("annotation") < first("phonecall")
    assert last("quotedetail") < first("quote") < first("opportunity")
    assert last("opportunityproduct") < first("opportunity")
    assert last("productpricelevel") < first("product") < first("uom") < first("uomschedule")
    assert last("contact") < first("account")
    assert last("opportunity") < first("account")
