"""The sealing identity: the configured certificate and key, or a local certificate authority the portal creates on first use."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

logger = logging.getLogger(__name__)


_LOCAL_CA_FILES = {
    "root_key": "root-ca.key",
    "root_cert": "root-ca.pem",
    "seal_key": "seal.key",
    # Written last: its presence means the local CA is complete.
    "seal_cert": "seal.pem",
}


_ROOT_VALIDITY = timedelta(days=365 * 30)


_SEAL_VALIDITY = timedelta(days=365 * 20)


@dataclass(frozen=True)
class SealingIdentity:
    """Key and certificate that seal receipts, plus the root(s) a verifier must trust."""

    signer: signers.SimpleSigner
    certificate_pem: bytes
    root_pem: bytes
    fingerprint: str  # SHA-256 hex of the sealing certificate's DER


def load_sealing_identity() -> SealingIdentity:
    """Load the configured sealing key; without one, create (once) and reuse a local CA.

    Cached per process for each combination of the PORTAL_SEALING_* settings.
    """
    return _load_identity(
        key_path=settings.PORTAL_SEALING_KEY,
        cert_path=settings.PORTAL_SEALING_CERT,
        root_path=settings.PORTAL_SEALING_ROOT,
        key_password=getattr(settings, "PORTAL_SEALING_KEY_PASSWORD", ""),
        sealing_dir=str(settings.PORTAL_SEALING_DIR),
    )


def clear_sealing_identity_cache() -> None:
    """Forget loaded identities, e.g. after the key files were rotated."""
    _load_identity.cache_clear()


@functools.cache
def _load_identity(
    *, key_path: str, cert_path: str, root_path: str, key_password: str, sealing_dir: str
) -> SealingIdentity:
    if key_path or cert_path or root_path:
        if not (key_path and cert_path and root_path):
            raise ImproperlyConfigured(
                "PORTAL_SEALING_KEY, PORTAL_SEALING_CERT and PORTAL_SEALING_ROOT must be set "
                "together (or all left empty to use a local sealing CA)."
            )
        return _identity_from_pem(
            key_pem=_read_configured(key_path, "PORTAL_SEALING_KEY"),
            cert_pem=_read_configured(cert_path, "PORTAL_SEALING_CERT"),
            root_pem=_read_configured(root_path, "PORTAL_SEALING_ROOT"),
            password=key_password.encode() if key_password else None,
        )
    files = _ensure_local_ca(Path(sealing_dir))
    return _identity_from_pem(
        key_pem=files["seal_key"].read_bytes(),
        cert_pem=files["seal_cert"].read_bytes(),
        root_pem=files["root_cert"].read_bytes(),
        password=None,
    )


def _read_configured(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting} names a file that cannot be read: {exc}") from exc


def _identity_from_pem(
    *, key_pem: bytes, cert_pem: bytes, root_pem: bytes, password: bytes | None
) -> SealingIdentity:
    """Build the signer; the certificate file may carry intermediates after the sealing cert."""
    try:
        chain = list(load_certs_from_pemder_data(cert_pem))
        roots = list(load_certs_from_pemder_data(root_pem))
        signing_key = load_private_key_from_pemder_data(key_pem, passphrase=password)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"The sealing key or certificates cannot be read: {exc}"
        ) from exc
    if not chain or not roots:
        raise ImproperlyConfigured("The sealing certificate or root certificate file is empty.")
    signing_cert = chain[0]
    if signing_cert.public_key.dump() != _public_key_der(key_pem, password):
        raise ImproperlyConfigured("The sealing key does not belong to the sealing certificate.")
    key_usage = signing_cert.key_usage_value
    if key_usage is None or "non_repudiation" not in key_usage.native:
        # pyHanko judges a seal without this bit untrusted: fail at start-up, not at verification.
        raise ImproperlyConfigured(
            "The sealing certificate needs the non-repudiation (content commitment) key usage."
        )
    registry = SimpleCertificateStore()
    registry.register_multiple([*chain[1:], *roots])
    signer = signers.SimpleSigner(
        signing_cert=signing_cert, signing_key=signing_key, cert_registry=registry
    )
    return SealingIdentity(
        signer=signer,
        certificate_pem=cert_pem,
        root_pem=root_pem,
        fingerprint=hashlib.sha256(signing_cert.dump()).hexdigest(),
    )


def _public_key_der(key_pem: bytes, password: bytes | None) -> bytes:
    load = (
        serialization.load_pem_private_key
        if key_pem.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    return (
        load(key_pem, password=password)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _ensure_local_ca(directory: Path) -> dict[str, Path]:
    """Return the local CA's files, creating them under an exclusive lock if absent."""
    files = {role: directory / name for role, name in _LOCAL_CA_FILES.items()}
    if files["seal_cert"].exists():
        _require_complete(files)
        return files
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    lock_fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Another process may be creating the same CA: wait for it, then reuse its files.
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if files["seal_cert"].exists():
            _require_complete(files)
            return files
        pems = _generate_local_ca(settings.PORTAL_COMPANY_NAME)
        for role, path in files.items():
            _write_atomically(path, pems[role], mode=0o600 if role.endswith("_key") else 0o644)
    finally:
        os.close(lock_fd)  # closing releases the lock
    logger.warning(
        "Created a local sealing CA at %s to seal receipts. Production should configure "
        "PORTAL_SEALING_KEY, PORTAL_SEALING_CERT and PORTAL_SEALING_ROOT instead, and keep "
        "this root certificate with the audit package.",
        directory,
    )
    return files


def _require_complete(files: dict[str, Path]) -> None:
    missing = [str(path) for path in files.values() if not path.exists()]
    if missing:
        # Never silently replace a CA that may already have sealed receipts.
        raise ImproperlyConfigured(f"The local sealing CA is incomplete; missing: {missing}")


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _generate_local_ca(company: str) -> dict[str, bytes]:
    """Make an EC P-256 root CA and a sealing certificate it issues; return the four PEMs."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    seal_key = ec.generate_private_key(ec.SECP256R1())

    def name(common_name: str) -> x509.Name:
        # X.509 caps both attributes at 64 characters.
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, company[:64]),
            ]
        )

    root_name = name(f"{company} Policy Portal local sealing root")
    seal_name = name(f"{company} Policy Portal receipt seal")
    no_usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**{**no_usage, "key_cert_sign": True, "crl_sign": True}), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    seal_cert = (
        x509.CertificateBuilder()
        .subject_name(seal_name)
        .issuer_name(root_name)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _SEAL_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**{**no_usage, "digital_signature": True, "content_commitment": True}),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(seal_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    return {
        "root_key": key_pem(root_key),
        "root_cert": root_cert.public_bytes(serialization.Encoding.PEM),
        "seal_key": key_pem(seal_key),
        "seal_cert": seal_cert.public_bytes(serialization.Encoding.PEM),
    }
