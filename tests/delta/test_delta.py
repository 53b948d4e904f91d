"""``crmledger delta``: a newer export moves only what changed, and ends where a fresh run would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.delta import DeltaMigrationSummary, deletion_totals, migrate_delta
from consumers.migrate import InProcessStages, MigrationRequest, MigrationSummary, migrate
from consumers.reconcile import GateThresholds
from consumers.rollback import rollback
from consumers.writing.rows import lookup_column, primary_id
from ledger.event_types import (
    DestinationDeleteIntended,
    DestinationRowDeleted,
    DestinationWritten,
    SourceRecordChanged,
    SourceRecordDeleted,
    TransformDecided,
)
from ledger.events import Event
from ledger.log import open_log
from producers.delta import DeletionMode, detect
from producers.mapping.default import default_map
from producers.mapping.stage import CLEARED_BIND
from tests.delta.conftest import Generations
from tests.migration.conftest import Target, target_for

BASE, DELTA, FRESH = "base", "delta-1", "fresh"
# The synthetic export's defects reject about 6% of a table, more in a small one.
GATES = GateThresholds(max_rejected_share=0.25)


def _migrate(target: Target, run_id: str) -> MigrationSummary:
    settings = target.settings
    with (
        open_log(settings.log_url) as log,
        client_from_settings(settings) as client,
        client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as writer,
    ):
        summary = migrate(
            log, client, default_map(), MigrationRequest(export="", run_id=run_id,
                                                           thresholds=GATES),
            stages=InProcessStages(writer, Throttle()),
        )  # fmt: skip
    assert summary.passed, summary.stopped
    return summary


def _delta(target: Target, newer: Path, mode: DeletionMode) -> DeltaMigrationSummary:
    settings = target.settings
    with open_log(settings.log_url) as log:
        detected = detect(newer, log, run_id=DELTA, base_run=BASE, deletions=mode)
        print(f"delta of {BASE}: {detected.totals()}")
        with client_from_settings(settings) as client:
            return migrate_delta(log, client, default_map(), run_id=DELTA, thresholds=GATES)


def _rows(target: Target) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row the emulator holds, by (table, id), without what only says when it was written
    (as the emulator's content digest leaves it out) and without empty columns: a column cleared
    to null and one never written are the same to Dataverse (the emulator keeps the null)."""
    store = target.emulator.emulator.store
    volatile = {"versionnumber", "modifiedon", "overriddencreatedon"}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for table in sorted(store.counts()):
        for tbl, _version, data in store.scan(table=table):
            content = {k: v for k, v in data.items() if k not in volatile and v is not None}
            content = {
                k: v for k, v in content.items() if not k.endswith("@type") or k[:-5] in content
            }
            if "overriddencreatedon" not in data:
                content.pop("createdon", None)
            row_id = data.get(primary_id(tbl)) or data.get(f"{tbl}id") or repr(sorted(data))
            rows[(tbl, str(row_id))] = content
    return rows


def _migrated_columns(
    decisions: list[Event], rows: set[tuple[str, str]]
) -> dict[tuple[str, str], set[str]]:
    """Per row, the columns the migration wrote to it (lookups as the column they set)."""
    columns: dict[tuple[str, str], set[str]] = {row: set() for row in rows}
    for decision in decisions:
        row = (decision.payload["target_table"], decision.payload["target_id"].lower())
        if row in columns:
            columns[row].update(decision.payload["payload"])
            columns[row].update(lookup_column(nav) for nav in decision.payload["binds"])
    return columns


def test_a_delta_moves_exactly_the_changes_clears_what_was_emptied_and_matches_a_fresh_migration(
    generations: Generations, tls_dir: Path, tmp_path: Path
) -> None:
    edits = generations.edits
    with target_for(
        generations.first, tls_dir, log_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        db_url=f"sqlite:///{tmp_path / 'projections.db'}", run_id=BASE,
    ) as target:  # fmt: skip
        _migrate(target, BASE)
        base_rows = _rows(target)
        summary = _delta(target, generations.newer, "delete")
        with open_log(target.settings.log_url) as log:
            events = [stored.event for stored in log.read() if stored.event.run_id == DELTA]
            base_decisions = [
                stored.event
                for stored in log.read()
                if stored.event.run_id == BASE and stored.event.type == TransformDecided.event_type
            ]
        delta_rows = _rows(target)
        counts = target.counts()
        with open_log(target.settings.log_url) as log, client_from_settings(target.settings) as c:
            rolled_back = rollback(log, c, run_id=DELTA)
        print(
            f"rollback of {DELTA}: restored {dict(rolled_back.restored)},"
            f" re-created {dict(rolled_back.recreated)}"
        )
        restored_rows = _rows(target)
        with open_log(target.settings.log_url) as log, client_from_settings(target.settings) as c:
            again = rollback(log, c, run_id=DELTA)

    new = [e for e in events if e.type == SourceRecordChanged.event_type
           and e.payload["previous_hash"] is None]  # fmt: skip
    changed = [e for e in events if e.type == SourceRecordChanged.event_type
               and e.payload["previous_hash"] is not None]  # fmt: skip
    deleted = [e for e in events if e.type == SourceRecordDeleted.event_type]
    print(
        f"newer export: {edits.count('changed')} changed, {edits.count('deleted')} deleted,"
        f" {edits.count('added')} added of {edits.records} records;"
        f" delta run: {len(changed)} changed, {len(deleted)} deleted, {len(new)} new"
    )
    assert sorted(e.key for e in changed) == sorted(
        f"{table}:{code}" for table, codes in edits.changed.items() for code in codes
    )
    assert sorted(e.key for e in deleted) == sorted(
        f"{table}:{code}" for table, codes in edits.deleted.items() for code in codes
    )
    assert sorted(e.key for e in new) == sorted(
        f"{table}:{code}" for table, codes in edits.added.items() for code in codes
    )
    assert edits.count("changed") >= edits.records // 100 - 1
    assert edits.count("deleted") >= 3
    assert edits.count("added") >= 3

    # only those records were decided and written; updates carry before-images
    decided = {e.key for e in events if e.type == TransformDecided.event_type}
    assert decided <= {e.key for e in (*new, *changed)}
    updates = [e for e in events if e.type == DestinationWritten.event_type
               and e.payload["op"] == "update"]  # fmt: skip
    assert updates
    assert all(e.payload["before_image"] for e in updates)
    # rolling the delta back restores every row it updated, cleared values included
    updated = {(e.payload["target_table"], e.payload["target_id"]) for e in updates}
    assert {row: restored_rows[row] for row in updated} == {row: base_rows[row] for row in updated}

    # a changed record clears what it no longer has; a new record sends only what has a value
    decisions = {e.key: e.payload for e in events if e.type == TransformDecided.event_type}
    images = {e.key: e.payload["before_image"] for e in updates}
    phones = [f"Kunden:{code}" for code in edits.emptied["Kunden"]]
    cleared_phones = [k for k in phones if k in images and images[k].get("telephone1")]
    assert cleared_phones, "no emptied phone number was an update"
    assert all(decisions[k]["payload"]["telephone1"] is None for k in cleared_phones)
    regarding = "regardingobjectid_account_phonecall"
    calls = [f"Telefonate:{code}" for code in edits.emptied["Telefonate"]]
    unlinked = [k for k in calls if k in images and images[k].get(f"{regarding}@odata.bind")]
    assert unlinked, "no phone call whose customer was emptied was an update"
    assert all(decisions[k]["binds"][regarding] == CLEARED_BIND for k in unlinked)
    for key in (e.key for e in new):
        if key in decisions:
            assert None not in decisions[key]["payload"].values(), key
            assert CLEARED_BIND not in decisions[key]["binds"].values(), key
    assert summary.passed, (summary.stopped, summary.failures)
    totals = deletion_totals(summary)
    print(f"deletions: {dict(totals)}")
    assert totals["deleted"] + totals["flagged"] == len(deleted)
    removed = [e for e in events if e.type == DestinationRowDeleted.event_type]
    intended = [e for e in events if e.type == DestinationDeleteIntended.event_type]
    assert len(removed) == totals["deleted"] == len(intended)
    assert all(e.payload["before_image"] for e in removed)
    # rolling the delta back re-creates every row it deleted, with the columns migrated to it
    recreated = {(e.payload["target_table"], e.payload["target_id"]) for e in removed}
    assert sum(rolled_back.recreated.values()) == len(recreated)
    assert recreated <= set(restored_rows)
    assert again.appended == 0, "a finished rollback appends nothing"
    assert again.done == 0
    migrated = _migrated_columns(base_decisions, recreated)
    assert {row: {c: restored_rows[row].get(c) for c in migrated[row]} for row in recreated} == {
        row: {c: base_rows[row].get(c) for c in migrated[row]} for row in recreated
    }

    with target_for(
        generations.newer, tls_dir, log_url=f"sqlite:///{tmp_path / 'fresh.db'}",
        db_url=f"sqlite:///{tmp_path / 'fresh-projections.db'}", run_id=FRESH,
    ) as fresh:  # fmt: skip
        _migrate(fresh, FRESH)
        fresh_rows = _rows(fresh)
        assert fresh.counts() == counts

    only_delta = sorted(set(delta_rows) - set(fresh_rows))
    only_fresh = sorted(set(fresh_rows) - set(delta_rows))
    assert not only_delta, only_delta[:5]
    assert not only_fresh, only_fresh[:5]
    differing = {
        key: {c: (delta_rows[key].get(c), fresh_rows[key].get(c))
              for c in set(delta_rows[key]) | set(fresh_rows[key])
              if delta_rows[key].get(c) != fresh_rows[key].get(c)}
        for key in delta_rows if delta_rows[key] != fresh_rows[key]
    }  # fmt: skip
    assert not differing, list(differing.items())[:5]
