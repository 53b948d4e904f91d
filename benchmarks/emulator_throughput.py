"""Create accounts in the Dataverse emulator three ways and print records/s for each.

    python benchmarks/emulator_throughput.py [--records 5000]

Single POSTs, `$batch` requests of 100 creates, and `CreateMultiple` requests of 1,000 targets,
each creating `--records` accounts over https with a token the real msal obtains. The emulator
runs with limits off in a child process, so it has a core of its own and the client's work does
not compete with it for the GIL. Request bodies are built before the clock starts: the figures are
HTTP plus the emulator's work. The last line is the ratio CreateMultiple / single POSTs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import ssl
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import msal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataverse_emulator.config import (  # noqa: E402
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
)
from dataverse_emulator.server import start_emulator  # noqa: E402

BATCH_SIZE = 100
BULK_SIZE = 1000
CRLF = "\r\n"


def _serve(pipe: Connection) -> None:
    with start_emulator(EmulatorConfig(limits_enabled=False, tls=True)) as emulator:
        pipe.send((emulator.base_url, emulator.authority, str(emulator.cert_path)))
        pipe.recv()  # until the parent is done


def _client(base_url: str, authority: str, cert_path: str) -> httpx.Client:
    verify = ssl.create_default_context(cafile=cert_path)
    with httpx.Client(verify=verify) as http:
        app = msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID,
            client_credential=DEFAULT_CLIENT_SECRET,
            authority=authority,
            instance_discovery=False,
            http_client=http,
        )
        token = app.acquire_token_for_client(scopes=[base_url.split("/api/")[0] + "/.default"])
    return httpx.Client(
        base_url=base_url,
        verify=verify,
        headers={
            "Authorization": f"Bearer {token['access_token']}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        },
        timeout=120,
    )


def _account(run: str, index: int) -> dict[str, object]:
    return {
        "name": f"Account {run}-{index}",
        "accountnumber": f"{index:08d}",
        "telephone1": "+49 30 1234567",
        "address1_city": "Berlin",
        "revenue": 125000.5,
    }


def _batch_body(run: str, start: int) -> bytes:
    parts = [
        f"--batch_{run}{CRLF}Content-Type: application/http{CRLF}"
        f"Content-Transfer-Encoding: binary{CRLF}{CRLF}"
        f"POST accounts HTTP/1.1{CRLF}Content-Type: application/json; type=entry{CRLF}{CRLF}"
        f"{json.dumps(_account(run, start + i))}{CRLF}"
        for i in range(BATCH_SIZE)
    ]
    return ("".join(parts) + f"--batch_{run}--{CRLF}").encode()


def _bulk_body(run: str, start: int) -> bytes:
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.account", **_account(run, start + i)}
        for i in range(BULK_SIZE)
    ]
    return json.dumps({"Targets": targets}).encode()


def _timed(send: Callable[[bytes], httpx.Response], bodies: list[bytes], expected: int) -> float:
    started = time.perf_counter()
    for body in bodies:
        response = send(body)
        if response.status_code != expected:
            raise SystemExit(f"unexpected {response.status_code}: {response.text[:500]}")
    return time.perf_counter() - started


def measure(api: httpx.Client, records: int, run: str) -> dict[str, float]:
    """records/s for each way of creating `records` accounts (rounded down to whole requests)."""
    json_headers = {"Content-Type": "application/json"}
    batch_headers = {"Content-Type": f"multipart/mixed; boundary=batch_{run}"}
    ways: dict[str, tuple[Callable[[bytes], httpx.Response], list[bytes], int, int]] = {
        "single POST": (
            lambda body: api.post("accounts", content=body, headers=json_headers),
            [json.dumps(_account(run, i)).encode() for i in range(records)],
            204,
            1,
        ),
        f"$batch of {BATCH_SIZE}": (
            lambda body: api.post("$batch", content=body, headers=batch_headers),
            [_batch_body(run, i) for i in range(0, records, BATCH_SIZE)],
            200,
            BATCH_SIZE,
        ),
        f"CreateMultiple of {BULK_SIZE}": (
            lambda body: api.post(
                "accounts/Microsoft.Dynamics.CRM.CreateMultiple", content=body, headers=json_headers
            ),
            [_bulk_body(run, i) for i in range(0, records, BULK_SIZE)],
            200,
            BULK_SIZE,
        ),
    }
    rates: dict[str, float] = {}
    for name, (send, bodies, expected, per_request) in ways.items():
        _timed(send, bodies[:1], expected)  # warm up connection, caches and the SQLite pages
        seconds = _timed(send, bodies, expected)
        rates[name] = len(bodies) * per_request / seconds
    return rates


def main() -> None:
    """Start the emulator, run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000, help="accounts per way (≥ 1000)")
    args = parser.parse_args()
    records = max(args.records, BULK_SIZE)

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,))
    server.start()
    try:
        base_url, authority, cert_path = parent.recv()
        with _client(base_url, authority, cert_path) as api:
            rates = measure(api, records, run=str(int(time.time())))
    finally:
        parent.send("stop")
        server.join(timeout=30)
    print(f"{records} accounts each, emulator with limits off (one process), https")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:>10,.0f} records/s")
    single, bulk = rates["single POST"], rates[f"CreateMultiple of {BULK_SIZE}"]
    print(f"  CreateMultiple / single POST: {bulk / single:.1f}x")


if __name__ == "__main__":
    main()
