"""Crash safety (issue 6): a writer process killed with SIGKILL at random points of its phases and
restarted ends with exactly the rows of an uninterrupted writer, and one write event per record."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from consumers.write import write_phase
from ledger.event_types import DestinationWriteFailed, DestinationWritten, TransformDecided
from ledger.events import Topic
from tests.dataverse.conftest import StartEmulator, environment_for
from tests.writing.conftest import RUN, Migrated, target

PHASES = range(1, 9)
KILLS = {1: 1, 5: 2, 6: 1}
"""How many times the writer process of a phase is killed before it may finish; the other
phases are written in the test's process (as fast, and the kills are what is tested)."""
_WRITER = "import typer; from consumers.write_cli import write_command; typer.run(write_command)"
_OPTIONS = ("--batch-size", "25", "--workers", "2")
_OUTCOMES = {DestinationWritten.event_type, DestinationWriteFailed.event_type}


def _write_events(ledger: Path) -> int:
    with sqlite3.connect(ledger, timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE topic = 'writes'").fetchone()[0])


def _write_with_kills(
    phase: int, kills: int, ledger: Path, env: dict[str, str], cwd: Path, rng: random.Random
) -> int:
    """Run the writer of ``phase`` until it finishes, killing it ``kills`` times mid-phase
    (after a random number of new write events, and a random moment more); the kills made."""
    made = 0
    while True:
        before = _write_events(ledger)
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, *("--run", RUN, "--phase", str(phase)), *_OPTIONS],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if made < kills:
            threshold = before + rng.randint(1, 40)
            deadline = time.monotonic() + 60
            while writer.poll() is None and time.monotonic() < deadline:
                if _write_events(ledger) >= threshold:
                    time.sleep(rng.uniform(0, 0.03))
                    break
                time.sleep(0.005)
            if writer.poll() is None:
                writer.send_signal(signal.SIGKILL)
                writer.communicate()
                made += 1
                continue
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, (out.decode(), err.decode())
        return made


def test_a_writer_killed_at_random_points_ends_like_an_uninterrupted_one(
    start: StartEmulator, migrated: Migrated, tmp_path: Path
) -> None:
    rng = random.Random(6)
    calm_dir, killed_dir = tmp_path / "calm", tmp_path / "killed"
    calm_dir.mkdir()
    killed_dir.mkdir()
    with target(start, migrated, calm_dir) as calm:
        for phase in PHASES:
            write_phase(calm.log, calm.client, run_id=RUN, phase=phase)
        expected, expected_counts = calm.digest(), calm.inspect("counts")

    with target(start, migrated, killed_dir) as killed:
        env = {
            **os.environ,
            **environment_for(killed.emulator, killed_dir),
            "CRMLEDGER_LOG_URL": killed.settings.log_url,
        }
        ledger = Path(killed.settings.log_url.removeprefix("sqlite:///"))
        made = 0
        for phase in PHASES:
            if phase in KILLS:
                made += _write_with_kills(phase, KILLS[phase], ledger, env, killed_dir, rng)
            else:
                write_phase(killed.log, killed.client, run_id=RUN, phase=phase)
        digest, counts = killed.digest(), killed.inspect("counts")
        decided = {
            s.event.event_id
            for s in killed.log.read([Topic.DECISIONS])
            if s.event.run_id == RUN and s.event.type == TransformDecided.event_type
        }
        per_decision = Counter(
            s.event.causation_id
            for s in killed.log.read([Topic.WRITES])
            if s.event.run_id == RUN and s.event.type in _OUTCOMES
        )

    assert made == sum(KILLS.values())
    assert counts == expected_counts
    assert digest == expected
    assert set(per_decision) == decided
    assert set(per_decision.values()) == {1}
