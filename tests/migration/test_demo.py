"""``crmledger demo`` on a machine with nothing but Python: every phase passes its gate."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ledger.event_types import PhaseReconciled
from ledger.log import open_log


def test_the_demo_migrates_every_phase_through_its_gate_in_a_fresh_directory(
    tmp_path: Path,
) -> None:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("CRMLEDGER_")
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ledger", "demo", "--customers", "100"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print(f"crmledger demo --customers 100: {seconds:.1f} s")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "FAILED" not in result.stdout
    assert "the emulator holds" in result.stdout
    assert (tmp_path / ".crmledger" / "emulator.db").exists()
    assert (tmp_path / ".crmledger" / "tls").is_dir()
    with open_log(f"sqlite:///{tmp_path / '.crmledger' / 'ledger.db'}") as log:
        verdicts = {
            stored.event.phase: stored.event.payload["verdict"]
            for stored in log.read()
            if stored.event.type == PhaseReconciled.event_type
        }
    assert verdicts == {str(phase): "passed" for phase in range(1, 9)}
