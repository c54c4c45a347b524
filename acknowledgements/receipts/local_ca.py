"""The portal's own sealing CA, used when no operator certificate is configured.

Its root signs the seal certificate and a certificate revocation list (CRL), then its key is
kept apart: in PORTAL_SEALING_ROOT_KEY_DIR, or nowhere, never in the sealing directory the
server signs from. The seal certificate lasts a few years and is renewed before it expires
whenever the root key is at hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


ROOT_VALIDITY = timedelta(days=3653)  # ten years


SEAL_VALIDITY = timedelta(days=1096)  # three years


# A seal certificate with less left than this is renewed (or, without the root key, warned of).
RENEW_BEFORE = timedelta(days=180)


ROOT_ROTATE_BEFORE = timedelta(days=365)


# Where the portal publishes the root's CRL; the seal certificate names it (PORTAL_BASE_URL + this).
CRL_PATH = "/verify/sealing-root.crl"


FILES = {
    "root_cert": "root-ca.pem",
    "crl": "root-ca.crl",
    "seal_key": "seal.key",
    # Written last: its presence means the local CA is complete.
    "seal_cert": "seal.pem",
}


# Where releases before the root key was kept apart left it, beside the seal key.
LEGACY_ROOT_KEY = "root-ca.key"


_BACKDATE = timedelta(minutes=5)  # tolerates a verifier's clock running a little behind


def root_key_dir(sealing_dir: Path) -> Path | None:
    """Where the root key is kept: PORTAL_SEALING_ROOT_KEY_DIR, or None to keep it nowhere.

    Unset, a folder beside the sealing directory ("sealing" -> "sealing-root").
    """
    configured = getattr(settings, "PORTAL_SEALING_ROOT_KEY_DIR", None)
    if configured is None:
        return sealing_dir.with_name(f"{sealing_dir.name}-root")
    if not str(configured):
        return None
    directory = Path(configured)
    sealing, kept = sealing_dir.resolve(), directory.resolve()
    if kept == sealing or sealing in kept.parents:
        raise ImproperlyConfigured(
            "PORTAL_SEALING_ROOT_KEY_DIR must not be PORTAL_SEALING_DIR or inside it: the server "
            "signs from that folder, and the root key must be kept apart."
        )
    return directory


def root_key_path(directory: Path, root_cert_pem: bytes) -> Path:
    """The root key's file in `directory`, named after its certificate (several roots may share it)."""
    return directory / f"sealing-root-{_fingerprint(root_cert_pem)[:16]}.key"


def crl_url() -> str:
    return f"{settings.PORTAL_BASE_URL}{CRL_PATH}"


def ensure_local_ca(directory: Path, *, keep_root_key_in: Path | None) -> dict[str, bytes]:
    """Create the local CA on first use, renew what is due, and return its files' contents.

    Returns the PEMs of the root and seal certificates and the seal key, and the DER CRL
    (absent for a CA made before CRLs, whose root key is not at hand).
    """
    files = {role: directory / name for role, name in FILES.items()}
    if files["seal_cert"].exists():
        with _locked(directory, shared=True):
            contents = _read(files)
        if not _upkeep_due(directory, contents):
            return contents
    _make_private_dir(directory)
    with _locked(directory, shared=False):
        # Another process may have created or renewed the CA meanwhile: decide again.
        if files["seal_cert"].exists():
            _upkeep(directory, files, keep_root_key_in)
        else:
            _create(directory, files, keep_root_key_in)
        return _read(files)


def generate_local_ca(company: str) -> dict[str, bytes]:
    """Make an EC P-256 root, the seal certificate and CRL it signs; return their PEMs and DER."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{company} Policy Portal local sealing root", company)
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    seal_key, seal_cert = _issue_seal(root_key, root_cert, company=company, now=now)
    return {
        "root_key": _key_pem(root_key),
        "root_cert": root_cert.public_bytes(serialization.Encoding.PEM),
        "crl": _sign_crl(root_key, root_cert, number=1, now=now),
        "seal_key": _key_pem(seal_key),
        "seal_cert": seal_cert.public_bytes(serialization.Encoding.PEM),
    }


def seal_renewal_reason(seal_cert_pem: bytes, *, now: datetime) -> str | None:
    """Why the seal certificate should be replaced now, or None while it is fine."""
    seal = x509.load_pem_x509_certificate(seal_cert_pem)
    if seal.not_valid_after_utc - now < RENEW_BEFORE:
        return f"it expires on {seal.not_valid_after_utc:%Y-%m-%d}"
    if seal.not_valid_after_utc - seal.not_valid_before_utc > SEAL_VALIDITY + timedelta(days=1):
        return "it was issued for longer than seal certificates now last"
    try:
        seal.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return "it names no CRL, so receipts cannot carry revocation information"
    return None


def _create(directory: Path, files: dict[str, Path], keep_root_key_in: Path | None) -> None:
    pems = generate_local_ca(settings.PORTAL_COMPANY_NAME)
    if keep_root_key_in is not None:
        # Before the CA exists: a CA whose root key could not be kept is not made at all.
        kept = _keep_root_key(keep_root_key_in, pems["root_key"], pems["root_cert"])
        where = f"its root key is in {kept}: keep that folder offline, the portal needs it only to renew the seal certificate"
    else:
        where = "its root key was not kept (PORTAL_SEALING_ROOT_KEY_DIR is empty)"
    for role, path in files.items():
        _write_atomically(path, pems[role], mode=0o600 if role.endswith("_key") else 0o644)
    logger.warning(
        "Created a local sealing CA at %s to seal receipts; %s. Production should configure "
        "PORTAL_SEALING_KEY, PORTAL_SEALING_CERT and PORTAL_SEALING_ROOT instead, and keep "
        "this root certificate with the audit package.",
        directory,
        where,
    )


def _upkeep_due(directory: Path, contents: dict[str, bytes]) -> bool:
    now = datetime.now(UTC)
    root = x509.load_pem_x509_certificate(contents["root_cert"])
    return (
        (directory / LEGACY_ROOT_KEY).exists()
        or "crl" not in contents
        or seal_renewal_reason(contents["seal_cert"], now=now) is not None
        or root.not_valid_after_utc - now < ROOT_ROTATE_BEFORE
    )


def _upkeep(directory: Path, files: dict[str, Path], keep_root_key_in: Path | None) -> None:
    """Move a legacy root key out, then renew the seal and CRL where due and possible."""
    _require_complete(files)
    root_pem = files["root_cert"].read_bytes()
    root = x509.load_pem_x509_certificate(root_pem)
    _move_legacy_root_key(directory, root_pem, keep_root_key_in)
    root_key = _load_root_key(keep_root_key_in, root_pem)
    now = datetime.now(UTC)
    reason = seal_renewal_reason(files["seal_cert"].read_bytes(), now=now)
    root_left = root.not_valid_after_utc - now
    if reason and root_left > RENEW_BEFORE:
        if root_key is None:
            logger.warning(
                "The local sealing CA's seal certificate in %s should be renewed: %s. Make the "
                "root key (%s) available in PORTAL_SEALING_ROOT_KEY_DIR and restart the portal "
                "(docs/deployment.md, Rotating the sealing certificate).",
                directory,
                reason,
                root_key_path(Path(), root_pem).name,
            )
        else:
            seal_key, seal_cert = _issue_seal(
                root_key, root, company=settings.PORTAL_COMPANY_NAME, now=now
            )
            _reissue_crl(files["crl"], root_key, root, now=now)
            # The key first: a reader holds the shared lock, so it never sees the pair half-made.
            _write_atomically(files["seal_key"], _key_pem(seal_key), mode=0o600)
            _write_atomically(
                files["seal_cert"], seal_cert.public_bytes(serialization.Encoding.PEM), mode=0o644
            )
            logger.warning(
                "Renewed the local sealing CA's seal certificate in %s (%s); it is valid until "
                "%s. New receipts record its fingerprint %s.",
                directory,
                reason,
                f"{seal_cert.not_valid_after_utc:%Y-%m-%d}",
                seal_cert.fingerprint(hashes.SHA256()).hex(),
            )
    elif not files["crl"].exists():
        if root_key is None:
            logger.warning(
                "The local sealing CA in %s has no CRL, so receipts carry no revocation "
                "information; make its root key available in PORTAL_SEALING_ROOT_KEY_DIR and "
                "restart the portal to issue one.",
                directory,
            )
        else:
            _reissue_crl(files["crl"], root_key, root, now=now)
    if root_left < ROOT_ROTATE_BEFORE:
        logger.warning(
            "The local sealing CA's root in %s expires on %s: rotate it "
            "(docs/deployment.md, Rotating the sealing certificate).",
            directory,
            f"{root.not_valid_after_utc:%Y-%m-%d}",
        )


def _move_legacy_root_key(directory: Path, root_pem: bytes, keep_in: Path | None) -> None:
    """Take the root key a former release left in the sealing directory out of it."""
    legacy = directory / LEGACY_ROOT_KEY
    if not legacy.exists():
        return
    if keep_in is None:
        logger.warning(
            "The local sealing CA's root key is still in the sealing directory, at %s. "
            "PORTAL_SEALING_ROOT_KEY_DIR is empty, so the portal does not keep it: copy it to "
            "offline storage, then delete it from the server.",
            legacy,
        )
        return
    key_pem = legacy.read_bytes()
    if not _is_key_of(key_pem, root_pem):
        logger.warning(
            "%s is not the key of the local sealing root %s; it was left where it is.",
            legacy,
            directory / FILES["root_cert"],
        )
        return
    target = root_key_path(keep_in, root_pem)
    if target.exists() and target.read_bytes() != key_pem:
        logger.warning(
            "%s and %s differ; neither was changed. Keep the one that matches the root.",
            legacy,
            target,
        )
        return
    _keep_root_key(keep_in, key_pem, root_pem)
    legacy.unlink()
    logger.warning(
        "Moved the local sealing CA's root key out of the sealing directory, from %s to %s. "
        "Keep that folder offline: the portal needs it only to renew the seal certificate.",
        legacy,
        target,
    )


def _keep_root_key(directory: Path, key_pem: bytes, root_pem: bytes) -> Path:
    """Write the root key and its certificate (to tell several roots' keys apart) to `directory`."""
    _make_private_dir(directory)
    path = root_key_path(directory, root_pem)
    _write_atomically(path, key_pem, mode=0o600)
    _write_atomically(path.with_suffix(".pem"), root_pem, mode=0o644)
    return path


def _load_root_key(directory: Path | None, root_pem: bytes) -> ec.EllipticCurvePrivateKey | None:
    if directory is None:
        return None
    path = root_key_path(directory, root_pem)
    try:
        key_pem = path.read_bytes()
    except FileNotFoundError:
        return None
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _is_key_of(key_pem, root_pem):
        logger.warning("%s is not the key of the local sealing root; it was not used.", path)
        return None
    return key


def _is_key_of(key_pem: bytes, cert_pem: bytes) -> bool:
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _issue_seal(
    root_key: ec.EllipticCurvePrivateKey,
    root_cert: x509.Certificate,
    *,
    company: str,
    now: datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new seal key and its certificate, valid SEAL_VALIDITY but never past the root."""
    seal_key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{company} Policy Portal receipt seal", company))
        .issuer_name(root_cert.subject)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + SEAL_VALIDITY, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # pyHanko judges a seal without non-repudiation (content commitment) untrusted.
            _key_usage(digital_signature=True, content_commitment=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(seal_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url())],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return seal_key, certificate


def _sign_crl(
    root_key: ec.EllipticCurvePrivateKey, root_cert: x509.Certificate, *, number: int, now: datetime
) -> bytes:
    """An empty CRL, valid until the root expires: nothing is revoked, and it needs no refresh."""
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root_cert.subject)
        .last_update(now - _BACKDATE)
        .next_update(root_cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def _reissue_crl(
    path: Path, root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate, *, now: datetime
) -> None:
    number = 1
    with contextlib.suppress(FileNotFoundError):
        previous = x509.load_der_x509_crl(path.read_bytes())
        number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    _write_atomically(path, _sign_crl(root_key, root, number=number, now=now), mode=0o644)


def _name(common_name: str, company: str) -> x509.Name:
    # X.509 caps both attributes at 64 characters.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, company[:64]),
        ]
    )


def _key_usage(**granted: bool) -> x509.KeyUsage:
    usages = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{usage: granted.get(usage, False) for usage in usages})


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _fingerprint(cert_pem: bytes) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


def _read(files: dict[str, Path]) -> dict[str, bytes]:
    _require_complete(files)
    return {role: path.read_bytes() for role, path in files.items() if path.exists()}


def _require_complete(files: dict[str, Path]) -> None:
    # The CRL may be missing: a CA made before CRLs gets one when its root key is at hand.
    missing = [str(path) for role, path in files.items() if role != "crl" and not path.exists()]
    if missing:
        # Never silently replace a CA that may already have sealed receipts.
        raise ImproperlyConfigured(f"The local sealing CA is incomplete; missing: {missing}")


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def _locked(directory: Path, *, shared: bool) -> Iterator[None]:
    """Hold the CA's lock: exclusive to create or renew it, shared to read a consistent set."""
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        if not shared:
            raise
        # A read-only sealing directory: nothing can renew the files under the reader either.
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
