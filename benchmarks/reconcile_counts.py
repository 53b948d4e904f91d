"""Reconciliation counting on a generated run: incremental tallies against per-batch recounts.

    python benchmarks/reconcile_counts.py [--records 20000] [--batch 2000]

A run of N records over four tables and phases (each record extracted, decided, written and
verified: 4 events) is appended to an embedded (SQLite) log. Three figures, in events/s:

- the record_state projection as it is: each batch adds what its records' tallies changed by to
  ``reconciliation_tallies`` and assembles the run's counts from those sums;
- the same projection with the approach it replaced: after each batch, every phase of the run
  is counted again with GROUP BY queries over all of the run's ``record_state`` rows, so a
  batch costs what the run holds and a pass grows with the square of the run;
- the pure rule over the whole log (:func:`projections.counting.run_counts`, what a gate does).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Connection, delete, func, or_, select  # noqa: E402

from ledger.event_types import (  # noqa: E402
    DestinationWritten,
    PhaseStarted,
    RecordVerified,
    SourceRecordExtracted,
    TransformDecided,
)
from ledger.events import Event  # noqa: E402
from ledger.log import open_log  # noqa: E402
from projections.counting import COUNT_NAMES, run_counts  # noqa: E402
from projections.db import create_db_engine, upgrade  # noqa: E402
from projections.records import RecordId, RecordStates, Share  # noqa: E402
from projections.runner import ProjectionRunner  # noqa: E402
from projections.tables import reconciliation_counts, record_state  # noqa: E402

RUN = "bench"
TABLES = {"Kunden": (1, "account"), "KAnsprechp": (2, "contact"),
          "Artikel": (3, "product"), "Telefonate": (6, "phonecall")}  # fmt: skip


def _run(records: int) -> Iterator[Event]:
    for table, (phase, _target) in TABLES.items():
        payload = PhaseStarted(phase_number=phase, objects=[table])
        yield Event.create(payload, run_id=RUN, key=f"phase:{phase}", cause="s", phase=str(phase))
    names = list(TABLES)
    for number in range(records):
        table = names[number % len(names)]
        phase, target = TABLES[table]
        key = f"{table}:{number}"
        row_id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        yield Event.create(
            SourceRecordExtracted(table=table, source_key=str(number), raw={}, normalised={},
                                  content_hash=key),
            run_id=RUN, key=key, cause=key, phase="extract",
        )  # fmt: skip
        decision = Event.create(
            TransformDecided(target_table=target, target_id=row_id, payload={"name": key}),
            run_id=RUN, key=key, cause="d", phase=str(phase),
        )  # fmt: skip
        write = Event.create(
            DestinationWritten(target_table=target, target_id=row_id, op="create"),
            run_id=RUN, key=key, cause="w", phase=str(phase), causation_id=decision.event_id,
        )  # fmt: skip
        check = Event.create(
            RecordVerified(target_table=target, target_id=row_id),
            run_id=RUN, key=key, cause="v", phase=str(phase), causation_id=write.event_id,
        )  # fmt: skip
        yield from (decision, write, check)


class _PerBatchRecount(RecordStates):
    """The projection with the counting it replaced: every phase recounted after each batch."""

    def count(
        self,
        connection: Connection,
        shares: Mapping[RecordId, tuple[Share, Share]],
        listed: set[str],
    ) -> None:
        """Count every phase of the touched runs again from all of their ``record_state`` rows."""
        rs = record_state.c
        for run_id in sorted({run for run, _key in shares} | listed):
            phases = connection.execute(
                select(rs.decision_phase)
                .where(rs.run_id == run_id, rs.decision_phase.is_not(None))
                .distinct()
            )
            for (phase,) in list(phases):
                _recount_phase(connection, run_id, int(phase))


def _recount_phase(connection: Connection, run_id: str, phase: int) -> None:
    rs = record_state.c
    of_run = rs.run_id == run_id
    counts: dict[str, dict[str, int]] = {}

    def row(table: str) -> dict[str, int]:
        return counts.setdefault(table, dict.fromkeys(COUNT_NAMES, 0))

    extracted = (
        select(rs.source_table, func.count())
        .where(of_run, rs.extracted_at.is_not(None),
               or_(rs.decision_phase.is_(None), rs.decision_phase == phase))
        .group_by(rs.source_table)
    )  # fmt: skip
    for table, n in connection.execute(extracted):
        row(str(table))["extracted"] += int(n)
    decided = (
        select(rs.source_table, rs.decision, rs.excluded, func.count())
        .where(of_run, rs.decision_phase == phase)
        .group_by(rs.source_table, rs.decision, rs.excluded)
    )
    for table, decision, excluded, n in connection.execute(decided):
        row(str(table))["decided" if decision == "decided" else "rejected"] += int(n)
        row(str(table))["excluded"] += int(n) if excluded else 0
    written = (
        select(rs.source_table, rs.write_status, rs.check_status, func.count())
        .where(of_run, rs.write_phase == phase, rs.write_status.is_not(None))
        .group_by(rs.source_table, rs.write_status, rs.check_status)
    )
    for table, status, check, n in connection.execute(written):
        row(str(table))[str(status)] += int(n)
        if status == "written" and check is not None:
            row(str(table))[str(check)] += int(n)
    rc = reconciliation_counts.c
    connection.execute(delete(reconciliation_counts).where(rc.run_id == run_id, rc.phase == phase))
    if counts:
        connection.execute(
            reconciliation_counts.insert(),
            [{"run_id": run_id, "phase": phase, "source_table": t, **c} for t, c in counts.items()],
        )


def _project(log_url: str, db_url: str, projection: RecordStates, batch: int) -> float:
    engine = create_db_engine(db_url)
    upgrade(engine)
    with open_log(log_url) as log:
        started = time.perf_counter()
        ProjectionRunner(log, engine, [projection], batch_size=batch).run()
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def main() -> None:
    """Generate the run, time the three ways of counting it, print events/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000, help="projection batch size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        log_url = f"sqlite:///{workdir / 'ledger.db'}"
        events = list(_run(args.records))
        with open_log(log_url) as log:
            for start in range(0, len(events), 5000):
                log.append(events[start : start + 5000])
        new = _project(log_url, f"sqlite:///{workdir / 'new.db'}", RecordStates(), args.batch)
        old = _project(log_url, f"sqlite:///{workdir / 'old.db'}", _PerBatchRecount(), args.batch)
        with open_log(log_url) as log:
            started = time.perf_counter()
            counted = run_counts((stored.event for stored in log.read()), RUN)
            pure = time.perf_counter() - started
    assert sum(row["written"] for p in counted.values() for row in p.values()) == args.records
    n = len(events)
    print(f"{args.records:,} records, {n:,} events, projection batches of {args.batch:,}")
    print(f"  projection, incremental tallies : {n / new:>10,.0f} events/s ({new:.2f} s)")
    print(f"  projection, per-batch recount   : {n / old:>10,.0f} events/s ({old:.2f} s)")
    print(f"  ratio (incremental / recount)   : {old / new:>10.2f}x")
    print(f"  pure rule over the whole log    : {n / pure:>10,.0f} events/s ({pure:.2f} s)")


if __name__ == "__main__":
    main()
