"""Discovery finds exactly the defects the generator injected, and nothing in a clean export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from producers.discover import DiscoveryReport, discover
from producers.work4all.defects import Defect

CUSTOMERS = 300
SEED = 7
LOCATIONS = {"sql": "work4all.db", "csv": "", "xlsx": "work4all.xlsx"}


def _crmledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args], capture_output=True, text=True, check=False
    )


def _generate(root: Path, form: str, defects: str, customers: int = CUSTOMERS) -> Path:
    out = root / f"{form}-{defects}"
    result = _crmledger(
        "generate", "--out", str(out), "--customers", str(customers), "--format", form,
        "--seed", str(SEED), "--defects", defects,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module", params=sorted(LOCATIONS))
def defective(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DiscoveryReport, dict[str, Any]]:
    form: str = request.param
    out = _generate(tmp_path_factory.mktemp("discover"), form, "default")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return discover(str(out / LOCATIONS[form])), manifest


@pytest.mark.parametrize("defect", list(Defect), ids=str)
def test_discover_finds_every_injected_defect_with_the_manifests_keys(
    defective: tuple[DiscoveryReport, dict[str, Any]], defect: Defect
) -> None:
    report, manifest = defective
    expected = {(entry["table"], entry["Code"]) for entry in manifest["defects"][defect.value]}
    found = report.issues[defect.value].keys
    assert len(found) == len(set(found)), "an instance was counted twice"
    assert set(found) == expected


def test_discover_counts_equal_the_manifest_for_every_defect_class(
    defective: tuple[DiscoveryReport, dict[str, Any]],
) -> None:
    report, manifest = defective
    assert {d.value: report.issues[d.value].count for d in Defect} == {
        d.value: manifest["counts"][d.value] for d in Defect
    }


@pytest.mark.parametrize("form", sorted(LOCATIONS))
def test_a_clean_export_has_no_findings(tmp_path: Path, form: str) -> None:
    out = _generate(tmp_path, form, "none", customers=150)
    report = discover(str(out / LOCATIONS[form]))
    assert {name: issue.count for name, issue in report.issues.items() if issue.count} == {}
    assert {name: issue.count for name, issue in report.other_findings.items()} == {}
    assert report.reconciliation.disagreements == 0
    assert report.edition is not None
    assert report.edition.edition == "Sales Professional"
    assert "w4a_openitem" in report.edition.custom_tables
    assert {custom.label for custom in report.custom_fields} >= {"Bonität", "Newsletter"}


@pytest.fixture(scope="module")
def csv_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("cli"), "csv", "default", customers=50)


def test_cli_json_parses(csv_export: Path) -> None:
    result = _crmledger("discover", str(csv_export), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["issues"]["duplicate_customer"]["count"] > 0
    assert data["tables"][0]["records"] > 0


def test_cli_out_directory_gets_markdown_html_and_json(csv_export: Path, tmp_path: Path) -> None:
    result = _crmledger("discover", str(csv_export), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in (tmp_path / "report").iterdir())
    assert written == ["report.html", "report.json", "report.md"]
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html
    assert 'class="bar"' in html
    assert "# Migration scope" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")


def test_cli_garbage_export_exits_2_naming_the_file_without_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.xlsx"
    garbage.write_bytes(b"this is not a workbook")
    result = _crmledger("discover", str(garbage))
    assert result.returncode == 2
    assert "broken.xlsx" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
