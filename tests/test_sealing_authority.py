"""The local sealing CA as an auditor and an operator check it: where its keys are, how long its
certificates last, its CRL, and receipts that validate offline with revocation checking required."""

import io
import logging
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext

from acknowledgements.receipts import local_ca
from acknowledgements.receipts.authority import clear_sealing_identity_cache, load_sealing_identity
from acknowledgements.receipts.seal import inspect_receipt, render_and_seal
from tests.test_receipts import NO_LOCAL_CA_SETTINGS, evidence, receipt_document, refused_port

PYHANKO_CLI = Path(sys.executable).with_name("pyhanko")


def seal_a_receipt(identity) -> bytes:
    return render_and_seal(receipt_document(evidence()), identity)


def certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def the_seal(pdf: bytes):
    (seal,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    return seal


def validate_offline(pdf: bytes, root_pem: bytes, *, revocation_mode: str, crls=None):
    """pyHanko's own validation: the root as the only trust anchor, no fetching, revocation
    information from the receipt's document security store (or the CRLs given instead)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    (seal,) = reader.embedded_signatures
    roots = list(load_certs_from_pemder_data(root_pem))
    options = {"trust_roots": roots, "allow_fetching": False, "revocation_mode": revocation_mode}
    if crls is None:
        context = DocumentSecurityStore.read_dss(reader).as_validation_context(options)
    else:
        context = ValidationContext(crls=crls, **options)
    return validate_pdf_signature(seal, signer_validation_context=context)


def root_key_of(identity, root_keys: Path) -> ec.EllipticCurvePrivateKey:
    path = local_ca.root_key_path(root_keys, identity.root_pem)
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


@pytest.fixture
def sealing_dir(settings, tmp_path: Path) -> Path:
    """An empty sealing directory, the root key kept beside it (the default)."""
    for name, value in NO_LOCAL_CA_SETTINGS.items():
        setattr(settings, name, value)
    settings.PORTAL_SEALING_DIR = tmp_path / "sealing"
    settings.PORTAL_SEALING_ROOT_KEY_DIR = None
    clear_sealing_identity_cache()
    yield settings.PORTAL_SEALING_DIR
    clear_sealing_identity_cache()


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A receipt sealed by a fresh local CA whose CRL address answers nothing: what it needs
    to validate must be inside it."""
    folder = tmp_path_factory.mktemp("offline")
    with override_settings(
        PORTAL_SEALING_DIR=folder / "sealing",
        PORTAL_SEALING_ROOT_KEY_DIR=str(folder / "offline-media"),
        PORTAL_BASE_URL=f"http://127.0.0.1:{refused_port()}",
        **NO_LOCAL_CA_SETTINGS,
    ):
        clear_sealing_identity_cache()
        identity = load_sealing_identity()
        pdf = seal_a_receipt(identity)
        clear_sealing_identity_cache()
    (folder / "receipt.pdf").write_bytes(pdf)
    (folder / "root.pem").write_bytes(identity.root_pem)
    return SimpleNamespace(identity=identity, pdf=pdf, folder=folder)


# --- Where the keys are --------------------------------------------------------------------


def test_the_root_key_is_kept_apart_from_the_sealing_directory(sealing_dir: Path) -> None:
    identity = load_sealing_identity()

    assert sorted(path.name for path in sealing_dir.iterdir() if not path.name.startswith(".")) == [
        "root-ca.crl",
        "root-ca.pem",
        "seal.key",
        "seal.pem",
    ]
    root_keys = sealing_dir.with_name("sealing-root")
    kept = local_ca.root_key_path(root_keys, identity.root_pem)
    assert stat.S_IMODE(root_keys.stat().st_mode) == 0o700
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    root_key = serialization.load_pem_private_key(kept.read_bytes(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert root_key.public_key().public_bytes(*spki) == certificate(
        identity.root_pem
    ).public_key().public_bytes(*spki)
    # Nothing in the sealing directory opens with the root's key.
    for path in sealing_dir.glob("*.key"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert key.public_key().public_bytes(*spki) != root_key.public_key().public_bytes(*spki)


def test_the_root_key_goes_to_the_configured_folder(sealing_dir: Path, settings, tmp_path) -> None:
    settings.PORTAL_SEALING_ROOT_KEY_DIR = str(tmp_path / "offline-media")

    identity = load_sealing_identity()

    assert local_ca.root_key_path(tmp_path / "offline-media", identity.root_pem).exists()
    assert not sealing_dir.with_name("sealing-root").exists()


def test_an_empty_root_key_folder_keeps_the_root_key_nowhere(
    sealing_dir: Path, settings, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PORTAL_SEALING_ROOT_KEY_DIR = ""

    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        identity = load_sealing_identity()

    assert [path.name for path in tmp_path.rglob("*.key")] == ["seal.key"]
    assert "root key was not kept" in caplog.text
    report = inspect_receipt(seal_a_receipt(identity), trust_roots_pem=[identity.root_pem])
    assert report.problem == ""


def test_a_root_key_folder_inside_the_sealing_directory_is_refused(
    sealing_dir: Path, settings
) -> None:
    settings.PORTAL_SEALING_ROOT_KEY_DIR = str(sealing_dir / "root")

    with pytest.raises(ImproperlyConfigured, match="PORTAL_SEALING_ROOT_KEY_DIR"):
        load_sealing_identity()


# --- Validity and the CRL ------------------------------------------------------------------


def test_the_seal_lasts_three_years_and_the_root_ten(sealing_dir: Path) -> None:
    identity = load_sealing_identity()
    root, seal = certificate(identity.root_pem), certificate(identity.certificate_pem)

    def years(cert: x509.Certificate) -> float:
        return (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365.25

    assert round(years(seal), 1) == 3.0
    assert round(years(root), 1) == 10.0
    assert seal.not_valid_after_utc <= root.not_valid_after_utc


def test_the_root_signs_a_crl_the_seal_certificate_points_to(
    sealing_dir: Path, settings, client
) -> None:
    identity = load_sealing_identity()
    root, seal = certificate(identity.root_pem), certificate(identity.certificate_pem)

    points = seal.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for point in points for name in point.full_name] == [
        f"{settings.PORTAL_BASE_URL}/verify/sealing-root.crl"
    ]
    response = client.get("/verify/sealing-root.crl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.issuer == root.subject
    assert crl.is_signature_valid(root.public_key())
    assert crl.get_revoked_certificate_by_serial_number(seal.serial_number) is None
    # Long enough for every receipt the seal makes to be checked while the root lasts.
    assert crl.next_update_utc >= seal.not_valid_after_utc
    assert crl.next_update_utc == root.not_valid_after_utc


def test_a_configured_certificate_publishes_no_crl_here(sealing_dir: Path, settings, client):
    load_sealing_identity()
    settings.PORTAL_SEALING_KEY = str(sealing_dir / "seal.key")
    settings.PORTAL_SEALING_CERT = str(sealing_dir / "seal.pem")
    settings.PORTAL_SEALING_ROOT = str(sealing_dir / "root-ca.pem")

    assert client.get("/verify/sealing-root.crl").status_code == 404
    assert client.get("/verify/sealing-root.pem").status_code == 200


# --- Receipts validate offline, with revocation checking required --------------------------


def test_a_sealed_receipt_carries_the_crl_and_covers_the_whole_file(offline) -> None:
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(offline.pdf)))
    assert [crl.get_object().data for crl in dss.crls] == list(offline.identity.crls)
    report = inspect_receipt(offline.pdf, trust_roots_pem=[offline.identity.root_pem])
    assert report.problem == ""
    assert report.covers_whole_file


@pytest.mark.parametrize("revocation_mode", ["hard-fail", "require"])
def test_pyhanko_validates_a_receipt_offline_with_revocation_checking(
    offline, revocation_mode: str
) -> None:
    status = validate_offline(
        offline.pdf, offline.identity.root_pem, revocation_mode=revocation_mode
    )

    assert status.bottom_line, status.pretty_print_details()
    assert status.trusted and status.intact and status.valid
    assert status.coverage.name == "ENTIRE_FILE"


def test_pyhanko_rejects_the_receipt_once_the_root_revokes_its_seal(offline) -> None:
    root = certificate(offline.identity.root_pem)
    seal = certificate(offline.identity.certificate_pem)
    root_key = root_key_of(offline.identity, offline.folder / "offline-media")
    now = datetime.now(UTC)
    revoked = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now)
        .next_update(now + timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(seal.serial_number)
            .revocation_date(now - timedelta(days=1))
            .build()
        )
        .add_extension(x509.CRLNumber(2), False)
        .sign(root_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )

    status = validate_offline(
        offline.pdf, offline.identity.root_pem, revocation_mode="hard-fail", crls=[revoked]
    )

    assert not status.bottom_line
    assert not status.trusted


def run_pyhanko(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    if not PYHANKO_CLI.exists():
        pytest.skip("the pyhanko CLI (pyhanko-cli, a dev dependency) is not installed")
    return subprocess.run(
        [str(PYHANKO_CLI), *arguments], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_pyhanko_cli_validates_a_receipt_offline_requiring_revocation_info(offline) -> None:
    # `adesverify` requires revocation information for the seal and reads it from the
    # receipt's document security store; the CRL's address answers nothing here.
    result = run_pyhanko(
        "sign",
        "adesverify",
        "--trust",
        "root.pem",
        "--trust-replace",
        "--no-strict-syntax",
        "--executive-summary",
        "receipt.pdf",
        cwd=offline.folder,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(":VALID")


def test_the_pyhanko_cli_refuses_a_receipt_of_a_seal_without_revocation_info(
    sealing_dir: Path, settings
) -> None:
    # What receipts were before: a seal naming no CRL, none embedded. (An earlier release's CA
    # whose root key is not at hand keeps sealing that way, and says so in the log.)
    settings.PORTAL_SEALING_ROOT_KEY_DIR = ""
    write_legacy_ca(sealing_dir)
    identity = load_sealing_identity()
    (sealing_dir / "receipt.pdf").write_bytes(seal_a_receipt(identity))

    result = run_pyhanko(
        "sign",
        "adesverify",
        "--trust",
        "root-ca.pem",
        "--trust-replace",
        "--executive-summary",
        "receipt.pdf",
        cwd=sealing_dir,
    )

    assert result.returncode != 0
    assert result.stdout.strip().endswith(":INVALID")
    assert "no revocation information" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_pyhanko_cli_force_revinfo_fetches_the_portals_crl(
    sealing_dir: Path, settings, live_server, tmp_path
) -> None:
    # `validate --force-revinfo` does not read the document security store: it fetches the
    # CRL the seal certificate names, which the portal serves.
    settings.PORTAL_BASE_URL = live_server.url
    identity = load_sealing_identity()
    (tmp_path / "receipt.pdf").write_bytes(seal_a_receipt(identity))
    (tmp_path / "root.pem").write_bytes(identity.root_pem)

    result = run_pyhanko(
        "sign",
        "validate",
        "--force-revinfo",
        "--trust",
        "root.pem",
        "--trust-replace",
        "--no-strict-syntax",
        "--executive-summary",
        "receipt.pdf",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(":VALID")


def test_poppler_trusts_the_seal_under_the_portals_root(offline, tmp_path: Path) -> None:
    missing = [tool for tool in ("pdfsig", "certutil") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (poppler-utils, libnss3-tools)")
    nss = f"sql:{tmp_path}"
    subprocess.run(["certutil", "-N", "-d", nss, "--empty-password"], check=True)
    subprocess.run(
        [
            *("certutil", "-A", "-d", nss, "-n", "portal-root", "-t", ",C,", "-a", "-i"),
            str(offline.folder / "root.pem"),
        ],
        check=True,
    )
    output = subprocess.run(
        ["pdfsig", "-nssdir", nss, str(offline.folder / "receipt.pdf")],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout

    assert "Signature Field Name: PortalSeal" in output
    assert "Signature Validation: Signature is Valid." in output
    assert "Certificate Validation: Certificate is Trusted." in output
    assert "Total document signed" in output


# --- Renewal -------------------------------------------------------------------------------


def test_the_seal_is_renewed_before_it_expires_and_old_receipts_stay_genuine(
    sealing_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_sealing_identity()
    old_receipt = seal_a_receipt(first)
    expires = certificate(first.certificate_pem).not_valid_after_utc

    with time_machine.travel(expires - timedelta(days=100), tick=False):
        with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
            renewed = load_sealing_identity()
        new_receipt = seal_a_receipt(renewed)

    assert renewed.fingerprint != first.fingerprint
    assert renewed.root_pem == first.root_pem
    assert "Renewed the local sealing CA's seal certificate" in caplog.text
    seal = certificate(renewed.certificate_pem)
    assert seal.not_valid_after_utc > expires + timedelta(days=365 * 2)
    assert stat.S_IMODE((sealing_dir / "seal.key").stat().st_mode) == 0o600
    assert (
        x509.load_der_x509_crl(renewed.crls[0])
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == 2
    )

    # Past the first seal certificate's end: each receipt is judged as of its sealing.
    with time_machine.travel(expires + timedelta(days=1), tick=False):
        for pdf in (old_receipt, new_receipt):
            report = inspect_receipt(pdf, trust_roots_pem=[first.root_pem])
            assert report.problem == ""
            assert report.trusted


def test_without_the_root_key_the_seal_is_not_renewed_and_the_log_says_so(
    sealing_dir: Path, settings, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PORTAL_SEALING_ROOT_KEY_DIR = str(tmp_path / "offline-media")
    first = load_sealing_identity()
    shutil.move(tmp_path / "offline-media", tmp_path / "in-the-safe")  # taken offline
    expires = certificate(first.certificate_pem).not_valid_after_utc

    with (
        time_machine.travel(expires - timedelta(days=100), tick=False),
        caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"),
    ):
        still = load_sealing_identity()
        report = inspect_receipt(seal_a_receipt(still), trust_roots_pem=[first.root_pem])

    assert still.fingerprint == first.fingerprint
    assert report.problem == ""
    assert "should be renewed" in caplog.text
    assert f"expires on {expires:%Y-%m-%d}" in caplog.text

    # Brought back for the renewal, the root key renews it.
    shutil.move(tmp_path / "in-the-safe", tmp_path / "offline-media")
    with time_machine.travel(expires - timedelta(days=99), tick=False):
        assert load_sealing_identity().fingerprint != first.fingerprint


# --- A CA made by an earlier release -------------------------------------------------------


def write_legacy_ca(directory: Path, company: str = "Voipkonnec") -> None:
    """What releases before this one made: the root key beside the seal key, a 30-year root,
    a 20-year seal naming no CRL, and no CRL at all."""
    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    seal_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(
                x509.NameOID.COMMON_NAME, f"{company} Policy Portal local sealing root"
            )
        ]
    )
    usage = dict.fromkeys(
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
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**{**usage, "key_cert_sign": True, "crl_sign": True}), critical=True
        )
        .sign(root_key, hashes.SHA256())
    )
    seal = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(
                        x509.NameOID.COMMON_NAME, f"{company} Policy Portal receipt seal"
                    )
                ]
            )
        )
        .issuer_name(root_name)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * 20))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**{**usage, "digital_signature": True, "content_commitment": True}),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )

    def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    directory.mkdir(mode=0o700, parents=True)
    (directory / "root-ca.key").write_bytes(pem(root_key))
    (directory / "root-ca.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / "seal.key").write_bytes(pem(seal_key))
    (directory / "seal.pem").write_bytes(seal.public_bytes(serialization.Encoding.PEM))


def test_a_legacy_root_key_is_moved_out_and_the_seal_brought_up_to_date(
    sealing_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_legacy_ca(sealing_dir)
    root_pem = (sealing_dir / "root-ca.pem").read_bytes()
    legacy_key = (sealing_dir / "root-ca.key").read_bytes()
    legacy_seal = (sealing_dir / "seal.pem").read_bytes()

    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        identity = load_sealing_identity()

    assert not (sealing_dir / "root-ca.key").exists()
    moved = local_ca.root_key_path(sealing_dir.with_name("sealing-root"), root_pem)
    assert moved.read_bytes() == legacy_key
    assert "Moved the local sealing CA's root key" in caplog.text
    assert identity.root_pem == root_pem  # the same root: earlier receipts still chain to it
    assert identity.certificate_pem != legacy_seal
    seal = certificate(identity.certificate_pem)
    assert (seal.not_valid_after_utc - seal.not_valid_before_utc).days <= 3 * 366
    assert identity.crls and (sealing_dir / "root-ca.crl").exists()
    status = validate_offline(seal_a_receipt(identity), root_pem, revocation_mode="require")
    assert status.bottom_line, status.pretty_print_details()


def test_a_legacy_root_key_stays_with_a_warning_when_none_is_to_be_kept(
    sealing_dir: Path, settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.PORTAL_SEALING_ROOT_KEY_DIR = ""
    write_legacy_ca(sealing_dir)
    legacy_seal = (sealing_dir / "seal.pem").read_bytes()

    with caplog.at_level(logging.WARNING, logger="acknowledgements.receipts"):
        identity = load_sealing_identity()
        report = inspect_receipt(seal_a_receipt(identity), trust_roots_pem=[identity.root_pem])

    assert (sealing_dir / "root-ca.key").exists()
    assert "still in the sealing directory" in caplog.text
    assert "delete it from the server" in caplog.text
    assert identity.certificate_pem == legacy_seal  # still sealing, as before
    assert report.problem == ""
