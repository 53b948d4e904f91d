"""One small real migration (40 customers) into an emulator over TLS, shared by the session.

The projection tests rebuild their read models from this run's SQLite log into databases of
their own; the emulator stays up so the spot check can read what Dataverse holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from consumers.dataverse.client import RetryPolicy, client_from_settings
from consumers.dataverse.throttle import Throttle
from consumers.migrate import InProcessStages, MigrationRequest, MigrationSummary, migrate
from consumers.reconcile import GateThresholds
from ledger.log import open_log
from producers.mapping.default import default_map
from producers.work4all.cli import ExportForm, generate
from tests.migration.conftest import Target, target_for

RUN = "p1"
CUSTOMERS = 40


@dataclass
class Migrated:
    """A finished run: the emulator it went into, the settings that reach both, its summary."""

    target: Target
    summary: MigrationSummary
    run_id: str = RUN

    @property
    def log_url(self) -> str:
        """The run's event log (SQLite)."""
        return self.target.settings.log_url


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migrated]:
    """A 40-customer export migrated through every phase (rejections allowed up to 50%)."""
    folder = tmp_path_factory.mktemp("projections-export")
    # Defects at rates that reject a few records even at this size.
    defects = folder / "defects.json"
    defects.write_text(json.dumps({"duplicate_customer": 0.1, "orphan_contact": 0.05}))
    generate(
        out=str(folder), customers=CUSTOMERS, form=ExportForm.SQL, quiet=True, defects=str(defects)
    )
    ledger = tmp_path_factory.mktemp("projections-ledger")
    with target_for(
        folder / "work4all.db", tmp_path_factory.mktemp("projections-tls"),
        log_url=f"sqlite:///{ledger / 'ledger.db'}",
        db_url=f"sqlite:///{ledger / 'projections.db'}", run_id=RUN,
    ) as target:  # fmt: skip
        settings = target.settings
        with (
            open_log(settings.log_url) as log,
            client_from_settings(settings) as client,
            client_from_settings(settings, retry=RetryPolicy(max_retries=0)) as writer,
        ):
            request = MigrationRequest(
                export="", run_id=RUN, thresholds=GateThresholds(max_rejected_share=0.5)
            )
            summary = migrate(
                log, client, default_map(), request, stages=InProcessStages(writer, Throttle())
            )
        assert summary.passed, summary.stopped
        yield Migrated(target, summary)
