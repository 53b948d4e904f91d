"""Settings come from crmledger.toml and CRMLEDGER_* variables; secrets are never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.settings import DEFAULT_LOG_URL, Settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("LOG_URL", "DB_URL", "CLIENT_SECRET", "PARTITIONS"):
        monkeypatch.delenv(f"CRMLEDGER_{name}", raising=False)
    return tmp_path


def test_defaults_are_the_embedded_sqlite_deployment(workdir: Path) -> None:
    assert Settings().log_url == DEFAULT_LOG_URL


def test_the_environment_overrides_crmledger_toml(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "crmledger.toml").write_text(
        'log_url = "kafka://127.0.0.1:9092"\ndb_url = "sqlite:///toml.db"\npartitions = 12\n'
    )
    monkeypatch.setenv("CRMLEDGER_DB_URL", "postgresql+psycopg://u@127.0.0.1/db")

    settings = Settings()

    assert settings.log_url == "kafka://127.0.0.1:9092"
    assert settings.partitions == 12
    assert settings.db_url == "postgresql+psycopg://u@127.0.0.1/db"


def test_a_client_secret_never_appears_when_settings_are_printed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMLEDGER_CLIENT_SECRET", "s3cr3t-value")

    settings = Settings()

    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == "s3cr3t-value"
    for shown in (repr(settings), str(settings), str(settings.redacted())):
        assert "s3cr3t-value" not in shown


def test_an_unknown_log_scheme_is_refused(workdir: Path) -> None:
    with pytest.raises(ValueError, match="log_url must start with"):
        Settings(log_url="ftp://somewhere")
