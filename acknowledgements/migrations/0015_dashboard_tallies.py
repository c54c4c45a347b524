"""The dashboard's run standings, tallies and audience keys, filled from the evidence already
recorded (standings/tallies.py, once run_standings.py)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def fill(apps, schema_editor):
    """Nothing now: 0020_scope_history fills the tallies, from the memberships it adds."""


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0014_fewer_write_indexes"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.CreateModel(
            name="CoverageTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("audience_key", models.TextField()),
                ("slot", models.DateTimeField()),
                ("people", models.IntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="RunStanding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("audience_key", models.TextField()),
                ("active", models.BooleanField()),
                ("joined", models.DateTimeField()),
                ("signed_at", models.DateTimeField(null=True)),
                ("declined_at", models.DateTimeField(null=True)),
            ],
        ),
        migrations.AddField(
            model_name="user",
            name="audience_key",
            field=models.TextField(default="", editable=False),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(
                condition=models.Q(("is_active", True)),
                fields=["audience_key", "date_joined"],
                name="active_person_census",
            ),
        ),
        migrations.AddField(
            model_name="coveragetally",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="acknowledgements.policyrevision",
            ),
        ),
        migrations.AddField(
            model_name="runstanding",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="runstanding",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="acknowledgements.policyrevision",
            ),
        ),
        migrations.AddConstraint(
            model_name="coveragetally",
            constraint=models.UniqueConstraint(
                fields=("run", "audience_key", "slot"), name="one_tally_per_run_audiences_and_slot"
            ),
        ),
        migrations.AddIndex(
            model_name="runstanding",
            index=models.Index(fields=["run", "signed_at"], name="run_standing_signed"),
        ),
        migrations.AddIndex(
            model_name="runstanding",
            index=models.Index(fields=["run", "joined"], name="run_standing_joined"),
        ),
        migrations.AddIndex(
            model_name="runstanding",
            index=models.Index(
                condition=models.Q(("declined_at__isnull", False)),
                fields=["run"],
                name="run_standing_declined",
            ),
        ),
        migrations.AddConstraint(
            model_name="runstanding",
            constraint=models.UniqueConstraint(
                fields=("person", "run"), name="one_standing_per_person_and_run"
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
