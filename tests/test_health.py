import io

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection

from acknowledgements.receipts import authority as receipt_authority


def test_healthz_answers_without_the_database(client):
    def unreachable(execute, sql, params, many, context):
        raise OperationalError("down")

    with connection.execute_wrapper(unreachable):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_ready(enforced_triggers, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "problems": []}


def test_readyz_is_503_when_the_database_is_unreachable(db, client):
    def unreachable(execute, sql, params, many, context):
        raise OperationalError("down")

    with connection.execute_wrapper(unreachable):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "database unreachable" in response.json()["problems"]


def test_readyz_is_503_when_the_sealing_key_cannot_be_loaded(db, client, settings, tmp_path):

    missing = tmp_path / "missing.pem"
    settings.PORTAL_SEALING_KEY = str(missing)
    settings.PORTAL_SEALING_CERT = str(missing)
    settings.PORTAL_SEALING_ROOT = str(missing)
    receipt_authority.clear_sealing_identity_cache()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["sealing key not loadable"]


@pytest.mark.postgres
def test_readyz_is_503_when_the_evidence_triggers_no_longer_fire_always(enforced_triggers, client):
    # A routine maintenance step: every trigger switched off, then on again (ENABLE, which
    # fires only in origin sessions; replication sessions would then delete evidence freely).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE acknowledgements_ledgerentry DISABLE TRIGGER ALL")
        cursor.execute("ALTER TABLE acknowledgements_ledgerentry ENABLE TRIGGER ALL")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == [
        "evidence protection weakened: trigger acknowledgements_ledgerentry_no_change on "
        "acknowledgements_ledgerentry is ENABLE (fires only in origin sessions), not ENABLE ALWAYS",
        "evidence protection weakened: trigger acknowledgements_ledgerentry_no_truncate on "
        "acknowledgements_ledgerentry is ENABLE (fires only in origin sessions), not ENABLE ALWAYS",
    ]
    errors = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("verify_ledger", stdout=io.StringIO(), stderr=errors)
    assert "acknowledgements_ledgerentry_no_change" in errors.getvalue()
