"""The self-signed certificate that lets a fresh install serve HTTPS at once.

Browsers only grant camera and microphone to secure origins, so even a first try-out needs TLS.
On first start we make a key and a certificate in the state directory and reuse them after
that; operators with a real certificate pass their own ``--listen ssl:...:certKey=...``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_NAME = "tls-key.pem"
CERT_NAME = "tls-cert.pem"
VALIDITY = datetime.timedelta(days=365)
#: Renew this long before expiry, so a restart in the last weeks does not serve a dying cert.
RENEW_BEFORE = datetime.timedelta(days=30)


class CertificateError(Exception):
    """The state directory cannot hold or give back the self-signed certificate (one line)."""


def ensure_certificate(state_dir: Path, hostname: str | None = None,
                       now: datetime.datetime | None = None) -> tuple[Path, Path]:
    """Return ``(key_path, cert_path)``, making them if absent or close to expiry.

    Raises :class:`CertificateError` saying what is wrong with the directory or its files.
    """
    try:
        return _ensure_certificate(state_dir, hostname, now)
    except OSError as e:
        where = e.filename or state_dir
        raise CertificateError(f"cannot use {where} for the TLS certificate: "
                               f"{e.strerror or e}") from None


def _ensure_certificate(state_dir: Path, hostname: str | None,
                        now: datetime.datetime | None) -> tuple[Path, Path]:
    if state_dir.exists() and not state_dir.is_dir():
        raise CertificateError(f"{state_dir} is not a directory")
    key_path, cert_path = state_dir / KEY_NAME, state_dir / CERT_NAME
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if key_path.exists() and cert_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            raise CertificateError(
                f"{cert_path} is not a PEM certificate; delete it (and {key_path.name}) "
                "to have a new one made") from None
        if cert.not_valid_after_utc - RENEW_BEFORE > now:
            return key_path, cert_path
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, hostname or socket.gethostname(), now)
    _write_private(key_path, key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, hostname: str,
                            now: datetime.datetime) -> x509.Certificate:
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    if hostname and hostname != "localhost":
        names.append(x509.DNSName(hostname))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname or "localhost")])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    # Create with 0600 from the start: a chmod after writing would leave a window.
    tmp = path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
