"""How an emulator instance is configured: one frozen value shared by every part of it."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_TENANT = "00000000-0000-0000-0000-00000000e4a1"
DEFAULT_CLIENT_ID = "crmledger-emulator"
DEFAULT_CLIENT_SECRET = "emulator-secret"  # a well-known local default, like a test fixture's


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate registered on an app, as Entra ID keeps it: the public key and thumbprints.

    Build it with :meth:`from_pem` (the public certificate) or :meth:`from_public_key` (a
    thumbprint, as the portal shows it, and the public key). A client assertion names the
    certificate in its header by ``x5t`` (SHA-1) or ``x5t#S256`` (SHA-256).
    """

    public_key: rsa.RSAPublicKey
    sha1_thumbprint: bytes | None
    sha256_thumbprint: bytes | None

    @classmethod
    def from_pem(cls, pem: bytes) -> ClientCertificate:
        """The first certificate in ``pem`` (a private key in the same file is ignored)."""
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ValueError("no PEM certificate found") from None
        return cls(
            public_key=_rsa_key(certificate.public_key()),
            # Entra still accepts the SHA-1 thumbprint that msal sends for a given thumbprint.
            sha1_thumbprint=certificate.fingerprint(hashes.SHA1()),
            sha256_thumbprint=certificate.fingerprint(hashes.SHA256()),
        )

    @classmethod
    def from_public_key(cls, thumbprint: str, public_key_pem: bytes) -> ClientCertificate:
        """A certificate known by its hex thumbprint (40 digits SHA-1, 64 SHA-256) and key."""
        try:
            digest = binascii.unhexlify(thumbprint.replace(":", "").strip())
        except (binascii.Error, ValueError):
            raise ValueError(f"thumbprint {thumbprint!r} is not hexadecimal") from None
        if len(digest) not in (20, 32):
            raise ValueError(f"thumbprint {thumbprint!r} is neither SHA-1 nor SHA-256")
        try:
            key = serialization.load_pem_public_key(public_key_pem)
        except ValueError:
            raise ValueError("no PEM public key found") from None
        return cls(
            public_key=_rsa_key(key),
            sha1_thumbprint=digest if len(digest) == 20 else None,
            sha256_thumbprint=digest if len(digest) == 32 else None,
        )

    @property
    def x5t(self) -> str | None:
        """The SHA-1 thumbprint as an assertion's ``x5t`` header carries it (base64url)."""
        return _b64url(self.sha1_thumbprint) if self.sha1_thumbprint else None

    @property
    def x5t_s256(self) -> str | None:
        """The SHA-256 thumbprint as an assertion's ``x5t#S256`` header carries it."""
        return _b64url(self.sha256_thumbprint) if self.sha256_thumbprint else None


def _rsa_key(key: object) -> rsa.RSAPublicKey:
    # Entra app certificates are RSA; assertions are signed RS256 or PS256.
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the certificate's key is not an RSA key")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
    # Per client id (each an application user): its client secret, or its certificate.
    clients: Mapping[str, str | ClientCertificate] = field(
        default_factory=lambda: {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    )
    # Refuse a client assertion whose jti was seen before it expired (RFC 7523 3, "MAY"). Off, as
    # in Entra, which documents no such check and where msal reuses an assertion for up to 540 s.
    reject_replayed_assertions: bool = False
    assertion_leeway_s: int = 60  # clock skew allowed on an assertion's exp, nbf and iat
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
