"""``crmledger map propose | confirm | diff | show``: what a person runs, and what the log keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ledger.cli import app
from ledger.event_types import MappingProposed
from ledger.events import Topic
from ledger.log import open_log
from producers.mapping.gate import confirmations
from producers.mapping.model import ColumnMap, load_map, save_map
from tests.mapping.test_propose import SMALL_MAP, generate, rename_sqlite


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with its own event log and no crmledger.toml."""
    monkeypatch.chdir(tmp_path)
    for name in ("CRMLEDGER_LOG_URL", "CRMLEDGER_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRMLEDGER_LOG_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def base_map(workdir: Path) -> Path:
    path = workdir / "base.yaml"
    save_map(SMALL_MAP, path)
    return path


@pytest.fixture(scope="module")
def renamed_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = generate(tmp_path_factory.mktemp("cli-export"), "sql", customers=40)
    rename_sqlite(database)
    return database


def test_propose_writes_map_and_review_and_records_mapping_proposed(
    workdir: Path, base_map: Path, renamed_database: Path
) -> None:
    out = workdir / "map.yaml"
    result = run("map", "propose", str(renamed_database), "--out", str(out), "--base",
                 str(base_map), "--quiet")  # fmt: skip

    assert result.exit_code == 0, result.output
    proposed = load_map(out)
    assert (workdir / "map.review.md").is_file()
    assert (workdir / "map.review.html").is_file()
    assert proposed.content_hash in result.output
    customers = proposed.object("customers")
    assert customers is not None
    assert customers.column("telephone1") == ColumnMap(target="telephone1", sources=["Tel"])
    with open_log(f"sqlite:///{workdir / 'ledger.db'}") as log:
        events = [s.event for s in log.read([Topic.CONTROL]) if s.event.type == "MappingProposed"]
    assert len(events) == 1
    payload = MappingProposed.model_validate(events[0].payload)
    assert payload.map_hash == proposed.content_hash
    assert payload.map_version == proposed.map_version
    assert payload.proposals > 10


def test_confirm_records_the_hash_and_prints_it(workdir: Path, base_map: Path) -> None:
    result = run("map", "confirm", str(base_map), "--by", "Anna Admin", "--note", "checked")

    assert result.exit_code == 0, result.output
    assert SMALL_MAP.content_hash in result.output
    with open_log(f"sqlite:///{workdir / 'ledger.db'}") as log:
        found = confirmations(log)
    assert found[SMALL_MAP.content_hash][0].confirmed_by == "Anna Admin"
    assert found[SMALL_MAP.content_hash][0].note == "checked"
    shown = run("map", "show", str(base_map))
    assert shown.exit_code == 0
    assert "confirmed by Anna Admin" in shown.output


def test_confirm_without_a_name_fails_cleanly(base_map: Path) -> None:
    result = run("map", "confirm", str(base_map), "--by", "  ")

    assert result.exit_code == 1
    assert "--by" in result.output
    assert "Traceback" not in result.output


def test_diff_shows_objects_and_columns_added_removed_and_changed(
    workdir: Path, base_map: Path
) -> None:
    customers = SMALL_MAP.object("customers")
    assert customers is not None
    columns = [
        c.model_copy(update={"sources": ["Tel"]}) if c.target == "telephone1" else c
        for c in customers.columns
        if c.target != "websiteurl"
    ]
    columns.append(ColumnMap(target="w4a_branche", sources=["Branche"], custom=True,
                             type="picklist", options={"Handel": 100000000}))  # fmt: skip
    objects = [
        customers.model_copy(update={"columns": columns}),
        *[o for o in SMALL_MAP.objects if o.name not in ("customers", "products")],
    ]
    changed = workdir / "changed.yaml"
    save_map(SMALL_MAP.model_copy(update={"objects": objects, "map_version": "2"}), changed)

    result = run("map", "diff", str(base_map), str(changed))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert '~ map.map_version: "1" → "2"' in lines
    assert '- object products: "product"' in lines
    assert "- customers.websiteurl: " in result.output
    assert any(
        line.startswith("+ customers.w4a_branche: ") and "picklist" in line for line in lines
    )
    assert '~ customers.telephone1.sources: ["Telefon"] → ["Tel"]' in lines
    same = run("map", "diff", str(base_map), str(base_map))
    assert same.exit_code == 0
    assert "no differences" in same.output


def test_missing_export_is_a_clean_error(workdir: Path, base_map: Path) -> None:
    result = run("map", "propose", str(workdir / "nowhere"), "--out", "map.yaml", "--base",
                 str(base_map))  # fmt: skip

    assert result.exit_code == 1
    assert "error:" in result.output
    assert "nowhere" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "map.yaml").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("objects: [\n  - name: x\n   bad", "not valid YAML"),
        ("objects:\n  - name: customers\n    phase: 1\n", "invalid map"),
        ("- just a list", "a map is a YAML mapping"),
    ],
)
def test_invalid_map_yaml_is_a_clean_error(workdir: Path, text: str, expected: str) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text(text, encoding="utf-8")

    for args in (
        ("confirm", str(bad), "--by", "x"),
        ("diff", str(bad), str(bad)),
        ("show", str(bad)),
    ):
        result = run("map", *args)
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.output
        assert "bad.yaml" in result.output
        assert "Traceback" not in result.output


def test_missing_map_file_is_a_clean_error(workdir: Path) -> None:
    result = run("map", "confirm", str(workdir / "absent.yaml"), "--by", "x")

    assert result.exit_code == 1
    assert "absent.yaml" in result.output
    assert "cannot read the map" in result.output
