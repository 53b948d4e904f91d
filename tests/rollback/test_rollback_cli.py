"""``crmledger rollback`` as an operator runs it: killed midway and run again, and --dry-run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.event_types import DestinationDeleted, DestinationRestored, RollbackPlanned
from tests.rollback.conftest import RUN, Migrated


def _deleted(ledger: Path) -> int:
    with sqlite3.connect(ledger, timeout=10) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM events WHERE type = ?", (DestinationDeleted.event_type,)
        ).fetchone()
    return int(row[0])


def _rollback(migrated: Migrated, cwd: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "rollback", "--run", RUN, *options],
        env={**os.environ, **migrated.environment()},
        cwd=cwd,
        stdout=(cwd / "rollback.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_rollback_killed_midway_completes_when_run_again_with_the_same_digest(
    migrated: Migrated, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    first = _rollback(migrated, tmp_path, "--batch-size", "2")
    deadline = time.monotonic() + 120
    while _deleted(ledger) < 40 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _deleted(ledger)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "rollback.log").read_text()
    assert killed_at > 0
    assert migrated.digest() != migrated.baseline.digest_before

    second = _rollback(migrated, tmp_path)
    assert second.wait(timeout=300) == 0, (tmp_path / "rollback.log").read_text()

    assert migrated.digest() == migrated.baseline.digest_before
    events = [s.event for s in migrated.log.read() if s.event.run_id == RUN]
    undone = [
        (e.payload["target_table"], e.payload["target_id"])
        for e in events
        if e.type in (DestinationDeleted.event_type, DestinationRestored.event_type)
    ]
    assert len(undone) == len(set(undone)) > killed_at
    plans = [e for e in events if e.type == RollbackPlanned.event_type]
    assert len(plans) == 1  # the second call resumed the first plan
    third = _rollback(migrated, tmp_path)
    assert third.wait(timeout=300) == 0
    assert len([s for s in migrated.log.read() if s.event.run_id == RUN]) == len(events)


def test_a_dry_run_prints_the_plan_and_appends_nothing(
    migrated: Migrated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in migrated.environment().items():
        monkeypatch.setenv(name, value)
    end, digest = migrated.log.end_position(), migrated.digest()

    result = CliRunner().invoke(app, ["rollback", "--run", RUN, "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "rollback plan: run rb" in result.output
    assert "restore" in result.output
    assert "delete" in result.output
    assert "opportunityclose" in result.output
    assert "dry run: nothing was changed" in result.output
    assert migrated.log.end_position() == end
    assert migrated.digest() == digest


def test_a_refused_phase_rollback_exits_1_and_names_the_cure(
    migrated: Migrated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in migrated.environment().items():
        monkeypatch.setenv(name, value)
    end = migrated.log.end_position()

    result = CliRunner().invoke(app, ["rollback", "--run", RUN, "--phase", "6"])

    assert result.exit_code == 1
    assert "--cascade" in result.output
    assert migrated.log.end_position() == end
