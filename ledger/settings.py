"""Settings: ``crmledger.toml`` in the working directory, overridden by ``CRMLEDGER_*`` variables.

This is the only place that reads the environment; everything else receives a :class:`Settings`.
Secrets are :class:`~pydantic.SecretStr`, so printing or logging settings shows ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_LOG_URL = "sqlite:///.crmledger/ledger.db"
DEFAULT_DB_URL = "sqlite:///.crmledger/projections.db"


class Settings(BaseSettings):
    """Where the ledger lives and how to reach Dataverse."""

    model_config = SettingsConfigDict(
        env_prefix="CRMLEDGER_", toml_file="crmledger.toml", extra="forbid"
    )

    log_url: str = Field(
        default=DEFAULT_LOG_URL,
        description="Event log: sqlite:///path (embedded) or kafka://host:port (distributed).",
    )
    db_url: str = Field(
        default=DEFAULT_DB_URL,
        description="Projection database (SQLAlchemy URL), e.g. postgresql+psycopg://…",
    )
    partitions: int = Field(default=6, ge=1, le=1000, description="Partitions per topic.")
    dataverse_url: str | None = Field(
        default=None, description="Environment URL, e.g. https://org.crm4.dynamics.com"
    )
    tenant_id: str | None = None
    authority_url: str | None = Field(
        default=None, description="OAuth authority; defaults to login.microsoftonline.com/TENANT"
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_password: SecretStr | None = None
    dataverse_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CAs to trust for Dataverse and the authority (the emulator).",
    )

    @field_validator("log_url")
    @classmethod
    def _known_log_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "kafka://")):
            raise ValueError("log_url must start with sqlite:/// or kafka://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment, then ``crmledger.toml``."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values with every secret masked, for display."""
        shown: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif value is None or isinstance(value, str | int | bool):
                shown[name] = value
            else:
                shown[name] = str(value)
        return shown
