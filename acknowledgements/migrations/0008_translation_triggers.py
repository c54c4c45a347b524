"""PostgreSQL refuses to change or delete the translation of a published revision."""

from django.db import migrations

TABLE = "acknowledgements_revisiontranslation"

FORWARD = f"""
CREATE OR REPLACE FUNCTION portal_refuse_published_translation_change() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM acknowledgements_policyrevision
               WHERE id = OLD.revision_id AND status = 'published') THEN
        RAISE EXCEPTION 'portal: % of a published translation is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER {TABLE}_frozen BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_published_translation_change();
CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change();
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_frozen;
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_no_truncate;
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {TABLE}_frozen ON {TABLE};
DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE};
DROP FUNCTION IF EXISTS portal_refuse_published_translation_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0007_revision_translations")]

    operations = [migrations.RunPython(install, uninstall)]
