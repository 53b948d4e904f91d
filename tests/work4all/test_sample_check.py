"""sample-check accepts a sound export and rejects one table by table, naming why."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

from producers.sample_check import reservoir_sample, sample_check
from producers.work4all.errors import ExportError
from producers.work4all.tables import TABLES

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(scope="module")
def sound_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sound")
    subprocess.run(
        [sys.executable, "-m", "ledger", "generate", "--out", str(out), "--customers", "40",
         "--format", "csv", "--seed", "5", "--defects", "none", "--quiet"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture
def export_without_a_required_column(sound_export: Path, tmp_path: Path) -> Path:
    """The sound export with the required column KAnsprechp.KundenCode dropped from its file."""
    out = tmp_path / "export"
    out.mkdir()
    for file in sound_export.glob("*.csv"):
        (out / file.name).write_bytes(file.read_bytes())
    path = out / "KAnsprechp.csv"
    with path.open(encoding="cp1252", newline="") as source:
        rows = list(csv.DictReader(source, delimiter=";"))
    columns = [name for name in rows[0] if name != "KundenCode"]
    with path.open("w", encoding="cp1252", newline="") as target:
        writer = csv.DictWriter(target, columns, delimiter=";", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger", "sample-check", *args], capture_output=True, text=True
    )


def test_a_reservoir_sample_holds_at_most_n_items_and_counts_them_all() -> None:
    sample, seen = reservoir_sample(range(10_000), 100, random.Random(1))
    assert seen == 10_000
    assert len(sample) == len(set(sample)) == 100
    assert reservoir_sample(range(5), 100, random.Random(1)) == ([0, 1, 2, 3, 4], 5)


def test_a_reservoir_sample_is_the_same_for_the_same_seed_and_reaches_the_end() -> None:
    first, _ = reservoir_sample(range(10_000), 50, random.Random("7:Kunden"))
    again, _ = reservoir_sample(range(10_000), 50, random.Random("7:Kunden"))
    assert first == again
    assert max(first) > 5_000


def test_a_reservoir_sample_is_uniform_over_the_stream() -> None:
    rng = random.Random(3)
    hits = [0] * 10
    for _ in range(2000):
        sample, _ = reservoir_sample(range(10), 3, rng)
        for item in sample:
            hits[item] += 1
    # 600 expected per item; a skew towards the head or tail of the stream would leave this band.
    assert all(500 < count < 700 for count in hits)


def test_every_table_of_a_sound_export_passes(sound_export: Path) -> None:
    report = sample_check(sound_export, n=10, seed=1)
    assert [verdict.table for verdict in report.verdicts] == list(TABLES)
    assert report.passed
    kunden = next(verdict for verdict in report.verdicts if verdict.table == "Kunden")
    assert (kunden.rows, kunden.sampled, kunden.reason) == (40, 10, "ok")


def test_a_missing_required_column_fails_only_its_table_naming_the_column(
    export_without_a_required_column: Path,
) -> None:
    report = sample_check(export_without_a_required_column, n=10)
    failed = [verdict for verdict in report.verdicts if not verdict.passed]
    assert [verdict.table for verdict in failed] == ["KAnsprechp"]
    assert failed[0].reason.startswith(
        "KAnsprechp.csv, row 1, column 'KundenCode': required column KundenCode is missing"
    )


def test_a_missing_table_fails_and_a_sampled_bad_amount_fails_its_table() -> None:
    report = sample_check(CORPUS / "non_numeric_amount", n=10)
    verdicts = {verdict.table: verdict for verdict in report.verdicts}
    assert verdicts["Kunden"].reason == "table is missing"
    assert not verdicts["RA"].passed
    assert "RA.csv, row 3, column 'RBetrag': not a number: 'zweihundert'" in {
        str(finding) for finding in verdicts["RA"].errors
    }


def test_an_unreadable_sheet_fails_its_table_and_the_others_are_still_checked() -> None:
    report = sample_check(CORPUS / "damaged_sheet.xlsx", n=10)
    verdicts = {verdict.table: verdict for verdict in report.verdicts}
    assert not verdicts["Mitarbeiter"].passed
    assert verdicts["Mitarbeiter"].errors[0].kind == "unreadable_table"
    assert verdicts["Kunden"].passed
    assert verdicts["Kunden"].rows == 40


def test_an_unreadable_export_raises_naming_the_file() -> None:
    with pytest.raises(ExportError, match=r"^garbage\.xlsx: "):
        sample_check(CORPUS / "garbage.xlsx")


def test_the_cli_passes_a_sound_export_with_exit_code_0(sound_export: Path) -> None:
    result = _cli(str(sound_export), "--n", "10", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "PASS: all 27 tables" in result.stdout


def test_the_cli_fails_an_export_without_a_required_column_naming_the_table(
    export_without_a_required_column: Path,
) -> None:
    result = _cli(str(export_without_a_required_column))
    assert result.returncode == 1
    assert "FAIL: 1 of 27 tables: KAnsprechp" in result.stdout
    assert "required column KundenCode is missing" in result.stdout


def test_the_cli_rejects_garbage_with_exit_code_2_and_no_traceback() -> None:
    result = _cli(str(CORPUS / "garbage.bin"))
    assert result.returncode == 2
    assert "garbage.bin: not a work4all export" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
