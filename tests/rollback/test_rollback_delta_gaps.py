"""Rolling back a delta run gives back the base content in every deletion mode.

A delta run deletes (``delete``) or deactivates (``deactivate``) the rows of deleted records and
of the records it now rejects (withdrawals, knock-ons included). Its rollback re-creates the
deleted rows first, parents first, with every lookup they held (the owner, a quote line's unit),
restores what the delta updated and deactivated, and deletes what it created: the emulator's
content digest is the base migration's again, and a second rollback appends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consumers.dataverse.client import DataverseClient, client_from_settings
from consumers.delta import DeltaMigrationSummary, DeltaRunError, deletion_totals, migrate_delta
from consumers.delta import withdrawal_totals as withdrawals
from consumers.reconcile import GateThresholds
from consumers.rollback import (
    RollbackRefusedError,
    RollbackSummary,
    _Creatable,
    _Deletion,
    _navigation_name,
    _recreate_body,
    rollback,
)
from ledger.event_types import (
    DestinationRestored,
    DestinationRowDeleted,
    DestinationWritten,
    RollbackPlanned,
)
from ledger.events import Event
from ledger.log import EventLog, open_log
from producers.delta import DeletionMode, detect
from producers.mapping.default import default_map
from producers.mapping.stage import CLEARED_BIND
from producers.work4all.cli import ExportForm, generate
from projections.counting import run_counts
from tests.delta.knock_on_data import KnockOnGenerations, knock_on_generations
from tests.delta.test_delta import _migrate, _rows
from tests.migration.conftest import Target, target_for

BASE, DELTA = "base", "delta-1"
Row = tuple[str, str]
_TYPE = "@Microsoft.Dynamics.CRM.lookuplogicalname"


@pytest.fixture(scope="module")
def knock_on(tmp_path_factory: pytest.TempPathFactory) -> KnockOnGenerations:
    """A 60-customer export and a newer one that deletes records others depend on."""
    folder = tmp_path_factory.mktemp("gaps-export")
    generate(out=str(folder), customers=60, form=ExportForm.SQL, quiet=True)
    return knock_on_generations(folder, tmp_path_factory.mktemp("gaps-export-newer"))


@dataclass(frozen=True)
class RolledBack:
    """A base migration, a delta run of the newer export, and two rollbacks of the delta run."""

    target: Target
    summary: DeltaMigrationSummary
    base_digest: str
    base_rows: dict[Row, dict[str, Any]]
    delta_rows: dict[Row, dict[str, Any]]
    rows: dict[Row, dict[str, Any]]
    """after the first rollback."""
    digest: str
    first: RollbackSummary
    second: RollbackSummary
    events: list[Event]
    """the delta run's events, the rollbacks' included."""

    def deactivated(self, *, at_end: bool) -> int:
        """Deactivated rows the counting rule reports for the delta run (before the rollback's
        events, or with them)."""
        events = self.events if at_end else [e for e in self.events if not _undoing(e)]
        return sum(
            row.get("deactivated", 0)
            for counts in run_counts(events, DELTA).values()
            for row in counts.values()
        )


def _undoing(event: Event) -> bool:
    return event.type in ("RollbackPlanned", "DestinationRestored", "DestinationDeleted",
                          "DestinationRecreated")  # fmt: skip


@pytest.fixture(scope="module", params=["delete", "deactivate"])
def rolled_back(
    request: pytest.FixtureRequest,
    knock_on: KnockOnGenerations,
    rollback_tls_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RolledBack]:
    """Migrate the first export as ``base``, run the newer one as a delta in the mode the test is
    parametrized with, and roll the delta back twice."""
    mode: DeletionMode = request.param
    folder = tmp_path_factory.mktemp(f"gaps-{mode}")
    with target_for(
        knock_on.first, rollback_tls_dir, log_url=f"sqlite:///{folder / 'ledger.db'}",
        db_url=f"sqlite:///{folder / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        base_rows, base_digest = _rows(target), target.emulator.emulator.store.digest(content=True)
        settings = target.settings
        with open_log(settings.log_url) as log, client_from_settings(settings) as client:
            detect(knock_on.newer, log, run_id=DELTA, base_run=BASE, deletions=mode)
            summary = migrate_delta(
                log, client, default_map(), run_id=DELTA,
                thresholds=GateThresholds(max_rejected_share=1.0),
            )  # fmt: skip
            delta_rows = _rows(target)
            first = rollback(log, client, run_id=DELTA)
            rows, digest = _rows(target), target.emulator.emulator.store.digest(content=True)
            second = rollback(log, client, run_id=DELTA)
            events = [stored.event for stored in log.read() if stored.event.run_id == DELTA]
        yield RolledBack(
            target, summary, base_digest, base_rows, delta_rows, rows, digest, first, second,
            events,
        )  # fmt: skip


def _differing(left: dict[Row, dict[str, Any]], right: dict[Row, dict[str, Any]]) -> list[Any]:
    return sorted(
        (row, {c: (left[row].get(c), right[row].get(c)) for c in set(left[row]) | set(right[row])
               if left[row].get(c) != right[row].get(c)})
        for row in set(left) & set(right)
        if left[row] != right[row]
    )  # fmt: skip


def test_rolling_back_a_delta_run_gives_back_the_base_content_and_a_second_does_nothing(
    rolled_back: RolledBack,
) -> None:
    run = rolled_back
    assert run.summary.passed, (run.summary.stopped, run.summary.failures)
    assert run.delta_rows != run.base_rows
    assert not run.first.failed, run.first.failed[:3]
    assert set(run.rows) == set(run.base_rows), set(run.rows) ^ set(run.base_rows)
    assert not _differing(run.base_rows, run.rows), _differing(run.base_rows, run.rows)[:3]
    assert run.digest == run.base_digest
    assert run.second.plan.empty
    assert run.second.appended == 0


@pytest.mark.parametrize("rolled_back", ["deactivate"], indirect=True)
def test_deactivations_are_restored_once_keyed_by_their_record_and_no_longer_counted(
    rolled_back: RolledBack,
) -> None:
    run = rolled_back
    causes = {e.event_id for e in run.events if e.type in ("SourceRecordDeleted", "RecordRejected")}
    deactivations = {
        e.event_id: e
        for e in run.events
        if e.type == DestinationWritten.event_type and e.causation_id in causes
    }
    expected = deletion_totals(run.summary)["deactivated"] + withdrawals(run.summary)["deactivated"]
    assert expected
    assert len(deactivations) == expected
    restored = [e for e in run.events if e.type == DestinationRestored.event_type]
    undone = {e.causation_id: e for e in restored if e.causation_id in deactivations}
    assert undone.keys() == deactivations.keys()
    for write_id, event in undone.items():
        write = deactivations[write_id]
        assert event.key == write.key
        assert event.payload["restored"] == write.payload["before_image"]
        row = (write.payload["target_table"], write.payload["target_id"])
        assert run.delta_rows[row]["statecode"] != run.base_rows[row]["statecode"]
        assert run.rows[row]["statecode"] == run.base_rows[row]["statecode"]
    assert len(restored) == len({e.event_id for e in restored})
    assert run.deactivated(at_end=False) == expected
    assert run.deactivated(at_end=True) == 0


@pytest.mark.parametrize("rolled_back", ["delete"], indirect=True)
def test_deleted_rows_are_recreated_first_with_every_lookup_they_held(
    rolled_back: RolledBack,
) -> None:
    run = rolled_back
    planned = [e for e in run.events if e.type == RollbackPlanned.event_type]
    assert len(planned) == 1
    kinds = [action["action"] for action in planned[0].payload["actions"]]
    recreates = kinds.count("recreate")
    assert recreates
    assert kinds[:recreates] == ["recreate"] * recreates, kinds
    assert {"delete", "restore"} <= set(kinds[recreates:])
    deleted = [e for e in run.events if e.type == DestinationRowDeleted.event_type]
    lines = [e for e in deleted if e.payload["target_table"] == "quotedetail"]
    owned = [e for e in deleted if e.payload["target_table"] in ("contact", "account")]
    assert lines
    assert owned
    for event in lines:
        image = event.payload["before_image"]
        assert image[f"_uomid_value{_TYPE}"] == "uom"  # the writer's own lookup, not a decision's
        row = ("quotedetail", event.payload["target_id"])
        assert run.rows[row]["uomid"] == run.base_rows[row]["uomid"] is not None
    for event in owned:
        assert event.payload["before_image"][f"_ownerid_value{_TYPE}"] == "systemuser"
        row = (event.payload["target_table"], event.payload["target_id"])
        assert run.rows[row]["ownerid"] == run.base_rows[row]["ownerid"] is not None


# --- the create body, without services -------------------------------------------------------

_LINE = "0f1e2d3c-0000-4000-8000-000000000001"
_UOM = "0f1e2d3c-0000-4000-8000-000000000002"
_USER = "0f1e2d3c-0000-4000-8000-000000000003"
_CONTACT = "0f1e2d3c-0000-4000-8000-000000000004"
_QUOTE = "0f1e2d3c-0000-4000-8000-000000000005"


def _deletion(table: str, image: dict[str, Any]) -> _Deletion:
    return _Deletion(0, "Angebot:1", 5, table, _LINE, image, "d-1")


def _creatable(table: str, columns: set[str], lookups: dict[str, list[str]]) -> _Creatable:
    navigations = {
        (column, target): _navigation_name(table, column, targets, target)
        for column, targets in lookups.items()
        for target in targets
    }
    return _Creatable(frozenset(columns), navigations)


def test_a_recreated_row_binds_every_creatable_lookup_of_its_before_image() -> None:
    image = {
        "activityid": _LINE, "subject": "Anruf", "statecode": 1, "statuscode": 2,
        "_regardingobjectid_value": _CONTACT, f"_regardingobjectid_value{_TYPE}": "contact",
        "_ownerid_value": _USER, f"_ownerid_value{_TYPE}": "systemuser",
        "_createdby_value": _USER, f"_createdby_value{_TYPE}": "systemuser",
        "_transactioncurrencyid_value": None,
    }  # fmt: skip
    table = _creatable(
        "phonecall",
        {"activityid", "subject", "statuscode", "regardingobjectid", "ownerid"},
        {"regardingobjectid": ["account", "contact"], "ownerid": ["systemuser", "team"],
         "createdby": ["systemuser"], "transactioncurrencyid": ["transactioncurrency"]},
    )  # fmt: skip
    body = _recreate_body(_deletion("phonecall", image), {}, table)
    assert body == {
        "activityid": _LINE, "subject": "Anruf", "statecode": 1, "statuscode": 2,
        "regardingobjectid_contact_phonecall@odata.bind": f"/contacts({_CONTACT})",
        "ownerid@odata.bind": f"/systemusers({_USER})",
    }  # fmt: skip


def test_decision_binds_win_and_an_older_before_image_binds_only_the_decided_lookups() -> None:
    image = {
        "quotedetailid": _LINE, "quantity": 2.0,
        "_quoteid_value": _QUOTE, f"_quoteid_value{_TYPE}": "quote",
        "_uomid_value": _UOM, f"_uomid_value{_TYPE}": "uom",
    }  # fmt: skip
    table = _creatable(
        "quotedetail",
        {"quotedetailid", "quantity", "quoteid", "uomid"},
        {"quoteid": ["quote"], "uomid": ["uom"]},
    )
    decided = {"quoteid": "/quotes(w4a_sourcekey='Angebot:1')"}
    body = _recreate_body(_deletion("quotedetail", image), decided, table)
    assert body["quoteid@odata.bind"] == f"/quotes({_QUOTE})"  # the row it held, by id
    assert body["uomid@odata.bind"] == f"/uoms({_UOM})"
    # an older before-image names no target tables: only the decided lookups are bound
    older = {name: value for name, value in image.items() if not name.endswith(_TYPE)}
    body = _recreate_body(_deletion("quotedetail", older), decided, table)
    assert "uomid@odata.bind" not in body
    assert body["quoteid@odata.bind"] == f"/quotes({_QUOTE})"
    # a lookup the decision cleared is left empty when the row held nothing
    body = _recreate_body(_deletion("quotedetail", {**older, "_quoteid_value": None}),
                          {"quoteid": CLEARED_BIND}, table)  # fmt: skip
    assert "quoteid@odata.bind" not in body


def test_navigation_names_follow_the_documented_naming() -> None:
    assert _navigation_name("quotedetail", "uomid", ["uom"], "uom") == "uomid"
    assert _navigation_name("account", "ownerid", ["systemuser", "team"], "team") == "ownerid"
    assert (
        _navigation_name("contact", "parentcustomerid", ["account", "contact"], "account")
        == "parentcustomerid_account"
    )
    assert (
        _navigation_name("task", "regardingobjectid", ["account", "opportunity"], "opportunity")
        == "regardingobjectid_opportunity_task"
    )


@contextmanager
def _migrated_base(
    knock_on: KnockOnGenerations, tls_dir: Path, folder: Path
) -> Iterator[tuple[Target, EventLog, DataverseClient]]:
    """The first export migrated as ``base`` into a fresh emulator, with its log and a client."""
    with target_for(
        knock_on.first, tls_dir, log_url=f"sqlite:///{folder / 'ledger.db'}",
        db_url=f"sqlite:///{folder / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        settings = target.settings
        with open_log(settings.log_url) as log, client_from_settings(settings) as client:
            yield target, log, client


@pytest.mark.parametrize("mode", ["delete", "deactivate"])
def test_after_a_delta_run_is_rolled_back_a_new_delta_run_moves_the_same_changes_again(
    mode: DeletionMode,
    knock_on: KnockOnGenerations,
    rollback_tls_dir: Path,
    tmp_path: Path,
) -> None:
    gates = GateThresholds(max_rejected_share=1.0)
    with _migrated_base(knock_on, rollback_tls_dir, tmp_path) as (target, log, client):
        store = target.emulator.emulator.store
        base_digest = store.digest(content=True)
        first_detected = detect(knock_on.newer, log, run_id=DELTA, base_run=BASE, deletions=mode)
        first = migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=gates)
        delta_digest = store.digest(content=True)
        assert not rollback(log, client, run_id=DELTA).failed
        assert store.digest(content=True) == base_digest
        with pytest.raises(DeltaRunError, match="was rolled back; run the newer export"):
            migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=gates)

        # the rolled-back run no longer counts in the delta state: a new run moves it all
        detected = detect(knock_on.newer, log, run_id="delta-2", base_run=BASE, deletions=mode)
        again = migrate_delta(log, client, default_map(), run_id="delta-2", thresholds=gates)
        redone_digest = store.digest(content=True)
        second = rollback(log, client, run_id="delta-2")
        third = rollback(log, client, run_id="delta-2")
        final_digest = store.digest(content=True)

    assert first.passed
    assert again.passed, (again.stopped, again.failures)
    assert detected.totals() == first_detected.totals()
    done = deletion_totals(first) + withdrawals(first)
    redone = deletion_totals(again) + withdrawals(again)
    print(f"delta ({mode}): {dict(done)}; the new run after its rollback: {dict(redone)}")
    assert done[mode + "d"] > 0
    assert redone == done
    assert redone_digest == delta_digest
    assert not second.failed
    assert second.done > 0
    assert final_digest == base_digest
    assert third.plan.empty
    assert third.appended == 0


def test_a_delta_phase_whose_restores_bind_rows_the_delta_deleted_needs_cascade_then_reruns(
    knock_on: KnockOnGenerations, rollback_tls_dir: Path, tmp_path: Path
) -> None:
    gates = GateThresholds(max_rejected_share=1.0)
    with _migrated_base(knock_on, rollback_tls_dir, tmp_path) as (target, log, client):
        store = target.emulator.emulator.store
        base_digest = store.digest(content=True)
        detect(knock_on.newer, log, run_id=DELTA, base_run=BASE, deletions="delete")
        migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=gates)
        delta_rows, delta_digest = _rows(target), store.digest(content=True)
        end = log.end_position()
        # the activities the delta unlinked from an account it then deleted
        with pytest.raises(RollbackRefusedError, match="--cascade") as refused:
            rollback(log, client, run_id=DELTA, phase=6)
        assert log.end_position() == end
        phase = rollback(log, client, run_id=DELTA, phase=6, cascade=True)
        # the same delta run again: phase 6 and the deletions are carried out anew
        again = migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=gates)
        redone_rows, redone_digest = _rows(target), store.digest(content=True)
        whole = rollback(log, client, run_id=DELTA)
        final_digest = store.digest(content=True)

    print(f"refused: {refused.value}; cascaded: re-created {dict(phase.recreated)},"
          f" restored {dict(phase.restored)}")  # fmt: skip
    assert set(refused.value.dependents) == {1}
    assert not phase.failed
    assert phase.recreated["account"] == refused.value.dependents[1]
    assert phase.restored
    assert again.passed, (again.stopped, again.failures)
    assert 6 not in again.resumed
    assert again.resumed
    redeleted = deletion_totals(again)["deleted"] + withdrawals(again)["deleted"]
    assert redeleted == phase.recreated["account"]  # what the cascade re-created, deleted again
    assert not _differing(delta_rows, redone_rows), _differing(delta_rows, redone_rows)[:3]
    assert set(redone_rows) == set(delta_rows)
    assert redone_digest == delta_digest
    assert not whole.failed
    assert final_digest == base_digest
