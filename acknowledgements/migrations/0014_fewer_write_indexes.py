"""Indexes that only slowed writes: every signature updated them, no query needed them.

- The person and revision foreign keys of acknowledgements, and the person of ledger entries,
  lead other indexes already (the unique person and revision pair, the coverage index,
  ledger_person_kind), which serve every lookup the single-column ones did.
- On PostgreSQL Django adds a `varchar_pattern_ops` copy of each unique text column's index
  for LIKE searches; nothing searches receipt numbers or row hashes by prefix.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The names Django gave them (table, column and a hash of both: the same on every database).
PATTERN_INDEXES = {
    "acknowledgements_acknowledgement_receipt_number_a17ea1f2_like": (
        "acknowledgements_acknowledgement",
        "receipt_number",
    ),
    "acknowledgements_ledgerentry_row_hash_54565779_like": (
        "acknowledgements_ledgerentry",
        "row_hash",
    ),
}


def drop_pattern_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in PATTERN_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def restore_pattern_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, (table, column) in PATTERN_INDEXES.items():
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(name)} ON "
                f"{schema_editor.quote_name(table)} ({schema_editor.quote_name(column)} "
                "varchar_pattern_ops)"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0013_report_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="acknowledgement",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="acknowledgements",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="acknowledgement",
            name="revision",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="acknowledgements",
                to="acknowledgements.policyrevision",
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="evidence",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(drop_pattern_indexes, restore_pattern_indexes),
    ]
