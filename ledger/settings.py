"""Settings: ``crmledger.toml`` in the working directory, overridden by ``CRMLEDGER_*`` variables.

This is the only place that reads the environment; everything else receives a :class:`Settings`.
Secrets are :class:`~pydantic.SecretStr`, so printing or logging settings shows ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_LOG_URL = "sqlite:///.crmledger/ledger.db"
DEFAULT_DB_URL = "sqlite:///.crmledger/projections.db"

TARGET_FIELDS = (
    "dataverse_url",
    "tenant_id",
    "authority_url",
    "client_id",
    "client_secret",
    "certificate_path",
    "certificate_password",
    "dataverse_ca_file",
)
"""The Dataverse settings a named target (``[targets.NAME]``) may set."""


class UnknownTargetError(ValueError):
    """``--target NAME`` names no ``[targets.NAME]`` table of crmledger.toml."""


class DataverseTarget(BaseModel):
    """One named Dataverse environment: ``[targets.sandbox]``, ``[targets.production]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataverse_url: str | None = None
    tenant_id: str | None = None
    authority_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_password: SecretStr | None = None
    dataverse_ca_file: Path | None = None


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
    targets: dict[str, DataverseTarget] = Field(
        default_factory=dict,
        description="Named Dataverse environments ([targets.NAME] tables), picked by --target.",
    )

    gate_max_failed_share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Phase gate: largest share of failed writes."
    )
    gate_max_rejected_share: float = Field(
        default=0.10,
        ge=0.0,
        le=1.0,
        description="Phase gate: largest share of records rejected (filtered out not counted).",
    )
    gate_max_mismatched: int = Field(
        default=0, ge=0, description="Phase gate: records whose read-back may differ."
    )
    gate_require_verified: bool = Field(
        default=True, description="Phase gate: every written record must be verified."
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

    def for_target(self, name: str | None) -> Settings:
        """These settings with the Dataverse settings of ``[targets.NAME]`` in effect.

        A target replaces every Dataverse setting (an unset one stays unset), so nothing of
        another environment leaks into it; ``None`` keeps the top-level Dataverse settings.
        """
        if name is None:
            return self
        target = self.targets.get(name)
        if target is None:
            known = ", ".join(sorted(self.targets)) or "none configured"
            raise UnknownTargetError(
                f"no target {name!r} in crmledger.toml ([targets.{name}]); known: {known}"
            )
        return self.model_copy(update={field: getattr(target, field) for field in TARGET_FIELDS})

    def redacted(self) -> dict[str, Any]:
        """The settings as plain values with every secret masked, for display.

        Named targets appear as ``targets.NAME.field`` entries.
        """
        shown: dict[str, Any] = {}
        for name, value in self:
            if name == "targets":
                for target_name, target in sorted(self.targets.items()):
                    for field, field_value in target:
                        shown[f"targets.{target_name}.{field}"] = _shown(field_value)
            else:
                shown[name] = _shown(value)
        return shown


def _shown(value: object) -> object:
    if isinstance(value, SecretStr):
        return "**********"
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
