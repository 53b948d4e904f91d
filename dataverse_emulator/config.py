"""How an emulator instance is configured: one frozen value shared by every part of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_TENANT = "00000000-0000-0000-0000-00000000e4a1"
DEFAULT_CLIENT_ID = "crmledger-emulator"
DEFAULT_CLIENT_SECRET = "emulator-secret"  # a well-known local default, like a test fixture's


@dataclass(frozen=True)
class Limits:
    """Service protection limits per client over a sliding window (reference section 7)."""

    window_s: float = 300.0
    max_requests: int = 6000
    max_execution_ms: int = 1_200_000
    max_concurrent: int = 52
    dop_hint: int = 50
    # Modelled execution time: every request costs a base, plus this per record it touches.
    base_cost_ms: float = 10.0
    per_record_cost_ms: float = 2.0


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything `crmledger emulator serve` and the Python API can set."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    db_path: Path | None = None  # None: in memory
    tenant: str = DEFAULT_TENANT
    clients: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    )
    limits_enabled: bool = True
    limits: Limits = field(default_factory=Limits)
    # Divides every window and Retry-After, so tests hit limits in seconds, not minutes.
    time_scale: float = 1.0
    faults: str | None = None  # e.g. "429:0.05,503:0.02,timeout:0.01,reset:0.01"
    fault_seed: int = 0
    # How long a `timeout` fault holds the response before answering 504 (divided by time_scale).
    fault_timeout_s: float = 30.0
    tls: bool = False
    tls_dir: Path | None = None  # where a generated certificate is written
    licence: Literal["professional", "enterprise"] = "enterprise"
    max_attachment_bytes: int = 5_242_880
    token_lifetime_s: int = 3600
    seed_users: tuple[
        tuple[str, str, bool], ...
    ] = ()  # (internalemailaddress, fullname, isdisabled)
    organization_url: str | None = None  # the resource in scopes; default: the base URL itself
