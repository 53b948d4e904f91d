"""A proposed map moves data end to end: renamed columns and custom fields reach the decisions.

The export's columns are renamed (as an installation might have them), the proposer maps them,
a person confirms the map, and the transform stage reads the renamed columns' values under
their new names. Attachments are found through the export the run registered.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.events import Event, Topic
from ledger.log import open_log
from producers.extract import export_files, registered_export
from producers.mapping.model import load_map
from tests.mapping.test_propose import generate, rename_sqlite

RUN = "renamed"


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A renamed SQLite export, proposed, confirmed, extracted and transformed by the CLI."""
    root = tmp_path_factory.mktemp("proposed-end-to-end")
    database = generate(root / "export", "sql", customers=60)
    rename_sqlite(database)
    url = f"sqlite:///{root / 'ledger.db'}"
    env = {"CRMLEDGER_LOG_URL": url, "CRMLEDGER_DB_URL": f"sqlite:///{root / 'p.db'}"}
    runner = CliRunner()
    steps = [
        ["map", "propose", str(database), "--out", str(root / "map.yaml"), "--quiet"],
        ["map", "confirm", str(root / "map.yaml"), "--by", "Test Consultant"],
        ["extract", str(database), "--run", RUN],
        ["transform", "--map", str(root / "map.yaml"), "--run", RUN],
    ]
    for step in steps:
        result = runner.invoke(app, step, env=env)
        assert result.exit_code == 0, f"{step}: {result.output}"
    return root, url


def _decisions(url: str) -> dict[str, Event]:
    with open_log(url) as log:
        return {
            stored.event.key: stored.event
            for stored in log.read([Topic.DECISIONS])
            if stored.event.run_id == RUN
        }


def test_values_of_renamed_columns_reach_the_decided_payload(
    transformed: tuple[Path, str],
) -> None:
    root, url = transformed
    migration_map = load_map(root / "map.yaml")
    customers = migration_map.object("customers")
    assert customers is not None
    phone = customers.column("telephone1")
    assert phone is not None
    assert phone.sources == ["Tel"]
    decided = [
        event
        for key, event in _decisions(url).items()
        if key.startswith("Kunden:") and event.type == "TransformDecided"
    ]
    assert decided
    with_phone = [event for event in decided if event.payload["payload"].get("telephone1")]
    with_city = [event for event in decided if event.payload["payload"].get("address1_city")]
    # the generator gives nearly every customer a phone number and a town
    assert len(with_phone) > 0.8 * len(decided)
    assert len(with_city) > 0.8 * len(decided)


def test_the_run_registers_its_export_and_attachments_are_found_through_it(
    transformed: tuple[Path, str],
) -> None:
    root, url = transformed
    with open_log(url) as log:
        registered = registered_export(log, RUN)
        files = export_files(log, RUN)
    assert registered is not None
    assert registered.format == "sql"
    assert Path(registered.location) == (root / "export" / "work4all.db").resolve()
    assert registered.tables["Kunden"] > 0
    assert files == (root / "export").resolve()
    rejected = [
        event
        for event in _decisions(url).values()
        if event.type == "RecordRejected" and "attachment_missing" in str(event.payload)
    ]
    assert rejected == []
