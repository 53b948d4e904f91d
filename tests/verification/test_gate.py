"""Phase gates on an embedded log with hand-built events: counts, thresholds, overrides."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from consumers.reconcile import (
    GateFailedError,
    GateThresholds,
    latest_reconciliation,
    phase_counts,
    reconcile_phase,
    require_gate,
    start_phase,
)
from ledger.event_types import FieldMismatch, PhaseReconciled, PhaseStarted, RecordVerified
from ledger.events import Event, Topic
from ledger.log import EventLog
from ledger.settings import Settings
from tests.verification.conftest import (
    RUN,
    decided,
    event,
    extracted,
    failed,
    rejected,
    written,
)


def _id(key: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _verified(key: str, phase: int, write: Event) -> Event:
    payload = RecordVerified(target_table="account", target_id=_id(key))
    return Event.create(
        payload, run_id=RUN, key=key, cause="v", phase=str(phase), causation_id=write.event_id
    )


def _mismatch(key: str, phase: int, write: Event) -> Event:
    payload = FieldMismatch(
        target_table="account", target_id=_id(key), column="name", expected="A", actual="B"
    )
    return Event.create(
        payload, run_id=RUN, key=key, cause="m", phase=str(phase), causation_id=write.event_id
    )


def _migrated(log: EventLog, table: str, phase: int, codes: range, target: str = "account") -> None:
    """Records of ``table`` extracted, decided, written and verified in ``phase``."""
    events: list[Event] = []
    for code in codes:
        key = f"{table}:{code}"
        write = written(key, phase, target, _id(key))
        events += [
            extracted(key),
            decided(key, phase, target, _id(key), {"name": key}),
            write,
            _verified(key, phase, write),
        ]
    log.append(events)


def _reasons(log: EventLog, phase: int = 1, thresholds: GateThresholds | None = None) -> list[str]:
    verdict = reconcile_phase(log, run_id=RUN, phase=phase, thresholds=thresholds)
    return list(verdict.payload["reasons"])


# --- counts and verdicts -------------------------------------------------------------------------


def test_a_clean_phase_passes_with_counts_per_source_table(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 10))
    _migrated(log, "Lieferanten", 1, range(1, 4))
    log.append([extracted("Kunden:99"), rejected("Kunden:99", 1, "duplicate_of: Kunden:1")])

    verdict = reconcile_phase(log, run_id=RUN, phase=1, thresholds=GateThresholds())

    assert verdict.type == PhaseReconciled.event_type
    assert verdict.payload["verdict"] == "passed", verdict.payload["reasons"]
    assert verdict.payload["counts"]["Kunden"] == {
        "extracted": 10, "decided": 9, "rejected": 1, "excluded": 0,
        "written": 9, "failed": 0, "verified": 9, "mismatched": 0,
    }  # fmt: skip
    assert verdict.payload["counts"]["Lieferanten"]["verified"] == 3
    assert latest_reconciliation(log, run_id=RUN, phase=1) == verdict


def test_a_decided_record_without_a_write_fails_the_gate(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 5))
    log.append([extracted("Kunden:5"), decided("Kunden:5", 1, "account", _id("Kunden:5"), {})])

    assert _reasons(log) == [
        "Kunden: 5 decided but 4 written + 0 failed (1 without a write)",
    ]


def test_an_extracted_record_without_a_decision_fails_the_gate(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 5))
    log.append([extracted("Kunden:5")])

    assert _reasons(log) == [
        "Kunden: 5 extracted but 4 decided + 0 rejected (1 without a decision)",
    ]


def test_any_failed_write_fails_the_gate_by_default_but_a_share_can_be_allowed(
    log: EventLog,
) -> None:
    _migrated(log, "Kunden", 1, range(1, 20))
    key = "Kunden:20"
    log.append(
        [
            extracted(key),
            decided(key, 1, "account", _id(key), {}),
            failed(key, 1, "account", _id(key)),
        ]
    )

    assert _reasons(log) == [
        "Kunden: 1 of 20 writes failed (5.0%), more than the gate allows (0.0%)"
    ]
    assert _reasons(log, thresholds=GateThresholds(max_failed_share=0.05)) == []


def test_a_write_that_failed_and_then_succeeded_counts_as_written(log: EventLog) -> None:
    key = "Kunden:1"
    log.append([extracted(key), decided(key, 1, "account", _id(key), {})])
    log.append([failed(key, 1, "account", _id(key))])
    write = written(key, 1, "account", _id(key))
    log.append([write, _verified(key, 1, write)])

    counts = phase_counts(log, run_id=RUN, phase=1)["Kunden"]

    assert (counts["written"], counts["failed"], counts["verified"]) == (1, 0, 1)


def test_a_field_mismatch_fails_the_gate(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 5))
    key = "Kunden:5"
    write = written(key, 1, "account", _id(key))
    log.append([extracted(key), decided(key, 1, "account", _id(key), {}), write])
    log.append([_mismatch(key, 1, write)])

    assert _reasons(log) == [
        "Kunden: 1 records differ from their decision in Dataverse, more than the gate allows (0)"
    ]
    assert phase_counts(log, run_id=RUN, phase=1)["Kunden"]["mismatched"] == 1


def test_written_records_must_be_verified_unless_configured_otherwise(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 5))
    key = "Kunden:5"
    log.append([extracted(key), decided(key, 1, "account", _id(key), {})])
    log.append([written(key, 1, "account", _id(key))])

    assert _reasons(log) == ["Kunden: 5 written but 4 verified (1 not verified)"]
    assert _reasons(log, thresholds=GateThresholds(require_verified=False)) == []


def test_rejections_over_the_share_fail_but_records_no_filter_takes_do_not_count(
    log: EventLog,
) -> None:
    _migrated(log, "Kunden", 1, range(1, 9))
    for code in (91, 92):
        key = f"Kunden:{code}"
        log.append([extracted(key), rejected(key, 1, "invalid_email: not an address")])
    for code in range(200, 230):
        key = f"Kunden:{code}"
        log.append([extracted(key), rejected(key, 1, "filtered_out: no object takes it")])

    counts = phase_counts(log, run_id=RUN, phase=1)["Kunden"]
    assert (counts["extracted"], counts["rejected"], counts["excluded"]) == (40, 32, 30)
    assert _reasons(log) == [
        "Kunden: 2 of 10 records rejected (20.0%), more than the gate allows (10.0%)"
    ]
    assert _reasons(log, thresholds=GateThresholds(max_rejected_share=0.2)) == []


def test_a_table_split_over_phases_counts_in_each_the_records_decided_there(
    log: EventLog,
) -> None:
    _migrated(log, "Briefe", 6, range(1, 8), target="email")
    _migrated(log, "Briefe", 7, range(8, 11), target="annotation")

    six = phase_counts(log, run_id=RUN, phase=6)["Briefe"]
    seven = phase_counts(log, run_id=RUN, phase=7)["Briefe"]

    assert (six["extracted"], six["decided"], seven["extracted"], seven["decided"]) == (7, 7, 3, 3)
    assert _reasons(log, phase=6) == []
    assert _reasons(log, phase=7) == []


def test_a_started_phase_without_decisions_fails_only_if_its_tables_had_records(
    log: EventLog,
) -> None:
    start_phase(log, run_id=RUN, phase=4, objects=["Verkaufschancen"])
    assert _reasons(log, phase=4) == []  # nothing to move: passes

    log.append([extracted("Verkaufschancen:1")])
    assert _reasons(log, phase=4) == [
        "Verkaufschancen: 1 extracted but 0 decided + 0 rejected (1 without a decision)"
    ]


def test_other_runs_do_not_count(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))
    other = Event.create(
        PhaseStarted(phase_number=1), run_id="other", key="phase:1", cause="x", phase="1"
    )
    log.append([other, event(PhaseStarted(phase_number=9), "phase:9", phase="9")])

    assert phase_counts(log, run_id="other", phase=1) == {}
    assert phase_counts(log, run_id=RUN, phase=1)["Kunden"]["decided"] == 2


def test_reconciling_an_unchanged_log_again_appends_nothing_new(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))

    first = reconcile_phase(log, run_id=RUN, phase=1)
    second = reconcile_phase(log, run_id=RUN, phase=1)
    _migrated(log, "Kunden", 1, range(3, 4))
    third = reconcile_phase(log, run_id=RUN, phase=1)

    assert first.event_id == second.event_id != third.event_id
    stored = [s.event for s in log.read([Topic.CONTROL]) if s.event.type == "PhaseReconciled"]
    assert [e.event_id for e in stored] == [first.event_id, third.event_id]


# --- the gate before a phase ---------------------------------------------------------------------


def test_the_first_phase_needs_no_gate(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))

    check = require_gate(log, run_id=RUN, phase=1, override_reason=None)

    assert (check.open, check.previous, check.verdict) == (True, None, "none")


def test_a_phase_refuses_to_start_while_the_previous_phase_was_never_reconciled(
    log: EventLog,
) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))

    with pytest.raises(GateFailedError, match="phase 1 was never reconciled") as raised:
        start_phase(log, run_id=RUN, phase=2)

    assert raised.value.previous == 1
    assert "--override-gate" in str(raised.value)
    assert not [s for s in log.read([Topic.CONTROL]) if s.event.type == "PhaseStarted"]


def test_a_failed_gate_blocks_the_next_phase_with_its_reasons(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))
    log.append([extracted("Kunden:3")])
    reconcile_phase(log, run_id=RUN, phase=1)

    with pytest.raises(GateFailedError, match="1 without a decision"):
        require_gate(log, run_id=RUN, phase=2, override_reason="   ")


def test_an_operator_override_is_recorded_in_phase_started(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))
    log.append([extracted("Kunden:3")])
    reconcile_phase(log, run_id=RUN, phase=1)

    started = start_phase(
        log,
        run_id=RUN,
        phase=2,
        objects=["KAnsprechp"],
        override_reason="ticket 4711: Kunden:3 is test data",
    )

    assert started.type == PhaseStarted.event_type
    assert started.payload == {
        "phase_number": 2,
        "objects": ["KAnsprechp"],
        "override_reason": "ticket 4711: Kunden:3 is test data",
    }
    control = [s.event for s in log.read([Topic.CONTROL]) if s.event.type == "PhaseStarted"]
    assert [e.event_id for e in control] == [started.event_id]


def test_the_latest_verdict_decides_and_an_open_gate_records_no_override(log: EventLog) -> None:
    _migrated(log, "Kunden", 1, range(1, 3))
    log.append([extracted("Kunden:3")])
    reconcile_phase(log, run_id=RUN, phase=1)
    log.append([rejected("Kunden:3", 1, "duplicate_of: Kunden:1")])
    reconcile_phase(log, run_id=RUN, phase=1, thresholds=GateThresholds(max_rejected_share=0.5))

    started = start_phase(log, run_id=RUN, phase=2, override_reason="not needed")

    assert started.payload["override_reason"] is None


# --- configuration -------------------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path`` with no CRMLEDGER_* variables, so crmledger.toml there is read."""
    for name in [name for name in os.environ if name.startswith("CRMLEDGER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_gate_thresholds_default_strictly_and_come_from_crmledger_toml(in_tmp: Path) -> None:
    assert GateThresholds.from_settings(Settings()) == GateThresholds(
        max_failed_share=0.0, max_rejected_share=0.10, max_mismatched=0, require_verified=True
    )
    (in_tmp / "crmledger.toml").write_text(
        "gate_max_failed_share = 0.01\ngate_max_rejected_share = 0.2\n"
        "gate_max_mismatched = 3\ngate_require_verified = false\n",
        encoding="utf-8",
    )

    assert GateThresholds.from_settings(Settings()) == GateThresholds(0.01, 0.2, 3, False)
