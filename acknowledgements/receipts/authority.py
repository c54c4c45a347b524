"""The sealing identity: the configured certificate and key, or a local certificate authority the portal creates on first use."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from acknowledgements.receipts import local_ca


@dataclass(frozen=True)
class SealingIdentity:
    """Key and certificate that seal receipts, plus the root(s) a verifier must trust."""

    signer: signers.SimpleSigner
    certificate_pem: bytes
    root_pem: bytes
    fingerprint: str  # SHA-256 hex of the sealing certificate's DER
    # DER CRLs the portal holds for the seal's chain (its local CA's), embedded in each receipt;
    # empty for a configured certificate, whose CA publishes its own.
    crls: tuple[bytes, ...] = ()


def load_sealing_identity() -> SealingIdentity:
    """Load the configured sealing key; without one, create (once) and reuse a local CA.

    Cached per process for each combination of the PORTAL_SEALING_* settings, and looked at
    again each day and whenever another process renewed the local CA's seal certificate.
    """
    configured = (
        settings.PORTAL_SEALING_KEY,
        settings.PORTAL_SEALING_CERT,
        settings.PORTAL_SEALING_ROOT,
    )
    sealing_dir = Path(settings.PORTAL_SEALING_DIR)
    root_key_dir: Path | None = None
    freshness: tuple[object, ...] = ()
    if not any(configured):
        root_key_dir = local_ca.root_key_dir(sealing_dir)
        with contextlib.suppress(FileNotFoundError):
            seal = (sealing_dir / local_ca.FILES["seal_cert"]).stat()
            freshness = (seal.st_ino, seal.st_mtime_ns)
        freshness = (datetime.now(UTC).date(), *freshness)
    return _load_identity(
        key_path=settings.PORTAL_SEALING_KEY,
        cert_path=settings.PORTAL_SEALING_CERT,
        root_path=settings.PORTAL_SEALING_ROOT,
        key_password=getattr(settings, "PORTAL_SEALING_KEY_PASSWORD", ""),
        sealing_dir=str(sealing_dir),
        root_key_dir=str(root_key_dir or ""),
        freshness=freshness,
    )


def clear_sealing_identity_cache() -> None:
    """Forget loaded identities, e.g. after the key files were rotated."""
    _load_identity.cache_clear()


@functools.lru_cache(maxsize=16)
def _load_identity(
    *,
    key_path: str,
    cert_path: str,
    root_path: str,
    key_password: str,
    sealing_dir: str,
    root_key_dir: str,
    freshness: tuple[object, ...],
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
    files = local_ca.ensure_local_ca(
        Path(sealing_dir), keep_root_key_in=Path(root_key_dir) if root_key_dir else None
    )
    return _identity_from_pem(
        key_pem=files["seal_key"],
        cert_pem=files["seal_cert"],
        root_pem=files["root_cert"],
        password=None,
        crls=(files["crl"],) if "crl" in files else (),
    )


def _read_configured(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{setting} names a file that cannot be read: {exc}") from exc


def _identity_from_pem(
    *,
    key_pem: bytes,
    cert_pem: bytes,
    root_pem: bytes,
    password: bytes | None,
    crls: tuple[bytes, ...] = (),
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
        crls=crls,
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
