"""PostgreSQL refuses to change a kept IP address or user agent: it may only be deleted.

Deleting is what retention does (services.redact_client_details, which records it in the
ledger); rewriting a value would not break the chain but would make the evidence lie until
someone checked it against its commitment, so the database refuses it outright.
"""

from django.db import migrations

TABLE = "acknowledgements_clientdetails"

FORWARD = f"""
CREATE OR REPLACE FUNCTION portal_refuse_client_details_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'portal: UPDATE on % is not allowed: client details can only be deleted',
        TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_client_details_change();
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_no_update;
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {TABLE}_no_update ON {TABLE};
DROP FUNCTION IF EXISTS portal_refuse_client_details_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0010_client_details")]

    operations = [migrations.RunPython(install, uninstall)]
