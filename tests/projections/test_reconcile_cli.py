"""``crmledger reconcile`` after a real migration: counts as the gates count them, every
problem with its reason, charts, CSV files, and a spot check that reads Dataverse."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from consumers.reconcile import phase_counts
from ledger.cli import app
from ledger.log import open_log
from tests.projections.conftest import Migrated


@pytest.fixture
def cli_env(migrated: Migrated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Settings that reach the run's log and emulator, with projections of this test's own."""
    monkeypatch.chdir(tmp_path)  # no crmledger.toml of the working directory applies
    return migrated.target.environment() | {
        "CRMLEDGER_DB_URL": f"sqlite:///{tmp_path / 'projections.db'}"
    }


def _reconcile(env: dict[str, str], *options: str) -> Any:
    result = CliRunner().invoke(app, ["reconcile", "--run", "p1", *options], env=env)
    assert result.exit_code == 0, result.output
    return result


def test_reconcile_json_counts_equal_the_gates_counts(
    migrated: Migrated, cli_env: dict[str, str]
) -> None:
    report = json.loads(_reconcile(cli_env, "--json", "--spot-check", "0").stdout)

    with open_log(migrated.log_url) as log:
        for phase in report["phases"]:
            expected = phase_counts(log, run_id=migrated.run_id, phase=phase["phase"])
            assert phase["objects"] == expected
            assert phase["verdict"] == "passed"
    assert [phase["phase"] for phase in report["phases"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    rejected = sum(
        counts["rejected"] for phase in report["phases"] for counts in phase["objects"].values()
    )
    assert rejected > 0
    assert len({r["source_key"] for r in report["rejections"]}) == rejected
    assert all(r["reason"] for r in report["rejections"])
    assert report["failures"] == []


def test_spot_check_shows_what_dataverse_holds_beside_the_decision(
    cli_env: dict[str, str],
) -> None:
    report = json.loads(_reconcile(cli_env, "--json", "--spot-check", "5", "--seed", "7").stdout)
    again = json.loads(_reconcile(cli_env, "--json", "--spot-check", "5", "--seed", "7").stdout)

    spot = report["spot_check"]
    assert spot["dataverse"] == "read"
    assert len(spot["records"]) == 5
    assert [r["source_key"] for r in spot["records"]] == [
        r["source_key"] for r in again["spot_check"]["records"]
    ]
    for record in spot["records"]:
        assert record["source"], "the work4all values are shown"
        assert record["decided"], "the decided payload is shown"
        now = record["dataverse"]
        assert now is not None
        assert now.keys() >= {c for c in record["decided"] if "@" not in c}
        for column in ("name", "subject", "w4a_sourcekey"):
            if column in record["decided"]:
                assert now[column] == record["decided"][column]


def test_an_unreachable_dataverse_is_named_and_the_rest_still_printed(
    cli_env: dict[str, str],
) -> None:
    env = cli_env | {"CRMLEDGER_DATAVERSE_URL": "https://127.0.0.1:9"}

    result = _reconcile(env, "--spot-check", "2")

    assert "not reachable" in result.stdout
    assert "Kunden" in result.stdout
    assert "rejections:" in result.stdout


def test_html_report_has_its_charts_and_csv_files_hold_every_row(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    page, folder = tmp_path / "report.html", tmp_path / "csv"

    _reconcile(cli_env, "--html", str(page), "--csv", str(folder), "--spot-check", "3")
    report = json.loads(_reconcile(cli_env, "--json", "--spot-check", "0").stdout)

    text = page.read_text(encoding="utf-8")
    for chart in ("chart-phases", "chart-reasons", "chart-throughput"):
        assert f'<svg class="chart" id="{chart}"' in text
    assert "<script" not in text
    assert "<polyline" in text
    assert "Dataverse now" in text
    with (folder / "phases.csv").open(encoding="utf-8") as handle:
        phases = list(csv.DictReader(handle))
    assert len(phases) == sum(len(phase["objects"]) for phase in report["phases"])
    with (folder / "rejections.csv").open(encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(report["rejections"])
    for name in ("failures.csv", "mismatches.csv", "spot_check.csv"):
        assert (folder / name).is_file()
