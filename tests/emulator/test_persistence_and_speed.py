"""An emulator restarted on its database keeps its schema; equality filters read through indexes.

Restarts go over HTTP (the inspection digest and the metadata API, as a client sees them). The
index tests fill a table with 20,000 rows in-process and check that indexed answers equal those of
a full scan (`not (not (…))` gives the same filter without an index), through updates, deletes,
rollbacks and a restart. They assert behaviour, not time: benchmarks/emulator_growth.py measures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataverse_emulator.app import Emulator
from dataverse_emulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig
from dataverse_emulator.records import ApiRequest, Reply, RequestContext
from dataverse_emulator.server import start_emulator
from tests.emulator.test_s11_metadata import add_column, add_key, label, string_column

CRM = "Microsoft.Dynamics.CRM."
ROWS = 20_000


# ----------------------------------------------------------------------------------------------
# Restarting on the same database


@contextmanager
def _serving(db: Path) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(Web API client, inspection client) of an emulator running on the database `db`."""
    config = EmulatorConfig(limits_enabled=False, db_path=db)
    with start_emulator(config) as running:
        token = httpx.post(
            running.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "scope": running.root_url + ".default",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with (
            httpx.Client(base_url=running.base_url, headers=headers, timeout=30) as api,
            httpx.Client(base_url=running.root_url + "_emulator/", timeout=30) as inspect,
        ):
            yield api, inspect


def _picklist_column(schema_name: str) -> dict[str, Any]:
    return {
        "@odata.type": f"{CRM}PicklistAttributeMetadata",
        "SchemaName": schema_name,
        "DisplayName": label("Kind"),
        "OptionSet": {
            "@odata.type": f"{CRM}OptionSetMetadata",
            "IsGlobal": False,
            "OptionSetType": "Picklist",
            "Options": [
                {"Value": 100000002, "Label": label("Supplier")},
                {"Value": 100000000, "Label": label("Customer")},
                {"Value": 100000001, "Label": label("Partner")},
            ],
        },
    }


def _open_item_table() -> dict[str, Any]:
    return {
        "@odata.type": f"{CRM}EntityMetadata",
        "SchemaName": "w4a_OpenItem",
        "DisplayName": label("Open item"),
        "DisplayCollectionName": label("Open items"),
        "Description": label("Open items from work4all"),
        "OwnershipType": "UserOwned",
        "HasNotes": True,
        "Attributes": [
            string_column("w4a_Name", IsPrimaryName=True),
            string_column("w4a_SourceKey", max_length=50),
            {
                "@odata.type": f"{CRM}MoneyAttributeMetadata",
                "SchemaName": "w4a_Amount",
                "Precision": 2,
            },
            {
                "@odata.type": f"{CRM}DateTimeAttributeMetadata",
                "SchemaName": "w4a_DueOn",
                "Format": "DateOnly",
            },
        ],
    }


def _snapshot(api: httpx.Client, inspect: httpx.Client) -> dict[str, Any]:
    """Everything a client can see of the schema and the rows, without addresses (ports differ)."""
    definitions = api.get("EntityDefinitions", params={"$expand": "Attributes,Keys"}).json()[
        "value"
    ]
    options = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='w4a_kind')"
        f"/{CRM}PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    ).json()
    return {
        "digest": inspect.get("digest").json(),
        "content": inspect.get("digest", params={"content": "true"}).json(),
        "counts": inspect.get("counts").json(),
        "definitions": definitions,
        "options": options["OptionSet"],
        "csdl": api.get("$metadata").content,
        "service": api.get("").json()["value"],
    }


def _define_schema(api: httpx.Client) -> None:
    assert add_column(api, "account", string_column("w4a_SourceKey")).status_code == 204
    assert add_column(api, "account", _picklist_column("w4a_Kind")).status_code == 204
    assert add_column(api, "contact", string_column("w4a_Legacy")).status_code == 204
    assert add_key(api, "account", "w4a_account_sourcekey", "w4a_sourcekey").status_code == 204
    assert add_key(api, "contact", "w4a_contact_legacy", "w4a_legacy").status_code == 204
    assert (
        api.delete(
            "EntityDefinitions(LogicalName='contact')/Keys(LogicalName='w4a_contact_legacy')"
        ).status_code
        == 204
    )
    assert api.post("EntityDefinitions", json=_open_item_table()).status_code == 204
    assert (
        add_key(api, "w4a_openitem", "w4a_openitem_sourcekey", "w4a_sourcekey").status_code == 204
    )
    assert api.post("PublishAllXml").status_code == 204


def test_a_restarted_emulator_serves_the_same_custom_schema_and_rows(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    account_id = str(uuid.uuid4())
    with _serving(db) as (api, inspect):
        _define_schema(api)
        account = {"accountid": account_id, "name": "Kunde 1", "w4a_sourcekey": "K-1"}
        assert api.post("accounts", json={**account, "w4a_kind": 100000001}).status_code == 204
        item = {"w4a_name": "RE-1", "w4a_sourcekey": "OI-1", "w4a_amount": 12.5}
        assert (
            api.post("w4a_openitems", json={**item, "w4a_dueon": "2024-03-01"}).status_code == 204
        )
        before = _snapshot(api, inspect)

    with _serving(db) as (api, inspect):
        after = _snapshot(api, inspect)
        row = api.get(f"accounts({account_id})", params={"$select": "w4a_sourcekey,w4a_kind"})
        by_key = api.get("accounts(w4a_sourcekey='K-1')", params={"$select": "accountid"})
        duplicate = api.post("accounts", json={"name": "Kunde 2", "w4a_sourcekey": "K-1"})
        items = api.get("w4a_openitems", params={"$filter": "w4a_sourcekey eq 'OI-1'"})

    assert after == before
    assert row.json()["w4a_sourcekey"] == "K-1"
    assert row.json()["w4a_kind"] == 100000001
    assert by_key.json()["accountid"] == account_id
    assert (duplicate.status_code, duplicate.json()["error"]["code"]) == (412, "0x80060892")
    assert [i["w4a_dueon"] for i in items.json()["value"]] == ["2024-03-01"]


def test_a_key_that_failed_to_build_is_still_failed_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    keys = "EntityDefinitions(LogicalName='account')/Keys"
    with _serving(db) as (api, _):
        assert add_column(api, "account", string_column("w4a_Code")).status_code == 204
        for _ in range(2):
            api.post("accounts", json={"name": "Same code", "w4a_code": "C-1"})
        assert add_key(api, "account", "w4a_account_code", "w4a_code").status_code == 204
        before = api.get(keys).json()["value"]

    with _serving(db) as (api, _):
        after = api.get(keys).json()["value"]
        third = api.post("accounts", json={"name": "Same code", "w4a_code": "C-1"})

    assert [k["EntityKeyIndexStatus"] for k in after] == ["Failed"]
    assert after == before
    assert third.status_code == 204  # a failed key is not enforced


def test_schema_written_after_a_restart_is_kept_by_the_next_one(tmp_path: Path) -> None:
    db = tmp_path / "emulator.sqlite"
    with _serving(db) as (api, _):
        assert add_column(api, "account", string_column("w4a_First")).status_code == 204
    with _serving(db) as (api, _):
        assert add_column(api, "account", string_column("w4a_Second")).status_code == 204
        assert add_column(api, "account", string_column("w4a_First")).status_code == 400
    with _serving(db) as (api, _):
        found = api.get(
            "EntityDefinitions(LogicalName='account')/Attributes",
            params={"$select": "LogicalName", "$filter": "IsCustomAttribute eq true"},
        ).json()["value"]

    assert [a["LogicalName"] for a in found] == ["w4a_first", "w4a_second"]


# ----------------------------------------------------------------------------------------------
# Equality filters on a large table


class _Local:
    """Web API requests to an in-process emulator, as the HTTP routes would make them."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.ctx: RequestContext = emulator.records.context_for(
            DEFAULT_CLIENT_ID, base_url="http://127.0.0.1/api/data/v9.2/"
        )

    def send(self, method: str, url: str, body: Any = None, **headers: str) -> Reply:
        data = json.dumps(body).encode() if body is not None else b""
        request = ApiRequest.parse(
            method, url, {"Content-Type": "application/json", **headers}, data
        )
        return self.emulator.web_api.execute(request, self.ctx)

    def ids(
        self, entity_set: str, text: str, primary: str = "accountid", **headers: str
    ) -> list[str]:
        """The primary keys of every row the filter matches, following next links."""
        url = f"{entity_set}?$select={primary}&$filter={text}"
        found: list[str] = []
        while url:
            reply = self.send("GET", url, **headers)
            assert reply.status == 200, reply.body
            page = json.loads(reply.body)
            found += [row[primary] for row in page["value"]]
            url = page.get("@odata.nextLink", "")
        return found

    def scanned(self, entity_set: str, text: str, primary: str = "accountid") -> list[str]:
        """The same, with the filter wrapped so that no index can serve it."""
        return self.ids(entity_set, f"not (not ({text}))", primary)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("large") / "emulator.sqlite"


@pytest.fixture(scope="module")
def large(database: Path) -> Iterator[tuple[_Local, list[str], list[str]]]:
    """An emulator whose accounts hold 20,000 rows: (client, account ids, parent ids)."""
    emulator = Emulator.build(EmulatorConfig(limits_enabled=False, db_path=database))
    local = _Local(emulator)
    column = string_column("w4a_SourceKey")
    assert (
        local.send("POST", "EntityDefinitions(LogicalName='account')/Attributes", column).status
        == 204
    )
    key = {"SchemaName": "w4a_account_sourcekey", "KeyAttributes": ["w4a_sourcekey"]}
    assert local.send("POST", "EntityDefinitions(LogicalName='account')/Keys", key).status == 204
    parents = [str(uuid.uuid4()) for _ in range(10)]
    for index, parent in enumerate(parents):
        assert (
            local.send("POST", "accounts", {"accountid": parent, "name": f"P{index}"}).status == 204
        )
    ids: list[str] = []
    for start in range(0, ROWS, 1000):
        targets = []
        for index in range(start, start + 1000):
            ids.append(str(uuid.uuid4()))
            targets.append(
                {
                    "@odata.type": f"{CRM}account",
                    "accountid": ids[-1],
                    "name": f"Account {index}",
                    "w4a_sourcekey": f"K-{index:05d}",
                    "parentaccountid@odata.bind": f"/accounts({parents[index % 10]})",
                }
            )
        reply = local.send("POST", f"accounts/{CRM}CreateMultiple", {"Targets": targets})
        assert reply.status == 200, reply.body
    yield local, ids, parents
    emulator.store.close()


def _either(column: str, values: list[str]) -> str:
    return " or ".join(f"{column} eq {v}" for v in values)


def test_a_filter_on_100_primary_keys_returns_exactly_the_existing_rows_in_id_order(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, ids, parents = large
    wanted = [*ids[500:598], str(uuid.uuid4()), parents[0].upper()]
    text = _either("accountid", wanted)

    found = local.ids("accounts", text)

    assert found == sorted([*ids[500:598], parents[0]])
    assert found == local.scanned("accounts", text)


def test_id_filters_combine_with_other_conditions_and_pages(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, ids, _ = large
    either = f"({_either('accountid', ids[:100])})"
    narrowed = f"{either} and startswith(name, 'Account 1')"
    widened = f"{either} or name eq 'Account 19999'"

    paged = local.ids("accounts", either, Prefer="odata.maxpagesize=30")
    counted = json.loads(local.send("GET", f"accounts?$count=true&$filter={either}").body)

    assert paged == sorted(ids[:100])
    assert local.ids("accounts", narrowed) == local.scanned("accounts", narrowed)
    assert local.ids("accounts", widened) == sorted([*ids[:100], ids[19999]])
    assert counted["@odata.count"] == 100


def test_alternate_key_and_lookup_filters_match_what_a_scan_finds(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, ids, parents = large
    keys = " or ".join(f"w4a_sourcekey eq 'k-{n:05d}'" for n in range(200, 300))  # any case
    children = f"_parentaccountid_value eq {parents[3]}"

    assert local.ids("accounts", keys) == sorted(ids[200:300])
    assert local.ids("accounts", children) == local.scanned("accounts", children)
    assert len(local.ids("accounts", children)) == ROWS // 10


def test_indexed_filters_follow_updates_deletes_and_rolled_back_writes(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, ids, parents = large
    moved, deleted = ids[7003], ids[7013]  # both children of parents[3]
    local.ids("accounts", f"_parentaccountid_value eq {parents[3]}")  # the index exists
    patch = {"parentaccountid@odata.bind": f"/accounts({parents[4]})", "w4a_sourcekey": "MOVED"}
    assert local.send("PATCH", f"accounts({moved})", patch, **{"If-Match": "*"}).status == 204
    assert local.send("DELETE", f"accounts({deleted})").status == 204
    fresh = str(uuid.uuid4())
    failing = [
        {"@odata.type": f"{CRM}account", "accountid": fresh, "name": "x", "w4a_sourcekey": "NEW"},
        {"@odata.type": f"{CRM}account", "name": "y", "w4a_sourcekey": "K-00001"},
    ]
    rejected = local.send("POST", f"accounts/{CRM}CreateMultiple", {"Targets": failing})

    assert rejected.status == 412
    assert local.ids("accounts", "w4a_sourcekey eq 'NEW'") == []
    assert local.ids("accounts", f"accountid eq {fresh}") == []
    assert local.ids("accounts", "w4a_sourcekey eq 'moved'") == [moved]
    assert local.ids("accounts", f"w4a_sourcekey eq 'K-07003' or accountid eq {deleted}") == []
    for parent in parents[3:5]:
        text = f"_parentaccountid_value eq {parent}"
        assert local.ids("accounts", text) == local.scanned("accounts", text)
    assert moved in local.ids("accounts", f"_parentaccountid_value eq {parents[4]}")


def test_writes_to_a_large_table_still_check_keys_and_ids(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, ids, _ = large
    taken_id = [{"@odata.type": f"{CRM}account", "accountid": ids[5], "name": "again"}]
    taken_key = {"name": "again", "w4a_sourcekey": "K-00005"}
    new_id = str(uuid.uuid4())
    batch = (
        "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "POST accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        + json.dumps({"accountid": new_id, "name": "batched", "w4a_sourcekey": "B-1"})
        + "\r\n--b--\r\n"
    )

    by_bulk = local.send("POST", f"accounts/{CRM}CreateMultiple", {"Targets": taken_id})
    by_post = local.send("POST", "accounts", taken_key)
    batched = local.emulator.web_api.execute(
        ApiRequest.parse(
            "POST", "$batch", {"Content-Type": "multipart/mixed; boundary=b"}, batch.encode()
        ),
        local.ctx,
    )

    assert (by_bulk.status, json.loads(by_bulk.body)["error"]["code"]) == (412, "0x80040237")
    assert (by_post.status, json.loads(by_post.body)["error"]["code"]) == (412, "0x80060892")
    assert batched.status == 200
    assert local.ids("accounts", "w4a_sourcekey eq 'B-1'") == [new_id]


def test_activity_filters_and_deletes_use_the_shared_id_space(
    large: tuple[_Local, list[str], list[str]],
) -> None:
    local, _, _ = large
    call = str(uuid.uuid4())
    body = {
        "activityid": call,
        "subject": "Call",
        "phonecall_activity_parties": [
            {
                "partyid_systemuser@odata.bind": f"/systemusers({local.ctx.user_id})",
                "participationtypemask": 1,
            }
        ],
    }
    assert local.send("POST", "phonecalls", body).status == 204
    parties = f"_activityid_value eq {call}"

    assert local.ids("activitypointers", f"activityid eq {call}", "activityid") == [call]
    assert local.ids("tasks", f"activityid eq {call}", "activityid") == []
    assert len(local.ids("activityparties", parties, "activitypartyid")) == 1
    assert local.send("DELETE", f"phonecalls({call})").status == 204
    assert local.ids("activityparties", parties, "activitypartyid") == []


def test_term_indexes_survive_a_restart_and_keep_following_writes(
    large: tuple[_Local, list[str], list[str]], database: Path
) -> None:
    local, ids, _ = large
    local.ids("accounts", "w4a_sourcekey eq 'K-00000'")  # the index exists
    # The last test of the module: the fixture's client moves on to the restarted emulator.
    local.emulator.store.close()
    restarted = _Local(Emulator.build(EmulatorConfig(limits_enabled=False, db_path=database)))
    local.emulator = restarted.emulator  # later tests of this module use the restarted one
    local.ctx = restarted.ctx
    late = str(uuid.uuid4())
    row = {"accountid": late, "name": "late", "w4a_sourcekey": "LATE"}
    assert restarted.send("POST", "accounts", row).status == 204

    assert restarted.ids("accounts", "w4a_sourcekey eq 'LATE' or w4a_sourcekey eq 'K-00042'") == (
        sorted([late, ids[42]])
    )
    assert restarted.ids("accounts", _either("accountid", ids[:3])) == sorted(ids[:3])
