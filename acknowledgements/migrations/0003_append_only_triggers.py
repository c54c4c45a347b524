"""On PostgreSQL, the database itself refuses to change evidence.

Ledger entries, acknowledgements and receipts refuse UPDATE, DELETE and TRUNCATE; a policy
revision refuses them once published (a draft can still be edited or deleted), and so does
the list of audiences of a published revision. The triggers are ENABLED ALWAYS so that
`SET session_replication_role = replica` does not silently bypass them. SQLite has no such
triggers here: there the application's own rules hold.
"""

from django.db import migrations

APPEND_ONLY_TABLES = [
    "acknowledgements_ledgerentry",
    "acknowledgements_acknowledgement",
    "acknowledgements_receipt",
]

FORWARD = """
CREATE OR REPLACE FUNCTION portal_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'portal: % on % is not allowed: evidence is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION portal_refuse_published_revision_change() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'published' THEN
        RAISE EXCEPTION 'portal: % of published revision % is not allowed', TG_OP, OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION portal_refuse_published_audience_change() RETURNS trigger AS $$
DECLARE
    revision_id bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN revision_id := NEW.policyrevision_id;
    ELSE revision_id := OLD.policyrevision_id; END IF;
    IF EXISTS (SELECT 1 FROM acknowledgements_policyrevision
               WHERE id = revision_id AND status = 'published') THEN
        RAISE EXCEPTION 'portal: the audiences of published revision % cannot change', revision_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS portal_refuse_change() CASCADE;
DROP FUNCTION IF EXISTS portal_refuse_published_revision_change() CASCADE;
DROP FUNCTION IF EXISTS portal_refuse_published_audience_change() CASCADE;
"""


def _triggers() -> list[str]:
    statements = []
    for table in APPEND_ONLY_TABLES:
        statements += [
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION portal_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change()",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_change",
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate",
        ]
    revisions = "acknowledgements_policyrevision"
    audiences = "acknowledgements_policyrevision_audiences"
    statements += [
        f"CREATE TRIGGER {revisions}_frozen BEFORE UPDATE OR DELETE ON {revisions} "
        f"FOR EACH ROW EXECUTE FUNCTION portal_refuse_published_revision_change()",
        f"CREATE TRIGGER {revisions}_no_truncate BEFORE TRUNCATE ON {revisions} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change()",
        f"ALTER TABLE {revisions} ENABLE ALWAYS TRIGGER {revisions}_frozen",
        f"ALTER TABLE {revisions} ENABLE ALWAYS TRIGGER {revisions}_no_truncate",
        f"CREATE TRIGGER {audiences}_frozen BEFORE INSERT OR UPDATE OR DELETE ON {audiences} "
        f"FOR EACH ROW EXECUTE FUNCTION portal_refuse_published_audience_change()",
        f"ALTER TABLE {audiences} ENABLE ALWAYS TRIGGER {audiences}_frozen",
    ]
    return statements


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FORWARD, params=None)
    for statement in _triggers():
        schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0002_roles_and_audiences")]

    operations = [migrations.RunPython(install, uninstall)]
