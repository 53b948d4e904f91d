"""A phase that fails its gate stops the next one, unless an operator overrides it with a reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.event_types import PhaseStarted, TransformDecided
from ledger.log import open_log
from tests.migration.conftest import Target


def _migrate(
    target: Target, export: Path, cwd: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        **target.environment(),
        # Kunden holds injected duplicates: with no rejection allowed, phase 1 fails its gate.
        "CRMLEDGER_GATE_MAX_REJECTED_SHARE": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "ledger", "migrate", str(export), "--run", "e2e", *options],
        env=environment, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _written_phases(target: Target) -> set[str]:
    with open_log(target.settings.log_url) as log:
        return {
            str(stored.event.phase)
            for stored in log.read()
            if stored.event.type == "DestinationWritten"
        }


def test_a_failed_gate_stops_the_next_phase_until_an_override_is_recorded(
    embedded: Target, export: Path, tmp_path: Path
) -> None:
    first = _migrate(embedded, export, tmp_path, "--phase", "1")
    assert first.returncode == 1
    assert "phase 1 failed its gate" in first.stderr
    assert "Traceback" not in first.stderr + first.stdout

    refused = _migrate(embedded, export, tmp_path, "--phase", "2")
    assert refused.returncode == 1
    assert "phase 2 cannot start: the gate of phase 1 did not pass" in refused.stderr
    assert "--override-gate" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert _written_phases(embedded) == {"1"}

    reason = "duplicates checked with the sales team"
    overridden = _migrate(embedded, export, tmp_path, "--phase", "2", "--override-gate", reason)

    assert "Traceback" not in overridden.stderr + overridden.stdout
    assert f"phase 2 started by operator override: {reason}" in overridden.stdout
    assert _written_phases(embedded) == {"1", "2"}
    with open_log(embedded.settings.log_url) as log:
        starts = [
            PhaseStarted.model_validate(stored.event.payload)
            for stored in log.read()
            if stored.event.type == PhaseStarted.event_type
        ]
        decided_in_2 = any(
            stored.event.type == TransformDecided.event_type and stored.event.phase == "2"
            for stored in log.read()
        )
    assert decided_in_2
    assert [start.override_reason for start in starts if start.phase_number == 2] == [reason]
