"""How the Dataverse emulator's write path and id lookups scale with the rows a table holds.

    python benchmarks/emulator_growth.py [--sizes 1000,20000] [--db FILE] [--profile OUT]

A migration writer reads existing rows in batches of 100 ids before it writes, so the emulator must
answer `$filter=accountid eq <id1> or … or accountid eq <id100>` (and the same over a lookup and an
alternate-key column) without reading the whole table. For each table size this prints rows/s for
`CreateMultiple` of 1,000 and `$batch` of 100 creates, PATCH/s, and ids/s for the three filters.
Requests go straight to `WebApi.execute` (no HTTP, no limits), so the figures are the emulator's
own work; the database is a SQLite file, as with `crmledger emulator serve --db`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataverse_emulator.app import Emulator  # noqa: E402
from dataverse_emulator.config import DEFAULT_CLIENT_ID, EmulatorConfig  # noqa: E402
from dataverse_emulator.records import ApiRequest, Reply  # noqa: E402

BULK_SIZE = 1000
BATCH_SIZE = 100
IDS_PER_QUERY = 100
CRLF = "\r\n"
_JSON = {"Content-Type": "application/json"}


class _Bench:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.ctx = emulator.records.context_for(
            DEFAULT_CLIENT_ID, base_url="http://127.0.0.1/api/data/v9.2/"
        )
        self.ids: list[str] = []
        self.parent = str(uuid.uuid4())
        self._serial = 0

    def send(self, method: str, url: str, body: object = None, **headers: str) -> Reply:
        data = json.dumps(body).encode() if body is not None else b""
        request = ApiRequest.parse(method, url, {**_JSON, **headers}, data)
        reply = self.emulator.web_api.execute(request, self.ctx)
        if reply.status >= 400:
            raise SystemExit(f"{method} {url[:80]}: {reply.status} {reply.body[:300]!r}")
        return reply

    def account(self) -> dict[str, object]:
        self._serial += 1
        row_id = str(uuid.uuid4())
        self.ids.append(row_id)
        return {
            "accountid": row_id,
            "name": f"Account {self._serial}",
            "w4a_sourcekey": f"K-{self._serial:08d}",
            "parentaccountid@odata.bind": f"/accounts({self.parent})",
            "revenue": 125000.5,
        }

    def prepare(self) -> None:
        self.send(
            "POST",
            "EntityDefinitions(LogicalName='account')/Attributes",
            {
                "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
                "SchemaName": "w4a_SourceKey",
                "MaxLength": 100,
            },
        )
        self.send(
            "POST",
            "EntityDefinitions(LogicalName='account')/Keys",
            {"SchemaName": "w4a_sourcekey_key", "KeyAttributes": ["w4a_sourcekey"]},
        )
        self.send("POST", "accounts", {"accountid": self.parent, "name": "Parent"})

    def create_multiple(self, count: int) -> None:
        for _ in range(0, count, BULK_SIZE):
            targets = [
                {"@odata.type": "Microsoft.Dynamics.CRM.account", **self.account()}
                for _ in range(BULK_SIZE)
            ]
            self.send(
                "POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": targets}
            )

    def batch(self, count: int) -> None:
        for _ in range(0, count, BATCH_SIZE):
            parts = [
                f"--b{CRLF}Content-Type: application/http{CRLF}"
                f"Content-Transfer-Encoding: binary{CRLF}{CRLF}"
                f"POST accounts HTTP/1.1{CRLF}Content-Type: application/json{CRLF}{CRLF}"
                f"{json.dumps(self.account())}{CRLF}"
                for _ in range(BATCH_SIZE)
            ]
            body = ("".join(parts) + f"--b--{CRLF}").encode()
            request = ApiRequest.parse(
                "POST", "$batch", {"Content-Type": "multipart/mixed; boundary=b"}, body
            )
            reply = self.emulator.web_api.execute(request, self.ctx)
            if reply.status != 200:
                raise SystemExit(f"$batch: {reply.status} {reply.body[:300]!r}")

    def patch(self, count: int) -> None:
        for row_id in self.ids[:count]:
            self.send("PATCH", f"accounts({row_id})", {"revenue": 1.5}, **{"If-Match": "*"})

    def id_filter(self, queries: int) -> None:
        for index in range(queries):
            chunk = self.ids[index * IDS_PER_QUERY : (index + 1) * IDS_PER_QUERY]
            text = " or ".join(f"accountid eq {i}" for i in chunk)
            reply = self.send("GET", f"accounts?$select=accountid&$filter={text}")
            assert len(json.loads(reply.body)["value"]) == len(chunk)

    def key_filter(self, queries: int) -> None:
        for index in range(queries):
            first = index * IDS_PER_QUERY + 1
            text = " or ".join(
                f"w4a_sourcekey eq 'K-{n:08d}'" for n in range(first, first + IDS_PER_QUERY)
            )
            self.send("GET", f"accounts?$select=accountid&$filter={text}")

    def lookup_filter(self, queries: int) -> None:
        for _ in range(queries):
            self.send(
                "GET",
                f"accounts?$select=accountid&$filter=_parentaccountid_value eq {uuid.uuid4()}",
            )


def _rate(work: Callable[[int], None], amount: int, per: int = 1) -> float:
    started = time.perf_counter()
    work(amount)
    return amount * per / (time.perf_counter() - started)


def main() -> None:
    """Fill an emulator table to each size and print the rates there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000", help="existing rows to measure at")
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory() as scratch:
        db = args.db or Path(scratch) / "growth.sqlite"
        emulator = Emulator.build(EmulatorConfig(limits_enabled=False, db_path=db))
        bench = _Bench(emulator)
        bench.prepare()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        print(
            f"{'rows':>7} {'CreateMultiple':>15} {'$batch':>9} {'PATCH':>8} "
            f"{'id filter':>10} {'key filter':>11} {'lookup filter':>14}"
        )
        for size in sizes:
            missing = size - len(bench.ids)
            if missing > 0:
                bench.create_multiple(missing - missing % BULK_SIZE)
            existing = len(bench.ids)
            rates = (
                _rate(bench.create_multiple, 2 * BULK_SIZE),
                _rate(bench.batch, 5 * BATCH_SIZE),
                _rate(bench.patch, 200),
                _rate(bench.id_filter, 5, IDS_PER_QUERY),
                _rate(bench.key_filter, 5, IDS_PER_QUERY),
                _rate(bench.lookup_filter, 20),
            )
            print(
                f"{existing:>7} {rates[0]:>11.0f} r/s {rates[1]:>5.0f} r/s {rates[2]:>4.0f}/s "
                f"{rates[3]:>6.0f} id/s {rates[4]:>6.0f} id/s {rates[5]:>8.1f} req/s"
            )
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        emulator.store.close()


if __name__ == "__main__":
    main()
