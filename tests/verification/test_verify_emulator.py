"""verify_phase against the real emulator: rows created directly, events appended by hand."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from consumers import verify as verify_module
from consumers.dataverse.client import DataverseClient
from consumers.verify import MISSING_RECORD, verify_phase
from ledger.event_types import FieldMismatch, RecordVerified
from ledger.events import Event, Topic
from ledger.log import EventLog
from tests.verification.conftest import OWNER_EMAIL, RUN, decided, written

PHASE = 1


def _checks(log: EventLog) -> list[Event]:
    kinds = (RecordVerified.event_type, FieldMismatch.event_type)
    return [stored.event for stored in log.read([Topic.WRITES]) if stored.event.type in kinds]


def _account(client: DataverseClient, **values: Any) -> str:
    account_id = str(uuid.uuid4())
    client.post("accounts", {"accountid": account_id, **values})
    return account_id


def _record(
    log: EventLog,
    key: str,
    table: str,
    target_id: str,
    payload: dict[str, Any],
    binds: dict[str, str] | None = None,
    phase: int = PHASE,
) -> None:
    log.append(
        [
            decided(key, phase, table, target_id, payload, binds),
            written(key, phase, table, target_id),
        ]
    )


ACCOUNT = {
    "name": "Müller Maschinenbau GmbH",
    "revenue": 12.3,
    "creditlimit": 1000,
    "customertypecode": 3,
    "donotemail": True,
    "numberofemployees": 42,
    "overriddencreatedon": "2019-03-01T09:30:00Z",
}


def test_records_written_as_decided_are_verified(client: DataverseClient, log: EventLog) -> None:
    first = _account(client, **ACCOUNT)
    second = _account(client, name="Schmidt KG", telephone1="+49 30 1234")
    _record(log, "Kunden:1", "account", first, ACCOUNT)
    _record(log, "Kunden:2", "account", second, {"name": "Schmidt KG", "telephone1": "+49 30 1234"})

    summary = verify_phase(log, client, run_id=RUN, phase=PHASE)

    checks = _checks(log)
    assert sorted((e.type, e.key) for e in checks) == [
        ("RecordVerified", "Kunden:1"),
        ("RecordVerified", "Kunden:2"),
    ]
    assert summary.verified == 2
    assert summary.mismatched == 0
    assert all(e.phase == str(PHASE) and e.run_id == RUN for e in checks)


def test_a_value_changed_in_dataverse_is_a_field_mismatch_naming_column_expected_actual(
    client: DataverseClient, log: EventLog
) -> None:
    account_id = _account(client, **ACCOUNT)
    _record(log, "Kunden:10", "account", account_id, ACCOUNT)
    client.patch(f"accounts({account_id})", {"name": "Changed by hand", "revenue": 99.5})

    summary = verify_phase(log, client, run_id=RUN, phase=PHASE)

    found = {e.payload["column"]: e for e in _checks(log)}
    assert set(found) == {"name", "revenue"}
    assert found["name"].payload["expected"] == "Müller Maschinenbau GmbH"
    assert found["name"].payload["actual"] == "Changed by hand"
    assert found["revenue"].payload["expected"] == 12.3
    assert found["revenue"].payload["actual"] == 99.5
    assert found["name"].key == "Kunden:10"
    assert found["name"].payload["target_id"] == account_id
    assert summary.tables["account"].mismatched == 1
    assert summary.tables["account"].columns == {"name": 1, "revenue": 1}


def test_money_with_trailing_zero_and_a_date_only_value_verify(
    client: DataverseClient, log: EventLog
) -> None:
    account_id = _account(client, name="Kunde mit Chance")
    opportunity_id = str(uuid.uuid4())
    client.post(
        "opportunities",
        {
            "opportunityid": opportunity_id,
            "name": "Chance",
            "estimatedvalue": 12.30,
            "estimatedclosedate": "2024-06-30",
            "customerid_account@odata.bind": f"/accounts({account_id})",
        },
    )
    decision = {"name": "Chance", "estimatedvalue": "12.30", "estimatedclosedate": "2024-06-30"}
    binds = {"customerid_account": f"/accounts({account_id})"}
    _record(log, "Verkaufschancen:1", "opportunity", opportunity_id, decision, binds, phase=4)

    summary = verify_phase(log, client, run_id=RUN, phase=4)

    assert [e.type for e in _checks(log)] == ["RecordVerified"]
    assert summary.verified == 1


def test_lookups_read_back_as_value_columns_including_a_bind_by_alternate_key(
    client: DataverseClient, log: EventLog
) -> None:
    account_id = _account(client, name="Elternfirma")
    other_id = _account(client, name="Andere Firma")
    users = client.get(
        "systemusers",
        {"$select": "systemuserid", "$filter": f"internalemailaddress eq '{OWNER_EMAIL}'"},
    )["value"]
    owner = users[0]["systemuserid"]
    good, moved = str(uuid.uuid4()), str(uuid.uuid4())
    for contact_id in (good, moved):
        client.post(
            "contacts",
            {
                "contactid": contact_id,
                "lastname": "Meier",
                "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
                "ownerid@odata.bind": f"/systemusers({owner})",
            },
        )
    binds = {
        "parentcustomerid_account": f"/accounts({account_id})",
        "ownerid": f"/systemusers(internalemailaddress='{OWNER_EMAIL}')",
    }
    _record(log, "KAnsprechp:1", "contact", good, {"lastname": "Meier"}, binds, phase=2)
    _record(log, "KAnsprechp:2", "contact", moved, {"lastname": "Meier"}, binds, phase=2)
    client.patch(
        f"contacts({moved})", {"parentcustomerid_account@odata.bind": f"/accounts({other_id})"}
    )

    verify_phase(log, client, run_id=RUN, phase=2)

    checks = {e.key: e for e in _checks(log)}
    assert checks["KAnsprechp:1"].type == "RecordVerified"
    mismatch = checks["KAnsprechp:2"].payload
    assert (mismatch["column"], mismatch["expected"], mismatch["actual"]) == (
        "parentcustomerid_account",
        account_id,
        other_id,
    )


def test_a_completed_activity_compares_its_final_state(
    client: DataverseClient, log: EventLog
) -> None:
    task_id = str(uuid.uuid4())
    client.post(
        "tasks",
        {"activityid": task_id, "subject": "Anrufen", "scheduledend": "2023-05-04T13:00:00Z"},
    )
    client.patch(f"tasks({task_id})", {"statecode": 1, "statuscode": 5})
    decision = {
        "subject": "Anrufen",
        "scheduledend": "2023-05-04T15:00:00+02:00",
        "statecode": 1,
        "statuscode": 5,
    }
    _record(log, "Whattodos:1", "task", task_id, decision, phase=6)

    verify_phase(log, client, run_id=RUN, phase=6)

    assert [e.type for e in _checks(log)] == ["RecordVerified"]


def test_a_row_missing_in_dataverse_is_one_mismatch_on_the_record(
    client: DataverseClient, log: EventLog
) -> None:
    absent = str(uuid.uuid4())
    _record(log, "Kunden:404", "account", absent, {"name": "Nie geschrieben"})

    summary = verify_phase(log, client, run_id=RUN, phase=PHASE)

    (check,) = _checks(log)
    assert check.type == "FieldMismatch"
    assert check.payload["column"] == MISSING_RECORD
    assert check.payload["expected"] == f"accounts({absent})"
    assert check.payload["actual"] is None
    assert summary.tables["account"].missing == 1


def test_verifying_again_appends_nothing_and_ids_are_deterministic(
    client: DataverseClient, log: EventLog
) -> None:
    account_id = _account(client, name="Einmal")
    _record(log, "Kunden:20", "account", account_id, {"name": "Einmal"})

    first = verify_phase(log, client, run_id=RUN, phase=PHASE)
    again = verify_phase(log, client, run_id=RUN, phase=PHASE)

    assert (first.appended, again.appended, again.already_verified) == (1, 0, 1)
    (check,) = _checks(log)
    write = next(s.event for s in log.read([Topic.WRITES]) if s.event.type == "DestinationWritten")
    assert check.causation_id == write.event_id


def test_batches_split_to_stay_under_the_url_limit(
    client: DataverseClient, log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_account(client, name=f"Firma {n}") for n in range(7)]
    for n, account_id in enumerate(ids):
        _record(log, f"Kunden:{100 + n}", "account", account_id, {"name": f"Firma {n}"})
    monkeypatch.setattr(verify_module, "MAX_URL_LENGTH", 400)

    summary = verify_phase(log, client, run_id=RUN, phase=PHASE, batch_size=50)

    assert summary.verified == 7
    assert summary.requests > 3  # metadata (2) and several read-back queries, not one


def test_an_update_does_not_compare_create_only_columns_but_reports_unknown_ones(
    client: DataverseClient, log: EventLog
) -> None:
    account_id = _account(client, name="Bestand")
    decision = {"name": "Bestand", "overriddencreatedon": "2001-01-01T00:00:00Z", "w4a_nope": "x"}
    log.append(
        [
            decided("Lieferanten:1", PHASE, "account", account_id, decision),
            written("Lieferanten:1", PHASE, "account", account_id, op="update"),
        ]
    )

    verify_phase(log, client, run_id=RUN, phase=PHASE)

    (check,) = _checks(log)
    assert (check.payload["column"], check.payload["expected"], check.payload["actual"]) == (
        "w4a_nope",
        "x",
        None,
    )
