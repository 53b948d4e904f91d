"""After `crmledger demo`, `rollback --demo` restores the emulator; `reconcile --demo` reads it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ledger.log import open_log


def _crmledger(workdir: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("CRMLEDGER_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        cwd=workdir, env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def _digest(output: str, label: str) -> str:
    found = re.search(label + r": ([0-9a-f]{64})", output)
    assert found is not None, output[-2000:]
    return found.group(1)


def _events(workdir: Path) -> int:
    with open_log(f"sqlite:///{workdir / '.crmledger' / 'ledger.db'}") as log:
        return sum(1 for _ in log.read())


def test_rollback_of_the_demo_run_restores_the_emulator_digest_of_before_the_migration(
    tmp_path: Path,
) -> None:
    demo = _crmledger(tmp_path, "demo", "--customers", "60").stdout
    before = _digest(demo, "emulator content digest before the migration")
    after = _digest(demo, "emulator content digest after the migration")
    assert after != before
    command = re.search(r"to undo: crmledger (rollback --run (\S+) --demo)", demo)
    assert command is not None, demo[-2000:]

    report = json.loads(_crmledger(tmp_path, "reconcile", "--demo", "--json").stdout)
    assert report["run_id"] == command.group(2)
    assert report["spot_check"]["dataverse"] == "read"
    assert report["spot_check"]["records"]

    rolled_back = _crmledger(tmp_path, *command.group(1).split()).stdout
    assert _digest(rolled_back, "demo emulator content digest") == before

    appended = _events(tmp_path)
    again = _crmledger(tmp_path, *command.group(1).split()).stdout
    assert "nothing left to roll back" in again
    assert _events(tmp_path) == appended
    assert _digest(again, "demo emulator content digest") == before


def test_demo_option_without_a_demo_asks_for_one(tmp_path: Path) -> None:
    result = _crmledger(tmp_path, "rollback", "--run", "demo", "--demo", code=1)
    assert "run crmledger demo first" in result.stderr
