"""The portal's application role owns nothing: it cannot switch the triggers off, change or
delete evidence, or truncate a table, and it can still do the portal's work (PostgreSQL)."""

import uuid

import psycopg2
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from acknowledgements.evidence import ledger
from acknowledgements.models import LedgerEntry

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_role(evidence_db):
    """A fresh application role with the rights grant_app_role gives, and a connection as it."""
    role = f"portal_app_{uuid.uuid4().hex[:8]}"
    call_command("grant_app_role", role, "--password", "app-secret", verbosity=0)
    settings = connection.settings_dict
    as_app = psycopg2.connect(
        dbname=settings["NAME"],
        user=role,
        password="app-secret",
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
    )
    as_app.autocommit = True
    yield as_app
    as_app.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def entry(evidence_db):
    from django.db import transaction

    with transaction.atomic():
        recorded = ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"n": 1})
    ledger.link_pending()
    return recorded


def refused(as_app, statement: str) -> str:
    with as_app.cursor() as cursor, pytest.raises(psycopg2.Error) as raised:
        cursor.execute(statement)
    return raised.value.pgerror or str(raised.value)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE acknowledgements_ledgerentry DISABLE TRIGGER ALL",
        "ALTER TABLE acknowledgements_acknowledgement DISABLE TRIGGER acknowledgements_acknowledgement_no_change",
        "DROP TRIGGER acknowledgements_ledgerentry_no_change ON acknowledgements_ledgerentry",
        "TRUNCATE acknowledgements_ledgerentry",
        "TRUNCATE acknowledgements_user",
        "UPDATE acknowledgements_ledgerentry SET payload = '\\x00'",
        "UPDATE acknowledgements_ledgerentry SET payload_sha256 = repeat('0', 64)",
        "DELETE FROM acknowledgements_ledgerentry",
        "DELETE FROM acknowledgements_acknowledgement",
        "UPDATE acknowledgements_receipt SET sha256 = repeat('0', 64)",
        "UPDATE acknowledgements_clientdetails SET ip = '10.0.0.1'",
        "SET session_replication_role = replica",
        "CREATE TABLE acknowledgements_shadow (id int)",
    ],
)
def test_the_application_role_cannot_touch_evidence_or_the_schema(app_role, entry, statement):
    assert "denied" in refused(app_role, statement) or "must be owner" in refused(
        app_role, statement
    )


def test_the_application_role_does_the_portal_s_work(app_role, entry):
    with app_role.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM acknowledgements_ledgerentry")
        assert cursor.fetchone()[0] >= 1
        cursor.execute(
            "UPDATE acknowledgements_user SET full_name = full_name WHERE id = -1"
        )  # ordinary tables: read and write
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('acknowledgements_ledgerentry', 'id'))"
        )
        # Linking columns may be written (the triggers still let a row be linked only once).
        cursor.execute("UPDATE acknowledgements_ledgerentry SET sequence = sequence WHERE id = -1")
        cursor.execute("DELETE FROM acknowledgements_clientdetails WHERE ledger_entry_id = -1")


def test_a_superuser_or_the_owner_is_refused_as_application_role(evidence_db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
    with pytest.raises(CommandError, match="owns the tables"):
        call_command("grant_app_role", owner)
    with pytest.raises(CommandError, match="There is no role"):
        call_command("grant_app_role", "portal_nobody_here")
