"""The transform stage on the distributed backend: a real Kafka broker holds the run.

Kafka keeps every appended record (it cannot drop a duplicate id as the SQLite log does), so
this is where "re-running appends nothing" is really tested.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from ledger.events import Topic
from ledger.log import open_log
from producers.extract import extract
from producers.mapping.default import default_map
from producers.mapping.gate import confirm
from producers.mapping.stage import transform_run
from producers.work4all.cli import ExportForm, generate

RUN = "kafka-run"


def test_transforming_a_run_on_kafka_decides_each_record_once_and_a_rerun_appends_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    generate(out=str(out), customers=40, form=ExportForm.SQL, seed=3, defects="default", quiet=True)
    url = f"kafka://{kafka_bootstrap}?prefix=stage-{uuid.uuid4().hex[:10]}"
    migration_map = default_map()
    with open_log(url, partitions=3) as log:
        extract(out / "work4all.db", log, run_id=RUN)
        confirm(log, migration_map, by="test")
        first = transform_run(log, migration_map, run_id=RUN, files=out)
        end = log.end_position([Topic.DECISIONS])
        again = transform_run(log, migration_map, run_id=RUN, files=out)
        assert log.end_position([Topic.DECISIONS]) == end
        decisions = Counter(
            stored.event.key for stored in log.read([Topic.DECISIONS]) if stored.event.run_id == RUN
        )
        extracted = {
            stored.event.key
            for stored in log.read([Topic.SOURCE])
            if stored.event.run_id == RUN and stored.event.type == "SourceRecordExtracted"
        }

    assert first.appended == first.records > 0
    assert again.appended == 0
    assert set(decisions.values()) == {1}
    mapped = {obj.primary_source for obj in migration_map.objects}
    assert {key for key in extracted if key.split(":")[0] in mapped} == set(decisions)
