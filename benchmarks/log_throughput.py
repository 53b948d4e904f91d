"""Append, read and project N events on each event log backend; print events/s and peak memory.

    python benchmarks/log_throughput.py [--events 200000] [--backend sqlite|kafka|both]
                                        [--kafka HOST:PORT] [--postgres URL]

SQLite log → SQLite projections (the embedded deployment) and Kafka log → PostgreSQL projections
(the distributed one). Without --kafka / --postgres, local services are started as the tests
start them. Each backend runs in a child process so its peak RSS is its own. Every figure comes
with a baseline measured in the same child: the backend's client writing and reading the same
pre-encoded bytes with no envelope, partitioning or decoding, so the ratio is crmledger's overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.events import Event  # noqa: E402
from ledger.log import EventLog, open_log  # noqa: E402
from ledger.synthetic import synthetic_run  # noqa: E402
from projections.db import create_db_engine, upgrade  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402

BATCH = 5000


def _batches(events: int, run_id: str) -> Iterator[list[Event]]:
    stream = synthetic_run(run_id, events)
    while batch := list(islice(stream, BATCH)):
        yield batch


def _append(log: EventLog, events: int, run_id: str) -> tuple[int, float]:
    # Events are built batch by batch outside the clock: only the log's work is timed.
    appended, seconds = 0, 0.0
    for batch in _batches(events, run_id):
        started = time.perf_counter()
        log.append(batch)
        seconds += time.perf_counter() - started
        appended += len(batch)
    return appended, seconds


def _baseline_sqlite(encoded: list[tuple[str, bytes]], workdir: Path) -> tuple[float, float]:
    connection = sqlite3.connect(workdir / "baseline.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE raw (seq INTEGER PRIMARY KEY, key TEXT, body BLOB)")
    started = time.perf_counter()
    for start in range(0, len(encoded), BATCH):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO raw (key, body) VALUES (?, ?)", encoded[start : start + BATCH]
        )
        connection.execute("COMMIT")
    write = time.perf_counter() - started
    started = time.perf_counter()
    for (body,) in connection.execute("SELECT body FROM raw ORDER BY seq"):
        json.loads(body)
    read = time.perf_counter() - started
    connection.close()
    return write, read


def _baseline_kafka(encoded: list[tuple[str, bytes]], bootstrap: str) -> tuple[float, float]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient

    topic = f"baseline-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics({topic: {"num_partitions": 6, "replication_factor": 1}})
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=100,
        batch_size=512 * 1024,
    )
    started = time.perf_counter()
    for key, body in encoded:
        producer.send(topic, key=key.encode(), value=body)
    producer.flush()
    write = time.perf_counter() - started
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    started = time.perf_counter()
    seen = 0
    while seen < len(encoded):
        for records in consumer.poll(timeout_ms=1000, max_records=5000).values():
            for record in records:
                json.loads(record.value)
            seen += sum(1 for _ in records)
    read = time.perf_counter() - started
    consumer.close()
    return write, read


def measure(
    backend: str, events: int, log_url: str, db_url: str, workdir: Path
) -> dict[str, float]:
    """Run one backend's benchmark in this process and return its figures."""
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    with open_log(log_url) as log:
        appended, append_s = _append(log, events, run_id)
        started = time.perf_counter()
        read = sum(1 for _ in log.read())
        read_s = time.perf_counter() - started
        engine = create_db_engine(db_url)
        upgrade(engine)
        started = time.perf_counter()
        projected = ProjectionRunner(log, engine).run()
        project_s = time.perf_counter() - started
        engine.dispose()
    assert read == appended == projected, (read, appended, projected)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    encoded = [
        (event.key, event.to_json().encode())
        for batch in _batches(events, "baseline")
        for event in batch
    ]
    if backend == "sqlite":
        base_write, base_read = _baseline_sqlite(encoded, workdir)
    else:
        base_write, base_read = _baseline_kafka(
            encoded, log_url.removeprefix("kafka://").split("?")[0]
        )
    return {
        "events": appended,
        "append_per_s": appended / append_s,
        "read_per_s": read / read_s,
        "project_per_s": projected / project_s,
        "baseline_write_per_s": len(encoded) / base_write,
        "baseline_read_per_s": len(encoded) / base_read,
        "peak_rss_mib_before_baseline": peak_mib,
    }


def _child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        if args.backend == "sqlite":
            log_url = f"sqlite:///{workdir / 'ledger.db'}"
            db_url = f"sqlite:///{workdir / 'projections.db'}"
        else:
            log_url = f"kafka://{args.kafka}?prefix=bench-{uuid.uuid4().hex[:8]}"
            db_url = args.postgres
        print(json.dumps(measure(args.backend, args.events, log_url, db_url, workdir)))


def _report(backend: str, figures: dict[str, float]) -> None:
    print(f"\n{backend}: {int(figures['events']):,} events")
    for stage, baseline in (("append", "baseline_write"), ("read", "baseline_read")):
        ours, raw = figures[f"{stage}_per_s"], figures[f"{baseline}_per_s"]
        shown = f"{ours:>10,.0f} events/s  raw client {raw:>10,.0f}/s"
        ratio = ours / raw
        print(f"  {stage:<8} {shown}  ratio {ratio:.2f}")
    print(f"  project  {figures['project_per_s']:>10,.0f} events/s")
    print(f"  peak RSS {figures['peak_rss_mib_before_baseline']:>10,.0f} MiB (append+read+project)")


def main() -> None:
    """Parse arguments; run each backend in a child process and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "kafka", "both"], default="both")
    parser.add_argument("--kafka", help="bootstrap host:port; default: start a local broker")
    parser.add_argument("--postgres", help="SQLAlchemy URL; default: start a local server")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    backends = ["sqlite", "kafka"] if args.backend == "both" else [args.backend]
    with contextlib.ExitStack() as stack:
        if "kafka" in backends:
            from tests import services

            kafka = args.kafka or stack.enter_context(services.kafka_bootstrap())
            server = args.postgres or stack.enter_context(services.postgres_url())
            postgres = services.fresh_postgres_database(server, f"bench_{uuid.uuid4().hex[:8]}")
        for backend in backends:
            command = [sys.executable, __file__, "--child", "--backend", backend]
            command += ["--events", str(args.events)]
            if backend == "kafka":
                command += ["--kafka", kafka, "--postgres", postgres]
            child = subprocess.run(command, check=False, capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(f"{backend} benchmark failed:\n{child.stderr}")
            _report(backend, json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
