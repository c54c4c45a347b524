"""Ledger entries are linked into the hash chain just after they are committed.

The chain columns (sequence, previous hash, row hash) become nullable: an entry is inserted
without them and `ledger.link_pending` fills them in, in batches, moments later. On
PostgreSQL the ledger's trigger now allows exactly that one change (an unlinked row receiving
its three chain columns, every other column unchanged) and still refuses any other UPDATE,
every DELETE and TRUNCATE. A linked row can never change again.
"""

from django.db import migrations, models

TABLE = "acknowledgements_ledgerentry"

FORWARD = f"""
CREATE OR REPLACE FUNCTION portal_ledger_link_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.sequence IS NULL AND OLD.previous_hash IS NULL AND OLD.row_hash IS NULL
        AND NEW.sequence IS NOT NULL AND NEW.previous_hash IS NOT NULL
        AND NEW.row_hash IS NOT NULL
        AND (NEW.id, NEW.kind, NEW.person_id, NEW.actor_id, NEW.revision_id, NEW.recorded_at,
             NEW.payload, NEW.payload_sha256)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.kind, OLD.person_id, OLD.actor_id, OLD.revision_id, OLD.recorded_at,
             OLD.payload, OLD.payload_sha256)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'portal: % on % is not allowed: evidence is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER {TABLE}_no_change ON {TABLE};
CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION portal_ledger_link_only();
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_no_change;
"""

BACKWARD = f"""
DROP TRIGGER {TABLE}_no_change ON {TABLE};
CREATE TRIGGER {TABLE}_no_change BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_change();
ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_no_change;
DROP FUNCTION IF EXISTS portal_ledger_link_only();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0008_translation_triggers")]

    operations = [
        migrations.AlterModelOptions(
            name="ledgerentry",
            options={
                "ordering": ["id"],
                "verbose_name": "ledger entry",
                "verbose_name_plural": "ledger entries",
            },
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="previous_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="row_hash",
            field=models.CharField(max_length=64, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="sequence",
            field=models.PositiveBigIntegerField(null=True, unique=True),
        ),
        migrations.RunPython(install, uninstall),
    ]
