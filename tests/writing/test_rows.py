"""What a decision becomes on the wire, and in what order decisions are written (no Dataverse)."""

from __future__ import annotations

from consumers.writing import batch, plan, rows
from ledger.event_types import TransformDecided
from ledger.events import Event


def _decision(table: str, row_id: str, key: str, **binds: str) -> plan.Decision:
    event = Event.create(
        TransformDecided(target_table=table, target_id=row_id, payload={}, binds=binds),
        run_id="r",
        key=key,
        cause="c",
        phase="3",
    )
    return plan.Decision.of(event)


def test_a_completed_task_is_created_open_and_closed_by_a_state_step() -> None:
    payload = {"subject": "Call back", "statecode": 1, "statuscode": 5}

    body = rows.body_of("task", payload, {"ownerid": "/systemusers(u)"}, create=True)
    step = rows.step_of("task", payload, create=True)

    assert body == {"subject": "Call back", "ownerid@odata.bind": "/systemusers(u)"}
    assert step == rows.Step(1, 5)
    assert rows.step_request("task", "t1", payload, step) == (
        "PATCH",
        "tasks(t1)",
        {"statecode": 1, "statuscode": 5},
    )


def test_an_open_state_status_stays_in_the_create_and_needs_no_step() -> None:
    payload = {"subject": "Later", "statecode": 0, "statuscode": 3}

    assert rows.body_of("task", payload, {}, create=True) == {"subject": "Later", "statuscode": 3}
    assert rows.step_of("task", payload, create=True) is None


def test_a_won_opportunity_is_closed_with_win_opportunity_and_a_derived_close_id() -> None:
    payload = {"name": "Rechnung 7", "actualvalue": 120.5, "statecode": 1, "statuscode": 3}
    step = rows.step_of("opportunity", payload, create=True)
    assert step is not None

    method, path, body = rows.step_request("opportunity", "o1", payload, step)

    assert (method, path, body["Status"]) == ("POST", "WinOpportunity", 3)
    assert body["OpportunityClose"]["activityid"] == rows.close_activity_id("o1")
    assert body["OpportunityClose"]["actualrevenue"] == 120.5
    assert rows.step_of("opportunity", payload, create=False) == step  # a PATCH may not close


def test_a_product_is_always_published_after_create() -> None:
    assert rows.step_of("product", {"name": "P"}, create=True) == rows.Step(0, 1)
    assert rows.step_of("product", {"statecode": 1, "statuscode": 2}, create=True) == rows.Step(
        1, 2
    )


def test_an_update_sets_the_state_in_its_body_and_leaves_out_create_only_columns() -> None:
    payload = {"name": "A", "overriddencreatedon": "2020-01-01T00:00:00Z", "statecode": 1}

    assert rows.body_of("account", payload, {}, create=False) == {"name": "A", "statecode": 1}
    assert rows.step_of("account", payload, create=False) is None


def test_a_before_image_restores_columns_and_lookups_as_they_were() -> None:
    body = {"name": "New", "parentcustomerid_account@odata.bind": "/accounts(a2)", "statecode": 1}
    row = {
        "name": "Old",
        "_parentcustomerid_value": "c9",
        "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
        "statecode": 0,
        "statuscode": 1,
    }

    assert rows.read_columns(body) == ["name", "_parentcustomerid_value", "statecode"]
    assert rows.before_image(body, row, state=True) == {
        "name": "Old",
        "parentcustomerid_contact@odata.bind": "/contacts(c9)",
        "statecode": 0,
        "statuscode": 1,
    }


def test_parents_are_written_before_children_and_a_second_decision_of_a_row_after_the_first() -> (
    None
):
    product = "00000000-0000-0000-0000-000000000001"
    decisions = [
        _decision("productpricelevel", "00000000-0000-0000-0000-0000000000a1", "Preise:1",
                  productid=f"/products({product})"),
        _decision("product", product, "Artikel:1", defaultuomscheduleid="/uomschedules(x)"),
        _decision("account", "00000000-0000-0000-0000-0000000000b1", "Kunden:1"),
        _decision("account", "00000000-0000-0000-0000-0000000000b1", "Lieferanten:1"),
    ]  # fmt: skip

    groups = plan.groups(decisions)

    assert [{t: [d.key for d in ds] for t, ds in g.items()} for g in groups] == [
        {"account": ["Kunden:1"], "product": ["Artikel:1"]},
        {"account": ["Lieferanten:1"]},
        {"productpricelevel": ["Preise:1"]},
    ]


def test_a_batch_response_gives_one_part_per_changeset_naming_the_failed_request() -> None:
    content_type, body = batch.encode(
        [[batch.Request("POST", "tasks", {"subject": "a"})], [batch.Request("POST", "tasks", {})]],
        "https://x/api/data/v9.2/",
    )
    failure = (
        "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n"
        "Content-Type: application/http\r\nContent-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        "\r\n--c--\r\n--b\r\nContent-Type: application/http\r\nContent-ID: 3\r\n\r\n"
        'HTTP/1.1 400 Bad Request\r\n\r\n{"error":{"code":"0x1","message":"no"}}\r\n--b--\r\n'
    )

    parts = batch.decode("multipart/mixed; boundary=b", failure.encode(), [1, 2])

    assert b"\r\nContent-ID: 2\r\n" in body
    assert content_type.startswith("multipart/mixed; boundary=batch_")
    assert [p.ok for p in parts] == [True, False]
    assert (parts[1].error, parts[1].request_index) == (("0x1", "no"), 1)
