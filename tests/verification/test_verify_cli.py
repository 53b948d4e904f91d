"""``crmledger verify`` on the command line, against the folder's emulator."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consumers.dataverse.client import DataverseClient
from dataverse_emulator.server import RunningEmulator
from ledger.cli import app
from ledger.events import Topic
from ledger.log import open_log
from tests.dataverse.conftest import environment_for
from tests.verification.conftest import RUN, decided, written


@pytest.fixture
def cli_env(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """CRMLEDGER_* variables for the emulator, run where no crmledger.toml is."""
    monkeypatch.chdir(tmp_path)
    return environment_for(emulator, tmp_path)


def test_verify_command_checks_a_phase_and_lists_differing_columns(
    client: DataverseClient, cli_env: dict[str, str], tmp_path: Path
) -> None:
    same, changed = str(uuid.uuid4()), str(uuid.uuid4())
    client.post("accounts", {"accountid": same, "name": "Gleich"})
    client.post("accounts", {"accountid": changed, "name": "Anders"})
    with open_log(cli_env["CRMLEDGER_LOG_URL"]) as log:
        for key, target, name in (("Kunden:1", same, "Gleich"), ("Kunden:2", changed, "Soll")):
            log.append(
                [
                    decided(key, 1, "account", target, {"name": name}),
                    written(key, 1, "account", target),
                ]
            )

    result = CliRunner().invoke(app, ["verify", "--run", RUN, "--phase", "1"], env=cli_env)

    assert result.exit_code == 0, result.output
    assert "2 records checked" in result.output
    assert "1 verified" in result.output
    assert "1 mismatched" in result.output
    assert "name 1" in result.output
    with open_log(cli_env["CRMLEDGER_LOG_URL"]) as log:
        types = sorted(s.event.type for s in log.read([Topic.WRITES]))
    assert types == ["DestinationWritten", "DestinationWritten", "FieldMismatch", "RecordVerified"]


def test_verify_command_without_dataverse_settings_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("CRMLEDGER_")]:
        monkeypatch.delenv(name)
    env = {"CRMLEDGER_LOG_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}

    result = CliRunner().invoke(app, ["verify", "--phase", "1"], env=env)

    assert result.exit_code == 1
    assert "missing settings: dataverse_url" in result.output
    assert "Traceback" not in result.output
