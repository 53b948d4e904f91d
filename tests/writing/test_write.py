"""The writers against the emulator: one write event per decision, in dependency order,
idempotent, pre-existing rows updated with before-images, one bad record failing alone."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.dataverse.client import DataverseClient
from consumers.write import WriteProgress, WriteSummary, write_phase
from consumers.writing.rows import close_activity_id
from ledger.event_types import (
    DestinationWriteFailed,
    DestinationWriteIntended,
    DestinationWritten,
    TransformDecided,
)
from ledger.events import Event, Topic
from ledger.log import EventLog
from producers.mapping.context import target_id
from tests.dataverse.conftest import StartEmulator
from tests.writing.conftest import RUN, Migrated, OpenTarget, Target, target

PHASES = range(1, 9)
_OUTCOMES = {DestinationWritten.event_type, DestinationWriteFailed.event_type}


def decisions(log: EventLog, run_id: str = RUN) -> dict[uuid.UUID, Event]:
    return {
        s.event.event_id: s.event
        for s in log.read([Topic.DECISIONS])
        if s.event.run_id == run_id and s.event.type == TransformDecided.event_type
    }


def outcomes(log: EventLog, run_id: str = RUN) -> list[Event]:
    return [
        s.event
        for s in log.read([Topic.WRITES])
        if s.event.run_id == run_id and s.event.type in _OUTCOMES
    ]


def rows(client: DataverseClient, entity_set: str, select: str) -> list[dict[str, Any]]:
    return list(client.get(entity_set, {"$select": select}).get("value", []))


def write_all(target: Target, **options: Any) -> dict[int, WriteSummary]:
    return {
        phase: write_phase(target.log, target.client, run_id=RUN, phase=phase, **options)
        for phase in PHASES
    }


@pytest.fixture(scope="module")
def written(
    start: StartEmulator, migrated: Migrated, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Target, dict[int, WriteSummary]]]:
    """Every phase of the run written once into one emulator."""
    with target(start, migrated, tmp_path_factory.mktemp("written")) as opened:
        yield opened, write_all(opened)


def test_every_decision_has_exactly_one_write_event_keyed_by_its_source_key(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, _ = written
    decided = decisions(opened.log)
    events = outcomes(opened.log)
    per_decision = Counter(event.causation_id for event in events)

    assert set(per_decision) == set(decided)
    assert set(per_decision.values()) == {1}
    for event in events:
        assert event.causation_id is not None
        decision = decided[event.causation_id]
        assert (event.key, event.phase) == (decision.key, decision.phase)
        assert event.payload["target_id"] == decision.payload["target_id"]


def test_every_record_is_written_and_the_emulator_holds_exactly_the_created_rows(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, summaries = written
    created: Counter[str] = Counter()
    for summary in summaries.values():
        assert summary.failed == 0, [
            e.payload for e in outcomes(opened.log) if e.type != DestinationWritten.event_type
        ][:5]
        for table, counts in summary.tables.items():
            created[table] += counts.created
    counts = opened.inspect("counts")
    won = sum(
        1
        for e in decisions(opened.log).values()
        if e.payload["target_table"] == "opportunity"
        and e.payload["payload"].get("statecode") in (1, 2)
    )

    assert {table: counts[table] for table in created} == dict(created)
    assert counts["uom"] == created["uomschedule"]  # each group's base unit
    assert counts["opportunityclose"] == won > 0
    assert sum(created.values()) >= 1000


def test_phases_run_in_dependency_order_with_parents_before_children(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, _ = written
    first: dict[str, int] = {}
    for number, event in enumerate(outcomes(opened.log)):
        first.setdefault(event.payload["target_table"], number)
    last = {e.payload["target_table"]: n for n, e in enumerate(outcomes(opened.log))}

    assert last["account"] < first["contact"] < first["uomschedule"]
    assert last["uomschedule"] < first["product"]
    assert last["product"] < first["productpricelevel"]
    assert last["quote"] < first["quotedetail"]
    assert last["opportunity"] < first["annotation"]


def test_contacts_point_at_their_accounts_and_lines_at_their_products_units(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, _ = written
    expected = {
        e.payload["target_id"]: e.payload["binds"]["parentcustomerid_account"]
        for e in decisions(opened.log).values()
        if e.payload["target_table"] == "contact"
    }
    contacts = rows(opened.client, "contacts", "contactid,_parentcustomerid_value")
    accounts = {row["accountid"] for row in rows(opened.client, "accounts", "accountid")}
    products = {
        row["productid"]: row["_defaultuomid_value"]
        for row in rows(opened.client, "products", "productid,_defaultuomid_value")
    }
    prices = rows(opened.client, "productpricelevels", "_productid_value,_uomid_value")

    assert len(contacts) == len(expected) > 0
    for contact in contacts:
        assert f"/accounts({contact['_parentcustomerid_value']})" == expected[contact["contactid"]]
        assert contact["_parentcustomerid_value"] in accounts
    assert prices
    assert all(p["_uomid_value"] == products[p["_productid_value"]] for p in prices)


def test_multi_step_records_end_in_their_decided_state(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, _ = written
    wanted = {
        e.payload["target_id"]: (e.payload["payload"].get("statecode"), e.payload["target_table"])
        for e in decisions(opened.log).values()
    }
    checked: Counter[str] = Counter()
    for table, entity_set in (
        ("task", "tasks"),
        ("phonecall", "phonecalls"),
        ("email", "emails"),
        ("appointment", "appointments"),
        ("opportunity", "opportunities"),
        ("product", "products"),
        ("account", "accounts"),
    ):
        pk = (
            "activityid" if table in ("task", "phonecall", "email", "appointment") else table + "id"
        )
        for row in rows(opened.client, entity_set, f"{pk},statecode"):
            state, _ = wanted[row[pk]]
            assert row["statecode"] == (state if state is not None else 0), (table, row)
            checked[f"{table}:{row['statecode']}"] += 1
    closes = rows(opened.client, "opportunitycloses", "activityid,_opportunityid_value")
    closed = {row["activityid"]: row["_opportunityid_value"] for row in closes}

    assert checked["phonecall:1"]
    assert checked["email:1"]
    assert checked["product:0"]
    assert checked["opportunity:1"]
    assert checked["task:1"]
    assert all(close_activity_id(opportunity) == close for close, opportunity in closed.items())


def test_running_every_phase_again_appends_nothing_and_changes_nothing(
    written: tuple[Target, dict[int, WriteSummary]],
) -> None:
    opened, _ = written
    digest, end = opened.inspect("digest")["digest"], opened.log.end_position()

    again = write_all(opened)

    assert all(s.written == s.failed == 0 for s in again.values())
    assert sum(s.already_done for s in again.values()) == len(outcomes(opened.log))
    assert opened.inspect("digest")["digest"] == digest
    assert opened.log.end_position() == end


def test_an_account_that_exists_with_the_same_id_is_updated_with_its_before_image(
    open_target: OpenTarget,
) -> None:
    with open_target() as opened:
        decided = [
            e for e in decisions(opened.log).values() if e.payload["target_table"] == "account"
        ]
        chosen = decided[3]
        row_id = chosen.payload["target_id"]
        opened.client.post(
            "accounts",
            {"accountid": row_id, "name": "Someone's account", "telephone1": "+49 1"},
        )
        summary = write_phase(opened.log, opened.client, run_id=RUN, phase=1)
        written = [e for e in outcomes(opened.log) if e.causation_id == chosen.event_id]
        row = opened.client.get(f"accounts({row_id})", {"$select": "name,telephone1"})

    assert summary.tables["account"].updated == 1
    assert summary.tables["account"].created == len(decided) - 1
    assert len(written) == 1
    assert written[0].payload["op"] == "update"
    image = written[0].payload["before_image"]
    assert image["name"] == "Someone's account"
    assert image["telephone1"] == "+49 1"
    assert set(chosen.payload["payload"]) - {"overriddencreatedon"} <= set(image)
    assert row["name"] == chosen.payload["payload"]["name"]


def _decision(table: str, code: int, payload: dict[str, Any], **binds: str) -> Event:
    row_id = target_id(f"T{table}", code)
    return Event.create(
        TransformDecided(target_table=table, target_id=row_id, payload=payload, binds=binds),
        run_id="bad",
        key=f"T{table}:{code}",
        cause="test",
        phase="1",
    )


def test_one_bad_record_fails_alone_with_its_dataverse_error(open_target: OpenTarget) -> None:
    with open_target() as opened:
        accounts = [_decision("account", n, {"name": f"Firma {n}"}) for n in range(40)]
        accounts[17] = _decision("account", 17, {"name": "Bad", "customertypecode": 99})
        account_bind = f"/accounts({accounts[0].payload['target_id']})"
        contacts = [
            _decision(
                "contact", n, {"lastname": f"Name {n}"}, parentcustomerid_account=account_bind
            )
            for n in range(20)
        ]
        contacts[5] = _decision("contact", 5, {"lastname": "x" * 51})
        opened.log.append([*accounts, *contacts])
        summary = write_phase(opened.log, opened.client, run_id="bad", phase=1, batch_size=50)
        failed = [e for e in outcomes(opened.log, "bad") if e.type != DestinationWritten.event_type]
        counts = opened.inspect("counts")

    assert (summary.tables["account"].created, summary.tables["account"].failed) == (39, 1)
    assert (summary.tables["contact"].created, summary.tables["contact"].failed) == (19, 1)
    assert (counts["account"], counts["contact"]) == (39, 19)
    by_key = {e.key: DestinationWriteFailed.model_validate(e.payload) for e in failed}
    assert by_key["Taccount:17"].error_code == "0x8004431A"
    assert by_key["Taccount:17"].status == 400
    assert by_key["Tcontact:5"].error_code == "0x80044331"
    assert "lastname" in by_key["Tcontact:5"].message


def test_a_row_created_before_a_crash_is_recorded_as_created_once(
    open_target: OpenTarget,
) -> None:
    with open_target() as opened:
        tasks = [
            _decision("task", n, {"subject": f"T {n}", "statecode": 1, "statuscode": 5})
            for n in range(3)
        ]
        opened.log.append(tasks)
        # the crash: intents recorded, the first task created and closed, no outcome yet
        opened.log.append(
            [
                Event.create(
                    DestinationWriteIntended(
                        target_table="task", target_id=t.payload["target_id"], op="create"
                    ),
                    run_id="bad",
                    key=t.key,
                    cause=str(t.event_id),
                    phase="1",
                    causation_id=t.event_id,
                )
                for t in tasks
            ]
        )
        first = tasks[0].payload["target_id"]
        opened.client.post("tasks", {"activityid": first, "subject": "T 0"})
        seen: list[WriteProgress] = []
        summary = write_phase(
            opened.log, opened.client, run_id="bad", phase=1, progress=seen.append
        )
        events = outcomes(opened.log, "bad")
        states = {
            r["activityid"]: r["statecode"]
            for r in rows(opened.client, "tasks", "activityid,statecode")
        }

    assert summary.tables["task"].created == 3
    assert [e.payload["op"] for e in events] == ["create"] * 3
    assert all(e.payload["before_image"] is None for e in events)
    assert set(states.values()) == {1}
    assert len(states) == 3
    assert seen[-1].done == seen[-1].total == 3


def test_a_record_whose_owner_is_not_in_the_tenant_fails_with_a_clear_error(
    open_target: OpenTarget,
) -> None:
    with open_target() as opened:
        owner = "/systemusers(internalemailaddress='nobody@example.com')"
        decision = _decision("account", 1, {"name": "Firma"}, ownerid=owner)
        opened.log.append([decision])
        summary = write_phase(opened.log, opened.client, run_id="bad", phase=1)
        [failed] = outcomes(opened.log, "bad")

    assert summary.tables["account"].failed == 1
    assert failed.type == DestinationWriteFailed.event_type
    assert "nobody@example.com" in failed.payload["message"]


def test_the_write_command_writes_a_phase_and_reports_it(
    open_target: OpenTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ledger.cli import app
    from tests.dataverse.conftest import environment_for

    with open_target() as opened:
        env = {
            **environment_for(opened.emulator, tmp_path),
            "CRMLEDGER_LOG_URL": opened.settings.log_url,
        }
        monkeypatch.chdir(tmp_path)
        first = CliRunner().invoke(app, ["write", "--run", RUN, "--phase", "1"], env=env)
        again = CliRunner().invoke(app, ["write", "--run", RUN, "--phase", "1"], env=env)

    assert first.exit_code == 0, first.output
    assert "account" in first.output
    assert "0 failed" in first.output
    assert again.exit_code == 0
    assert "0 written" in again.output
