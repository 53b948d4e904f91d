"""The extraction producer: one SourceRecordExtracted event per record, idempotent per run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger.event_types import SourceRecordExtracted
from ledger.sqlite_log import SqliteEventLog
from producers.extract import extract
from producers.work4all.readers import open_export


@pytest.fixture(scope="module", params=["sql", "csv", "xlsx"])
def export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    subprocess.run(
        [sys.executable, "-m", "ledger", "generate", "--out", str(out), "--customers", "40",
         "--format", request.param, "--seed", "7"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out / {"sql": "work4all.db", "csv": "", "xlsx": "work4all.xlsx"}[request.param]


def _rows(location: Path) -> dict[str, int]:
    export = open_export(location)
    try:
        return {table: sum(1 for _ in export.rows(table)) for table in export.tables()}
    finally:
        export.close()


def test_every_record_becomes_one_event_and_a_second_run_appends_nothing(
    export: Path, tmp_path: Path
) -> None:
    with SqliteEventLog(f"sqlite:///{tmp_path / 'ledger.db'}") as log:
        summary = extract(export, log, run_id="r1")
        first = [stored.event for stored in log.read()]
        again = extract(export, log, run_id="r1")
        second = [stored.event for stored in log.read()]

    rows = _rows(export)
    assert summary.records == {table: n for table, n in rows.items() if table in summary.records}
    records = [event for event in first if event.type == "SourceRecordExtracted"]
    registered = [event for event in first if event.type == "ExportRegistered"]
    assert len(records) == summary.total == again.total
    assert len(registered) == 1
    assert len(first) == len(records) + 1
    assert registered[0].payload["tables"] == summary.records
    assert second == first
    assert len({event.event_id for event in first}) == len(first)


def test_an_extracted_event_holds_raw_and_normalised_values_and_their_hash(
    export: Path, tmp_path: Path
) -> None:
    with SqliteEventLog(f"sqlite:///{tmp_path / 'ledger.db'}") as log:
        extract(export, log, run_id="r1")
        kunden = [s.event for s in log.read() if s.event.key.startswith("Kunden:")]

    payload = kunden[0].typed()
    assert isinstance(payload, SourceRecordExtracted)
    assert payload.table == "Kunden"
    assert kunden[0].key == f"Kunden:{payload.source_key}"
    assert payload.normalised["Code"] == int(payload.source_key)
    assert payload.position is not None
    assert len(payload.content_hash) == 64
    assert payload.raw
