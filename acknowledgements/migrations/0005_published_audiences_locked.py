"""Close two gaps around the audiences of published revisions (PostgreSQL).

TRUNCATE of the revision-audience table was not refused, and an UPDATE could move a row
into a published revision (only the old row was checked).
"""

from django.db import migrations

TABLE = "acknowledgements_policyrevision_audiences"

FORWARD = f"""
CREATE OR REPLACE FUNCTION portal_refuse_published_audience_change() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM acknowledgements_policyrevision
        WHERE status = 'published' AND id IN (
            CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.policyrevision_id END,
            CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.policyrevision_id END
        )
    ) THEN
        RAISE EXCEPTION 'portal: the audiences of a published revision cannot change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change();
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_no_truncate;
"""

BACKWARD = f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE};"


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0004_publishing_and_notifications")]

    operations = [migrations.RunPython(install, uninstall)]
