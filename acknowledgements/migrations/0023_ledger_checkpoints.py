"""The ledger as a transparency log: stored tree nodes and signed checkpoints.

Both tables are evidence. On PostgreSQL a tree node can never change or go; a checkpoint can
only receive, once, its timestamp token and the time it was sent to the witnesses. TRUNCATE is
refused on both. The triggers fire ALWAYS, like the ledger's (evidence/protection.py checks).
The first checkpoint, made by the next link task, builds the nodes of an existing ledger.
"""

import django.utils.timezone
from django.db import migrations, models

NODES = "acknowledgements_ledgertreenode"
CHECKPOINTS = "acknowledgements_ledgercheckpoint"

FORWARD = f"""
CREATE OR REPLACE FUNCTION portal_checkpoint_annotate_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND (NEW.id, NEW.tree_size, NEW.root_hash, NEW.note, NEW.created_at)
            IS NOT DISTINCT FROM (OLD.id, OLD.tree_size, OLD.root_hash, OLD.note, OLD.created_at)
        AND (OLD.timestamp_token IS NULL OR NEW.timestamp_token IS NOT DISTINCT FROM OLD.timestamp_token)
        AND (OLD.witnessed_at IS NULL OR NEW.witnessed_at IS NOT DISTINCT FROM OLD.witnessed_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'portal: % on % is not allowed: evidence is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER {NODES}_no_change BEFORE UPDATE OR DELETE ON {NODES}
    FOR EACH ROW EXECUTE FUNCTION portal_refuse_change();
CREATE TRIGGER {NODES}_no_truncate BEFORE TRUNCATE ON {NODES}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change();
CREATE TRIGGER {CHECKPOINTS}_no_change BEFORE UPDATE OR DELETE ON {CHECKPOINTS}
    FOR EACH ROW EXECUTE FUNCTION portal_checkpoint_annotate_only();
CREATE TRIGGER {CHECKPOINTS}_no_truncate BEFORE TRUNCATE ON {CHECKPOINTS}
    FOR EACH STATEMENT EXECUTE FUNCTION portal_refuse_change();
ALTER TABLE {NODES} ENABLE ALWAYS TRIGGER {NODES}_no_change;
ALTER TABLE {NODES} ENABLE ALWAYS TRIGGER {NODES}_no_truncate;
ALTER TABLE {CHECKPOINTS} ENABLE ALWAYS TRIGGER {CHECKPOINTS}_no_change;
ALTER TABLE {CHECKPOINTS} ENABLE ALWAYS TRIGGER {CHECKPOINTS}_no_truncate;
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {NODES}_no_change ON {NODES};
DROP TRIGGER IF EXISTS {NODES}_no_truncate ON {NODES};
DROP TRIGGER IF EXISTS {CHECKPOINTS}_no_change ON {CHECKPOINTS};
DROP TRIGGER IF EXISTS {CHECKPOINTS}_no_truncate ON {CHECKPOINTS};
DROP FUNCTION IF EXISTS portal_checkpoint_annotate_only();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0022_translation_title")]

    operations = [
        migrations.CreateModel(
            name="LedgerCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tree_size", models.PositiveBigIntegerField(unique=True)),
                ("root_hash", models.CharField(max_length=64)),
                ("note", models.TextField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("timestamp_token", models.BinaryField(blank=True, null=True)),
                ("witnessed_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"verbose_name": "ledger checkpoint", "ordering": ["-tree_size"]},
        ),
        migrations.CreateModel(
            name="LedgerTreeNode",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("level", models.PositiveSmallIntegerField()),
                ("index", models.PositiveBigIntegerField()),
                ("hash", models.BinaryField(max_length=32)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("level", "index"), name="one_tree_node_per_place"
                    )
                ]
            },
        ),
        migrations.RunPython(install, uninstall),
    ]
