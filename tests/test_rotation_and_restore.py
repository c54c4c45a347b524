"""Operations that must keep old evidence valid: rotating the sealing root, restoring a backup."""

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from django.db import connection

from acknowledgements.models import Receipt
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import verification
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
