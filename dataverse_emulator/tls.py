"""A self-signed certificate for serving the emulator over https on this machine.

msal only accepts https authorities, so a client that uses msal needs the emulator on TLS and has
to trust this certificate: ``httpx.Client(verify=str(cert))`` and
``msal.ConfidentialClientApplication(..., verify=str(cert))``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_FILE = "emulator-cert.pem"
KEY_FILE = "emulator-key.pem"
_DNS_NAMES = ("localhost",)
_IP_ADDRESSES = ("127.0.0.1", "::1")
_VALID_FOR = dt.timedelta(days=825)  # the longest lifetime clients still accept for a leaf
_RENEW_BEFORE = dt.timedelta(days=1)


def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """Return ``(cert_path, key_path)`` in ``directory``, generating them once.

    The certificate is self-signed for ``localhost``, ``127.0.0.1`` and ``::1``; it serves as both
    the server certificate (uvicorn ``ssl_certfile``/``ssl_keyfile``) and the trust anchor a
    client verifies against. An existing pair is reused until a day before it expires.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not _usable(cert_path, key_path):
        cert_pem, key_pem = _generate()
        # The key first: a reader that finds a certificate must find its key next to it.
        _write_atomically(key_path, key_pem, mode=0o600)
        _write_atomically(cert_path, cert_pem, mode=0o644)
    return cert_path, key_path


def _usable(cert_path: Path, key_path: Path) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError:
        return False
    matching = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fresh = cert.not_valid_after_utc - _RENEW_BEFORE > dt.datetime.now(dt.UTC)
    return matching and fresh


def _generate() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmledger Dataverse emulator")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in _DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in _IP_ADDRESSES]
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    # Two emulators starting at once must never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
