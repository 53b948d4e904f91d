"""``crmledger audit``: projections rebuilt from the log are identical; the log tells the story."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from consumers.audit import record_history, run_history, verify_projections
from ledger.event_types import TransformDecided
from ledger.log import open_log
from projections.db import create_db_engine, upgrade
from projections.runner import ProjectionRunner
from tests.delta.conftest import Generations
from tests.delta.test_delta import _migrate
from tests.migration.conftest import target_for

RUN = "audit"


def test_projections_rebuilt_from_the_log_are_identical_to_the_live_ones(
    generations: Generations, tls_dir: Path, tmp_path: Path, db_url: str
) -> None:
    log_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with target_for(generations.first, tls_dir, log_url=log_url, db_url=db_url,
                    run_id=RUN) as target:  # fmt: skip
        _migrate(target, RUN)
    live = create_db_engine(db_url)
    upgrade(live)
    with open_log(log_url) as log:
        ProjectionRunner(log, live).run()
        report = verify_projections(log, db_url)
    print({name: counts for name, counts in report.tables.items()})
    assert report.identical, report.differences
    assert report.events_applied > 0
    assert all(live_rows == rebuilt for live_rows, rebuilt in report.tables.values())
    assert sum(rebuilt for _live, rebuilt in report.tables.values()) > 0

    # a projection row the log does not explain is found
    with live.begin() as connection:
        connection.execute(text("DELETE FROM event_counts WHERE type = 'RecordVerified'"))
    with open_log(log_url) as log:
        tampered = verify_projections(log, db_url)
    live.dispose()
    assert not tampered.identical
    assert [d.table for d in tampered.differences] == ["event_counts"]
    assert tampered.differences[0].only_rebuilt


def test_replay_tells_a_records_story_and_a_runs_phases(
    generations: Generations, tls_dir: Path, tmp_path: Path
) -> None:
    log_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with target_for(generations.first, tls_dir, log_url=log_url,
                    db_url=f"sqlite:///{tmp_path / 'p.db'}", run_id=RUN) as target:  # fmt: skip
        _migrate(target, RUN)
    with open_log(log_url) as log:
        decided = next(
            s.event for s in log.read() if s.event.type == TransformDecided.event_type
            and s.event.key.startswith("Kunden:")
        )  # fmt: skip
        history = record_history(log, decided.key)
        phases = run_history(log, RUN)
    types = [entry.type for entry in history]
    assert types[0] == "SourceRecordExtracted"
    assert "TransformDecided" in types
    assert "MappingConfirmed" in types  # who confirmed the map the decision was made under
    assert any("confirmed by tests" in entry.summary for entry in history)
    assert types.index("DestinationWritten") < types.index("RecordVerified")
    names = [activity.phase for activity in phases]
    assert names[0] in ("extract", "-")
    assert {"1", "2"} <= set(names)
    assert all(a.verdict == "passed" for a in phases if a.phase.isdigit() and a.verdict)
