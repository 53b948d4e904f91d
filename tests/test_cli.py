"""The crmledger command line, run as a user runs it: a subprocess per command."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import IO

import pytest

from ledger.events import Event
from ledger.sqlite_log import SqliteEventLog
from ledger.synthetic import synthetic_run


def crmledger(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``crmledger ARGS`` in ``workdir`` with only the given CRMLEDGER_* settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMLEDGER_")}
    environment |= {"COLUMNS": "200"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def counts_table(output: str) -> str:
    """The printed counts table, without the timing line."""
    return "\n".join(line for line in output.splitlines() if not line.startswith("applied "))


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = crmledger(tmp_path, "--help")

    assert result.returncode == 0
    for command in ("demo", "log", "projections", "config"):
        assert command in result.stdout
    assert "tail" in crmledger(tmp_path, "log", "--help").stdout
    assert "synthetic" in crmledger(tmp_path, "log", "--help").stdout
    assert "rebuild" in crmledger(tmp_path, "projections", "--help").stdout


def test_version_is_printed(tmp_path: Path) -> None:
    result = crmledger(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("crmledger 0.")


def test_rebuilding_a_log_of_200000_events_gives_identical_counts_twice(tmp_path: Path) -> None:
    demo = crmledger(tmp_path, "log", "synthetic", "--events", "200000")
    assert demo.returncode == 0, demo.stderr

    first = crmledger(tmp_path, "projections", "rebuild")
    second = crmledger(tmp_path, "projections", "rebuild")

    assert first.returncode == second.returncode == 0
    assert counts_table(first.stdout) == counts_table(second.stdout) == counts_table(demo.stdout)
    assert "applied 199,997 events" in first.stdout
    assert "199,997 events counted" in second.stdout


def test_the_demo_migrates_a_work4all_export_and_a_second_run_appends_nothing(
    tmp_path: Path,
) -> None:
    result = crmledger(tmp_path, "demo", "--customers", "50")
    first = crmledger(tmp_path, "log", "tail", "-n", "0").stdout.splitlines()
    again = crmledger(tmp_path, "demo", "--customers", "50")
    events = crmledger(tmp_path, "log", "tail", "-n", "0").stdout.splitlines()

    assert result.returncode == again.returncode == 0, result.stderr
    assert "the emulator holds" in result.stdout
    assert (tmp_path / ".crmledger" / "demo-export" / "work4all.db").exists()
    recorded = [Event.from_json(line) for line in events]
    assert len(events) == len(first)
    assert {"SourceRecordExtracted", "DestinationWritten", "PhaseReconciled"} <= {
        event.type for event in recorded
    }
    assert len({event.event_id for event in recorded}) == len(recorded)
    assert any(event.key.startswith("Kunden:") for event in recorded)


def test_log_tail_prints_one_json_event_per_line(tmp_path: Path) -> None:
    crmledger(tmp_path, "log", "synthetic", "--events", "100")

    result = crmledger(tmp_path, "log", "tail", "-n", "5")
    lines = result.stdout.splitlines()

    assert result.returncode == 0
    assert len(lines) == 5
    assert all(Event.from_json(line).run_id == "demo" for line in lines)
    everything = crmledger(tmp_path, "log", "tail", "-n", "0").stdout.splitlines()
    assert len(everything) == 97
    assert lines == everything[-5:]


def _read_lines(stream: IO[str], count: int, timeout: float) -> list[str]:
    """``count`` lines from ``stream``, failing after ``timeout`` seconds instead of hanging."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(stream.readline()) for _ in range(count)], daemon=True
    ).start()
    return [lines.get(timeout=timeout) for _ in range(count)]


def test_log_tail_follow_prints_events_appended_later(tmp_path: Path) -> None:
    log_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    earlier = list(synthetic_run("earlier", 20))
    later = list(synthetic_run("later", 20))
    with SqliteEventLog(log_url) as log:
        log.append(earlier)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMLEDGER_")}
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger", "log", "tail", "-n", "0", "--follow", "--interval", "0.1"],
        cwd=tmp_path,
        env=environment | {"CRMLEDGER_LOG_URL": log_url},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        # Once the history is printed, the follower is following: what comes next is new.
        history = _read_lines(follower.stdout, len(earlier), timeout=60)
        with SqliteEventLog(log_url) as log:
            log.append(later)
        followed = _read_lines(follower.stdout, len(later), timeout=60)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert [json.loads(line)["event_id"] for line in history] == [str(e.event_id) for e in earlier]
    assert sorted(json.loads(line)["event_id"] for line in followed) == sorted(
        str(e.event_id) for e in later
    )


def test_a_bad_log_url_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    result = crmledger(tmp_path, "log", "tail", env={"CRMLEDGER_LOG_URL": "ftp://example/x"})

    assert result.returncode == 2
    assert "log_url must start with sqlite:/// or kafka://" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_broken_crmledger_toml_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "crmledger.toml").write_text('log_url = "sqlite:///x.db\n')

    result = crmledger(tmp_path, "config", "show")

    assert result.returncode == 2
    assert "crmledger.toml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_config_show_masks_the_client_secret(tmp_path: Path) -> None:
    result = crmledger(tmp_path, "config", "show", env={"CRMLEDGER_CLIENT_SECRET": "hunter2-xyz"})

    assert result.returncode == 0
    assert "hunter2-xyz" not in result.stdout + result.stderr
    assert "client_secret = '**********'" in result.stdout


@pytest.mark.kafka
@pytest.mark.postgres
def test_the_demo_runs_on_kafka_and_postgresql(
    tmp_path: Path, kafka_bootstrap: str, postgres_db_url: str
) -> None:
    env = {
        "CRMLEDGER_LOG_URL": f"kafka://{kafka_bootstrap}?prefix=cli-{uuid.uuid4().hex[:8]}",
        "CRMLEDGER_DB_URL": postgres_db_url,
    }
    demo = crmledger(tmp_path, "log", "synthetic", "--events", "5000", env=env)
    rebuilt = crmledger(tmp_path, "projections", "rebuild", env=env)
    tail = crmledger(tmp_path, "log", "tail", "-n", "0", env=env)

    assert demo.returncode == rebuilt.returncode == tail.returncode == 0, demo.stderr
    assert "applied 4,997 events" in demo.stdout
    assert counts_table(rebuilt.stdout) == counts_table(demo.stdout)
    assert len(tail.stdout.splitlines()) == 4997
