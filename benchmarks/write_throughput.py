"""crmledger's writer against the emulator with its service protection limits on, as a share of
the most those limits allow, and a naive writer on the same data.

    python benchmarks/write_throughput.py [--customers 400] [--phases all] [--window-s 15]

A generated export (``--customers``) is extracted, the default map confirmed and the run
transformed, once. Each writer then gets a fresh emulator in a child process (so it has a core
of its own and does not share the GIL with the client), with TLS, the run's owners seeded and
the default map's schema applied by a second client id (so set-up requests do not count against
the writer's limits), and writes ``--phases`` over https with a token the real msal obtains:

* **crmledger**: ``write_phase`` for each phase, every request through one ``Throttle``, as
  ``crmledger migrate`` does (``--throttle-per-phase``: a new one per phase), each request
  weighed as the limit counts it (a ``$batch`` 1 + its inner requests). Its
  ``ThrottleSettings`` are the defaults with every time constant compressed like the window:
  rate window 300 s → ``W``, probe interval 60 s → ``W / 5``, and the pace's growth of 2% per
  second compounded over ``300 / W`` times fewer seconds.
* **naive baseline**: the same decisions in the same dependency order with the same bodies and
  resolved binds, one POST per record (and one request for its state step: SetState PATCH,
  WinOpportunity/LoseOpportunity), ``--baseline-workers`` threads, and a fixed 1 s sleep on a
  429 that ignores ``Retry-After`` — what peer tools do. The two emulators' content digests are
  compared, so both wrote the same rows.

**Limits.** The window is ``--window-s`` real seconds (time scale 300 / window). Dataverse's
budgets per window (6,000 requests, 1,200,000 ms execution) are multiplied by ``--budget`` (by
default 1/6: 1,000 requests and 200,000 ms per 15 s), because the documented budgets would never
bind on an export this small: crmledger sends about 0.45 requests per record, so 6,000 requests
hold some 13,000 records. Concurrency (52) and the dop hint (50) stay as documented. Execution
time is the emulator's model: ``base`` ms per request plus ``per_record`` ms per record it
touches (10 + 2 by default; ``--base-cost-ms``, ``--record-cost-ms``).

**The maximum.** From the emulator's statistics for the writer's client id over the run: ``Q``
requests admitted (a ``$batch`` counts 1 + its inner requests; 429s are excluded, they are the
writer's waste), ``E`` modelled execution ms, ``R`` records written. Per window the limits admit
``L_req`` requests and ``L_exec`` ms, so with this writer's per-record costs a window holds at
most ``min(L_req * R / Q, L_exec * R / E)`` records and::

    max records/s = R / max(Q / L_req, E / L_exec) / W

The limit with the larger quotient binds. ``share = (R / T) / max``, with ``T`` the writer's
wall time (phase start-up, log reads and appends included).

A run that starts with an empty window gets that window's budget at once, so on a run of a few
windows this share can pass 100% by up to one window's budget over ``T``. The **strict** share
does not: the run used ``U = max(Q / L_req, E / L_exec)`` windows' worth of budget, and no client,
however fast, can be admitted that much from an empty sliding window in less than
``T_min = (ceil(U) - 1) * W`` (it would burst each window's budget the moment the window
admits it), so ``strict share = T_min / T``. The truth lies between the two.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import multiprocessing
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.dataverse.client import (  # noqa: E402
    DataverseClient,
    RetryPolicy,
    client_from_settings,
)
from consumers.dataverse.errors import DataverseError, DataverseUnreachableError  # noqa: E402
from consumers.dataverse.metadata import MetadataApi  # noqa: E402
from consumers.dataverse.throttle import Throttle, ThrottleSettings  # noqa: E402
from consumers.write import write_phase  # noqa: E402
from consumers.writing import plan, rows  # noqa: E402
from consumers.writing.plan import Decision  # noqa: E402
from consumers.writing.resolve import Resolver, UnresolvedError, user_email  # noqa: E402
from dataverse_emulator.config import (  # noqa: E402
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    Limits,
)
from dataverse_emulator.server import start_emulator  # noqa: E402
from ledger.events import Topic  # noqa: E402
from ledger.log import EventLog, open_log  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from producers.extract import extract  # noqa: E402
from producers.mapping import schema  # noqa: E402
from producers.mapping.default import default_map  # noqa: E402
from producers.mapping.gate import confirm  # noqa: E402
from producers.mapping.rules import entity_set  # noqa: E402
from producers.mapping.stage import transform_run  # noqa: E402
from producers.work4all.cli import ExportForm, generate  # noqa: E402

T = TypeVar("T")

RUN = "bench"
WRITER_ID = "crmledger-writer"
WRITER_SECRET = "writer-secret"
DOCUMENTED = Limits()
SAMPLE_S = 0.2
NAIVE_SLEEP_S = 1.0


# -- the data ---------------------------------------------------------------------------------


def migrate_export(directory: Path, customers: int, seed: int) -> tuple[Path, tuple[str, ...]]:
    """A ledger with the run's decisions under the confirmed default map, and the owners."""
    export = directory / "export"
    with contextlib.redirect_stdout(io.StringIO()):  # the generator's one-line summary
        generate(out=str(export), customers=customers, form=ExportForm.SQL, seed=seed, quiet=True)
    ledger = directory / "ledger.db"
    migration_map = default_map()
    owners: set[str] = set()
    with open_log(f"sqlite:///{ledger}") as log:
        extract(export / "work4all.db", log, run_id=RUN)
        confirm(log, migration_map, by="benchmark")
        transform_run(log, migration_map, run_id=RUN, files=export)
        for stored in log.read([Topic.DECISIONS]):
            for reference in stored.event.payload.get("binds", {}).values():
                email = user_email(reference)
                if email is not None:
                    owners.add(email)
    return ledger, tuple(sorted(owners))


# -- an emulator of its own ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a running emulator answers."""

    root_url: str
    authority: str
    cert_path: Path
    pid: int


def _serve(config: EmulatorConfig, pipe: Connection) -> None:
    with start_emulator(config) as emulator:
        assert emulator.cert_path is not None
        pipe.send((emulator.root_url, emulator.authority, str(emulator.cert_path)))
        pipe.recv()  # until the parent is done


@contextmanager
def emulator(config: EmulatorConfig) -> Iterator[Endpoint]:
    """An emulator in a child process of its own."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(config, child))
    process.start()
    try:
        root_url, authority, cert_path = parent.recv()
        assert process.pid is not None
        yield Endpoint(root_url, authority, Path(cert_path), process.pid)
    finally:
        parent.send("stop")
        process.join(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settings_for(endpoint: Endpoint, ledger: Path, client_id: str, secret: str) -> Settings:
    """Settings pointing crmledger at the emulator as ``client_id``."""
    return Settings(
        dataverse_url=endpoint.root_url.rstrip("/"),
        authority_url=endpoint.authority,
        client_id=client_id,
        client_secret=SecretStr(secret),
        dataverse_ca_file=endpoint.cert_path,
        log_url=f"sqlite:///{ledger}",
    )


def _trust(endpoint: Endpoint) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(endpoint.cert_path))


def inspect(endpoint: Endpoint, what: str, http: httpx.Client | None = None) -> Any:
    """A route of the emulator's inspection API."""
    url = f"{endpoint.root_url}_emulator/{what}"
    if http is not None:
        return http.get(url).json()
    with httpx.Client(verify=_trust(endpoint)) as client:
        return client.get(url).json()


class Sample(NamedTuple):
    """Cumulative figures of the writer's client id and both processes at one moment."""

    at: float
    admitted: float
    throttled: float
    execution_ms: float
    cpu_client_s: float
    cpu_emulator_s: float


class Sampler:
    """Polls the writer's cumulative emulator statistics and both processes' CPU time."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        with httpx.Client(verify=_trust(self._endpoint)) as http:
            self._sample(http)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(verify=_trust(self._endpoint)) as http:
            while not self._stop.wait(SAMPLE_S):
                self._sample(http)
            self._sample(http)

    def _sample(self, http: httpx.Client) -> None:
        stats = inspect(self._endpoint, "stats", http).get(WRITER_ID, {})
        requests, throttled = stats.get("requests", 0), stats.get("throttled", 0)
        self.samples.append(
            Sample(
                time.perf_counter(),
                requests - throttled,
                throttled,
                stats.get("execution_ms", 0.0),
                time.process_time(),
                cpu_seconds(self._endpoint.pid),
            )
        )

    def between(self, start: float, end: float) -> Sample:
        """What changed from ``start`` to ``end`` (``at`` holds the seconds)."""
        first, last = self.at(start), self.at(end)
        return Sample(*(b - a for a, b in zip(first, last, strict=True)))

    def at(self, moment: float) -> Sample:
        """The figures at ``moment``, interpolated between the samples around it."""
        times = [s.at for s in self.samples]
        i = min(max(bisect_left(times, moment), 1), len(times) - 1)
        before, after = self.samples[i - 1], self.samples[i]
        span = after.at - before.at
        share = 0.0 if span == 0 else min(1.0, max(0.0, (moment - before.at) / span))
        values = (a + share * (b - a) for a, b in zip(before[1:], after[1:], strict=True))
        return Sample(moment, *values)


# -- the two writers ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one writer did, with the emulator's view of it."""

    name: str
    records: int = 0
    failed: int = 0
    seconds: float = 0.0
    client_429: int = 0
    admitted: float = 0.0
    throttled: float = 0.0
    execution_ms: float = 0.0
    digest: str = ""
    cpu_client_s: float = 0.0
    cpu_emulator_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phases: list[tuple[int, float, float, int]] = field(default_factory=list)
    """(phase, start, end, records written) per phase, in ``time.perf_counter`` seconds."""
    phase_lines: list[str] = field(default_factory=list)


def write_crmledger(
    log: EventLog, client: DataverseClient, phases: list[int], args: argparse.Namespace
) -> Outcome:
    """Every phase through ``write_phase`` with one Throttle scaled to the emulator's window."""
    settings = scaled_throttle_settings(args.window_s, args.rate_growth)
    throttle = Throttle(settings)
    outcome = Outcome("crmledger")
    for phase in phases:
        if args.throttle_per_phase:
            throttle = Throttle(settings)
        started = time.perf_counter()
        summary = write_phase(
            log,
            client,
            run_id=RUN,
            phase=phase,
            throttle=throttle,
            batch_size=args.batch_size,
            workers=args.workers,
        )
        outcome.records += summary.written
        outcome.failed += summary.failed
        outcome.phases.append((phase, started, time.perf_counter(), summary.written))
        stats = throttle.stats()
        pace = "none" if stats.rate_limit_per_s is None else f"{stats.rate_limit_per_s:.2f}/s"
        outcome.notes.append(
            f"throttle after phase {phase}: limit {stats.limit}, pace {pace}, "
            f"{stats.decreases} cuts, {stats.retries} retries, "
            f"{stats.weight_succeeded:,.0f} requests weighed so far"
        )
    return outcome


def scaled_throttle_settings(window_s: float, rate_growth: float | None) -> ThrottleSettings:
    """The default ``ThrottleSettings`` with every time constant compressed like the window."""
    default = ThrottleSettings()
    scale = window_s / DOCUMENTED.window_s
    return ThrottleSettings(
        rate_window_s=default.rate_window_s * scale,
        probe_interval_s=default.probe_interval_s * scale,
        # the pace compounds per second: the same growth per window in fewer seconds
        rate_growth_per_s=(
            (1 + default.rate_growth_per_s) ** (1 / scale) - 1
            if rate_growth is None
            else rate_growth
        ),
    )


class NaiveRetry:
    """Calls an operation; on a 429 (or a dropped connection) sleeps 1 s and calls it again."""

    def __init__(self) -> None:
        self.sleeps = 0
        self._lock = threading.Lock()

    def __call__(self, operation: Callable[[], T]) -> T:
        """The operation's result once it is not refused."""
        while True:
            try:
                return operation()
            except DataverseError as error:
                if error.status != 429:
                    raise
            except DataverseUnreachableError:
                pass
            with self._lock:
                self.sleeps += 1
            time.sleep(NAIVE_SLEEP_S)


def write_naive(
    log: EventLog, client: DataverseClient, phases: list[int], args: argparse.Namespace
) -> Outcome:
    """One POST per record (and one request per state step), fixed concurrency, fixed retry."""
    outcome = Outcome("naive baseline")
    naive = NaiveRetry()
    lock = threading.Lock()
    resolver = Resolver(client, naive)

    def write_one(decision: Decision) -> None:
        table, row_id, payload = decision.table, decision.target_id, decision.payload
        try:
            binds = resolver.resolve(table, decision.binds)
            body = rows.body_of(table, payload, binds, create=True)
            body[rows.primary_id(table)] = row_id
            naive(lambda: client.request("POST", entity_set(table), json_body=body))
            step = rows.step_of(table, payload, create=True)
            if step is not None:
                method, path, step_body = rows.step_request(table, row_id, payload, step)
                headers = {"If-Match": "*"} if method == "PATCH" else None
                naive(lambda: client.request(method, path, json_body=step_body, headers=headers))
        except (DataverseError, UnresolvedError) as error:
            with lock:
                outcome.failed += 1
                outcome.errors.append(f"{decision.key} ({table}): {error}")
            return
        with lock:
            outcome.records += 1

    with ThreadPoolExecutor(max_workers=args.baseline_workers) as pool:
        for phase in phases:
            started, before = time.perf_counter(), outcome.records
            for group in plan.groups(plan.load(log, RUN, phase).pending):
                for table, decisions in group.items():
                    resolver.prepare(table, [d.binds for d in decisions])
                jobs = [d for decisions in group.values() for d in decisions]
                list(pool.map(write_one, jobs))
            outcome.phases.append((phase, started, time.perf_counter(), outcome.records - before))
    outcome.notes.append(f"{naive.sleeps} fixed 1 s sleeps")
    return outcome


def run(
    name: str,
    writer: Callable[[EventLog, DataverseClient, list[int], argparse.Namespace], Outcome],
    ledger: Path,
    owners: tuple[str, ...],
    phases: list[int],
    args: argparse.Namespace,
    directory: Path,
) -> Outcome:
    """``writer`` into a fresh emulator with the limits on; its figures and the digest."""
    window_s: float = args.window_s
    config = EmulatorConfig(
        tls=True,
        tls_dir=directory / "tls",
        clients={DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET, WRITER_ID: WRITER_SECRET},
        seed_users=tuple((email, f"User {email.split('@')[0]}", False) for email in owners),
        limits_enabled=True,
        limits=limits_of(args),
        time_scale=DOCUMENTED.window_s / window_s,
    )
    copy = directory / f"{name}.db"
    shutil.copyfile(ledger, copy)
    with emulator(config) as endpoint, open_log(f"sqlite:///{copy}") as log:
        setup = settings_for(endpoint, copy, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        with client_from_settings(setup) as admin:
            metadata = MetadataApi(admin)
            schema.apply(schema.plan(default_map(), metadata), metadata, log, RUN)
        writing = settings_for(endpoint, copy, WRITER_ID, WRITER_SECRET)
        with client_from_settings(writing, retry=RetryPolicy(max_retries=0)) as client:
            client.get("systemusers", {"$top": "1"})  # the token, before the clock starts
            with Sampler(endpoint) as sampler:
                started = time.perf_counter()
                outcome = writer(log, client, phases, args)
                ended = time.perf_counter()
            outcome.client_429 = client.stats.throttled
        outcome.seconds = ended - started
        first, last = sampler.samples[0], sampler.samples[-1]
        outcome.admitted = last.admitted - first.admitted
        outcome.throttled = last.throttled - first.throttled
        outcome.execution_ms = last.execution_ms - first.execution_ms
        outcome.cpu_client_s = last.cpu_client_s - first.cpu_client_s
        outcome.cpu_emulator_s = last.cpu_emulator_s - first.cpu_emulator_s
        for phase, start, end, written in outcome.phases:
            outcome.phase_lines.append(
                phase_line(phase, written, sampler.between(start, end), config.limits, window_s)
            )
        outcome.digest = str(inspect(endpoint, "digest?content=true")["digest"])
    return outcome


def windows_used(change: Sample, limits: Limits) -> float:
    """How many windows' worth of the binding limit's budget ``change`` used."""
    return max(change.admitted / limits.max_requests, change.execution_ms / limits.max_execution_ms)


def phase_line(
    phase: int,
    records: int,
    change: Sample,
    limits: Limits,
    window_s: float,
) -> str:
    """One phase's records/s, requests, 429s, budget used per window of time, and CPU."""
    seconds = change.at
    used = windows_used(change, limits) * window_s / seconds
    return (
        f"phase {phase}: {records:>5,} records {seconds:5.1f} s {records / seconds:6.1f}/s, "
        f"{change.admitted:5,.0f} requests {change.admitted / seconds:5.1f}/s, "
        f"{change.throttled:3.0f} 429s, budget used {used:4.0%}; CPU client "
        f"{change.cpu_client_s / seconds:3.0%}, emulator {change.cpu_emulator_s / seconds:3.0%}"
    )


def limits_of(args: argparse.Namespace) -> Limits:
    """The documented limits with budgets scaled by ``--budget`` and the modelled costs."""
    return Limits(
        max_requests=round(DOCUMENTED.max_requests * args.budget),
        max_execution_ms=round(DOCUMENTED.max_execution_ms * args.budget),
        base_cost_ms=args.base_cost_ms,
        per_record_cost_ms=args.record_cost_ms,
    )


# -- figures ----------------------------------------------------------------------------------


def maximum(outcome: Outcome, limits: Limits, window_s: float) -> tuple[float, str]:
    """The most records/s the limits allow at this writer's per-record costs, and which binds."""
    by_requests = outcome.admitted / limits.max_requests
    by_time = outcome.execution_ms / limits.max_execution_ms
    windows = max(by_requests, by_time)
    binding = "request count" if by_requests >= by_time else "execution time"
    return (outcome.records / windows / window_s if windows else float("inf")), binding


def report(outcome: Outcome, limits: Limits, window_s: float) -> float:
    """Print one writer's block; return its records/s."""
    rate = outcome.records / outcome.seconds
    most, binding = maximum(outcome, limits, window_s)
    print(f"{outcome.name}")
    print(
        f"  records written {outcome.records:,}, failed {outcome.failed}, "
        f"{outcome.seconds:.1f} s, {rate:,.1f} records/s"
    )
    print(
        f"  requests {outcome.admitted:,.0f} admitted ({outcome.admitted / outcome.seconds:,.1f}/s,"
        f" {outcome.records / max(outcome.admitted, 1):.2f} records each), "
        f"{outcome.throttled:,.0f} 429s (client saw {outcome.client_429}), "
        f"execution {outcome.execution_ms / 1000:,.1f} s modelled"
    )
    used = max(
        outcome.admitted / limits.max_requests, outcome.execution_ms / limits.max_execution_ms
    )
    fastest = (math.ceil(used) - 1) * window_s
    strict = f"{fastest / outcome.seconds:.0%}" if fastest else "n/a (under one window)"
    print(
        f"  maximum {most:,.1f} records/s ({binding} binds): share {rate / most:.0%}; "
        f"strict share {strict} ({used:.2f} windows of budget, no client under {fastest:g} s)"
    )
    print(
        f"  CPU: client {outcome.cpu_client_s:.1f} s, emulator {outcome.cpu_emulator_s:.1f} s "
        f"(of {outcome.seconds:.1f} s wall)"
    )
    for line in outcome.phase_lines:
        print(f"  {line}")
    for note in outcome.notes:
        print(f"  {note}")
    for error in outcome.errors[:5]:
        print(f"  failed: {error}")
    return rate


def main() -> None:
    """Build the run once, write it with crmledger and with the naive baseline, print both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400, help="size of the export")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--phases", default="all", help='"all" or e.g. "5,6"')
    parser.add_argument("--window-s", type=float, default=15.0, help="real seconds per window")
    parser.add_argument("--budget", type=float, default=1 / 6, help="share of 6,000 req/20 min")
    parser.add_argument("--base-cost-ms", type=float, default=DOCUMENTED.base_cost_ms)
    parser.add_argument("--record-cost-ms", type=float, default=DOCUMENTED.per_record_cost_ms)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="crmledger's writer threads")
    parser.add_argument(
        "--rate-growth",
        type=float,
        default=None,
        help="ThrottleSettings.rate_growth_per_s (default: 0.02/s compounded like the window)",
    )
    parser.add_argument(
        "--throttle-per-phase", action="store_true", help="a new Throttle for every phase"
    )
    parser.add_argument("--baseline-workers", type=int, default=16)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    phases = list(range(1, 9)) if args.phases == "all" else [int(p) for p in args.phases.split(",")]
    limits = limits_of(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    print(
        f"{os.cpu_count()} cores, load average {load_before[0]:.2f} "
        f"{load_before[1]:.2f} {load_before[2]:.2f} before"
    )
    directory = Path(tempfile.mkdtemp(prefix="crmledger-write-bench-"))
    try:
        ledger, owners = migrate_export(directory, args.customers, args.seed)
        print(
            f"{args.customers} customers, phases {args.phases}; limits per {args.window_s:g} s "
            f"window: {limits.max_requests:,} requests, {limits.max_execution_ms:,} ms execution "
            f"({limits.base_cost_ms:g} ms per request + {limits.per_record_cost_ms:g} ms per "
            f"record), {limits.max_concurrent} concurrent, dop hint {limits.dop_hint}; "
            f"prepared in {time.perf_counter() - started:.0f} s"
        )
        ours = run("crmledger", write_crmledger, ledger, owners, phases, args, directory)
        ours_rate = report(ours, limits, args.window_s)
        if not args.skip_baseline:
            theirs = run("naive", write_naive, ledger, owners, phases, args, directory)
            theirs_rate = report(theirs, limits, args.window_s)
            same = "same rows" if ours.digest == theirs.digest else "DIFFERENT rows"
            print(f"crmledger / naive baseline: {ours_rate / theirs_rate:.1f}x ({same})")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    load_after = os.getloadavg()
    print(
        f"load average {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
