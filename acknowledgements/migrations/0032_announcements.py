"""Each revision's announcement records that its emails were queued, so that one whose task was
lost can be queued again. Revisions published before count as announced: their emails were
queued then, or their task is still waiting in the queue and will queue them."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.db.models import F, Q


def announced_before(apps, schema_editor):
    PolicyRevision = apps.get_model("acknowledgements", "PolicyRevision")
    Announcement = apps.get_model("acknowledgements", "Announcement")
    announced = PolicyRevision.objects.filter(status="published").filter(
        Q(change="material") | Q(announce=True)
    )
    Announcement.objects.bulk_create(
        Announcement(revision_id=pk, queued_at=published_at)
        for pk, published_at in announced.values_list("pk", F("published_at"))
    )


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0031_signature_columns_required"),
    ]

    operations = [
        migrations.CreateModel(
            name="Announcement",
            fields=[
                (
                    "revision",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        primary_key=True,
                        related_name="announcement",
                        serialize=False,
                        to="acknowledgements.policyrevision",
                    ),
                ),
                ("queued_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunPython(announced_before, migrations.RunPython.noop),
    ]
