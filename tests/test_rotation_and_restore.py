"""Operations that must keep old evidence valid: renewing the seal, rotating the sealing root,
restoring a backup."""

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest
import time_machine
from cryptography import x509
from django.db import connection

from acknowledgements.models import Receipt
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import local_ca, verification
from tests.test_deployment import ROOT, _environment

SEALING = ["PORTAL_SEALING_KEY", "PORTAL_SEALING_CERT", "PORTAL_SEALING_ROOT"]


def stored_receipt() -> bytes:
    with Receipt.objects.get().pdf.open("rb") as pdf:
        return pdf.read()


@pytest.fixture
def receipt_then_new_root(
    settings, tmp_path, signer, revision, sign, django_capture_on_commit_callbacks
):
    """A receipt sealed under the current root, then the portal moved to a new root."""
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    old_root = tmp_path / "old-root.pem"
    old_root.write_bytes(receipt_authority.load_sealing_identity().root_pem)
    for name in SEALING:
        setattr(settings, name, "")
    settings.PORTAL_SEALING_DIR = tmp_path / "new-ca"
    receipt_authority.clear_sealing_identity_cache()
    yield old_root
    receipt_authority.clear_sealing_identity_cache()


def test_after_a_root_rotation_old_receipts_fail_unless_the_old_root_stays_trusted(
    settings, receipt_then_new_root
):
    assert not verification.verify_receipt(stored_receipt()).genuine

    settings.PORTAL_SEALING_FORMER_ROOTS = [str(receipt_then_new_root)]
    assert verification.verify_receipt(stored_receipt()).genuine


@pytest.fixture
def own_local_ca(settings, tmp_path):
    """A local CA of this test's own, its root key in a folder of its own."""
    for name in SEALING:
        setattr(settings, name, "")
    settings.PORTAL_SEALING_DIR = tmp_path / "sealing"
    settings.PORTAL_SEALING_ROOT_KEY_DIR = str(tmp_path / "root-keys")
    receipt_authority.clear_sealing_identity_cache()
    yield tmp_path
    receipt_authority.clear_sealing_identity_cache()


def test_a_renewed_seal_keeps_earlier_receipts_genuine_after_the_old_one_expires(
    own_local_ca, signer, make_person, revision, sign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    first = receipt_authority.load_sealing_identity()
    earlier = Receipt.objects.get()
    expires = x509.load_pem_x509_certificate(first.certificate_pem).not_valid_after_utc

    # The renewal window opens: the next use renews the seal with the root key at hand.
    with time_machine.travel(expires - timedelta(days=90), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            sign(make_person("Grace Hopper", email="grace@example.com"), revision)
        later = Receipt.objects.exclude(pk=earlier.pk).get()
        renewed = receipt_authority.load_sealing_identity()

    assert renewed.fingerprint != first.fingerprint
    assert earlier.seal_fingerprint == first.fingerprint
    assert later.seal_fingerprint == renewed.fingerprint
    with time_machine.travel(expires + timedelta(days=30), tick=False):
        for receipt in (earlier, later):
            with receipt.pdf.open("rb") as pdf:
                verdict = verification.verify_receipt(pdf.read())
            assert verdict.genuine, [c for c in verdict.checks if not c.passed]


def test_a_new_root_keeps_its_key_beside_the_former_one_and_old_receipts_verify(
    own_local_ca, settings, signer, revision, sign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign(signer, revision)
    old = receipt_authority.load_sealing_identity()
    (own_local_ca / "old-root.pem").write_bytes(old.root_pem)

    # The documented rotation: a new sealing folder, the old root listed as a former one.
    settings.PORTAL_SEALING_DIR = own_local_ca / "sealing-2"
    settings.PORTAL_SEALING_FORMER_ROOTS = [str(own_local_ca / "old-root.pem")]
    receipt_authority.clear_sealing_identity_cache()
    new = receipt_authority.load_sealing_identity()

    assert new.root_pem != old.root_pem
    root_keys = own_local_ca / "root-keys"
    for identity in (old, new):
        assert local_ca.root_key_path(root_keys, identity.root_pem).exists()
    assert verification.verify_receipt(stored_receipt()).genuine


@pytest.mark.postgres
@pytest.mark.skipif(not shutil.which("pg_dump"), reason="needs pg_dump and pg_restore")
def test_a_restored_backup_verifies_and_keeps_its_triggers(
    evidence_db, signer, revision, sign, tmp_path
):
    sign(signer, revision)
    database = connection.settings_dict
    dump = tmp_path / "portal.dump"
    address = [
        "--host",
        database["HOST"],
        "--port",
        str(database["PORT"]),
        "--username",
        database["USER"],
    ]
    subprocess.run(
        ["pg_dump", *address, "--format=custom", f"--file={dump}", database["NAME"]], check=True
    )
    restored = f"{database['NAME']}_restored"
    admin = psycopg2.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(
            ["pg_restore", *address, "--no-owner", f"--dbname={restored}", str(dump)], check=True
        )
        environment = _environment()
        environment["DATABASE_URL"] = environment["DATABASE_URL"].rsplit("/", 1)[0] + f"/{restored}"
        result = subprocess.run(
            [sys.executable, "manage.py", "verify_ledger"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("Ledger intact:")
        with (
            psycopg2.connect(
                host=database["HOST"], port=database["PORT"], user=database["USER"], dbname=restored
            ) as restored_db,
            restored_db.cursor() as cursor,
        ):
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'A'"
            )
            assert cursor.fetchone()[0] == 0  # every trigger still ENABLE ALWAYS
        restored_db.close()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
        admin.close()
    assert Path(dump).stat().st_size > 0
