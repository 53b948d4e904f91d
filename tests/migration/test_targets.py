"""``--target NAME`` picks a ``[targets.NAME]`` of crmledger.toml; secrets stay hidden."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.migration.conftest import CLIENT_ID, Target


def _crmledger(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("CRMLEDGER_")
    }
    return subprocess.run(
        [sys.executable, "-m", "ledger", *arguments],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _toml(target: Target) -> str:
    settings = target.settings
    return f"""
log_url = "{settings.log_url}"
db_url = "{settings.db_url}"
dataverse_url = "https://nowhere.invalid"

[targets.sandbox]
dataverse_url = "{settings.dataverse_url}"
authority_url = "{settings.authority_url}"
client_id = "{CLIENT_ID}"
client_secret = "{target.secret}"
dataverse_ca_file = "{settings.dataverse_ca_file}"
"""


def test_migrate_writes_to_the_named_target_and_never_prints_its_secret(
    embedded: Target, export: Path, tmp_path: Path
) -> None:
    (tmp_path / "crmledger.toml").write_text(_toml(embedded))

    result = _crmledger(tmp_path, "migrate", str(export), "--run", "e2e", "--phase", "1",
                        "--target", "sandbox")  # fmt: skip
    shown = _crmledger(tmp_path, "config", "show")

    assert result.returncode == 0, result.stderr[-2000:]
    assert embedded.counts()["account"] > 0
    assert shown.returncode == 0
    assert "targets.sandbox.client_secret = '**********'" in shown.stdout
    for output in (result.stdout, result.stderr, shown.stdout, shown.stderr):
        assert embedded.secret not in output


def test_an_unknown_target_is_one_clear_line(
    embedded: Target, export: Path, tmp_path: Path
) -> None:
    (tmp_path / "crmledger.toml").write_text(_toml(embedded))

    result = _crmledger(tmp_path, "migrate", str(export), "--target", "production")

    assert result.returncode == 2
    assert "no target 'production' in crmledger.toml ([targets.production]); known: sandbox" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
