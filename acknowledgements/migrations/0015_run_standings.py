"""The dashboard's run standings and audience keys, filled from the evidence already recorded."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from acknowledgements import run_standings


def fill(apps, schema_editor):
    run_standings.rebuild(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0014_fewer_write_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="audience_key",
            field=models.TextField(default="", editable=False),
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
                (
                    "person",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="acknowledgements.policyrevision",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=[
                            "run",
                            "active",
                            "audience_key",
                            "joined",
                            "signed_at",
                            "declined_at",
                        ],
                        name="run_standing_census",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("person", "run"), name="one_standing_per_person_and_run"
                    )
                ],
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
