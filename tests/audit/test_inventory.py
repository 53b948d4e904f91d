"""``crmledger inventory``: what a work4all installation configures, for the admin to rebuild."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ledger.cli import app
from producers.inventory import inventory, to_markdown
from producers.mapping.default import default_map
from tests.delta.conftest import Generations


def test_the_inventory_lists_lookups_numbering_custom_fields_users_and_automations(
    generations: Generations, tmp_path: Path
) -> None:
    items = inventory(generations.first, default_map())
    by_heading = {item.heading: item for item in items}

    assert by_heading["Tax rates (Mehrwertsteuersätze)"].examples[:2] == ["19.0", "7.0"]
    assert by_heading["Price groups (Preisgruppen)"].migrated  # the map moves them as price lists
    assert by_heading["Number ranges (NummernKreise)"].missing  # not in this export: ask for it
    assert by_heading["Kunden.Nummer"].examples[-1].startswith("next: ")
    combo = next(item for item in items if "Bonität" in item.heading)
    assert combo.examples == ["gut", "mittel", "schlecht"]
    assert "account" in combo.build
    assert any(item.section == "Users, groups and rights" and item.count for item in items)
    assert any(item.heading.startswith("Dunning") for item in items)

    out = tmp_path / "inventory.md"
    result = CliRunner().invoke(app, ["inventory", str(generations.first), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == to_markdown(items, str(generations.first))
    assert "## Custom field definitions" in out.read_text(encoding="utf-8")


def test_an_unreadable_export_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inventory", str(tmp_path / "nothing-here.db")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
