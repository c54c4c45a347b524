from django.db import OperationalError, connection

from acknowledgements.receipts import authority as receipt_authority


def test_healthz_answers_without_the_database(client):
    def unreachable(execute, sql, params, many, context):
        raise OperationalError("down")

    with connection.execute_wrapper(unreachable):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_ready(db, client):
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
