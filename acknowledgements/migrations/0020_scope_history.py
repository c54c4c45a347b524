"""Audience membership history and the dashboard's audience spans.

Every present membership is taken to have begun when the person joined (the best that is
known), and a leaver's to have ended on their leaving date; the spans and tallies are then
rebuilt from them (standings/tallies.py).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from acknowledgements.standings import tallies


def fill(apps, schema_editor):
    User, Membership = (
        apps.get_model("acknowledgements", "User"),
        apps.get_model("acknowledgements", "Membership"),
    )
    people = {
        pk: (joined, None if active else (left_at or joined))
        for pk, joined, active, left_at in User.objects.values_list(
            "pk", "date_joined", "is_active", "left_at"
        )
    }
    Membership.objects.bulk_create(
        (
            Membership(
                person_id=person_id,
                audience_id=audience_id,
                began_at=people[person_id][0],
                ended_at=people[person_id][1],
                begun_by="migration",
                ended_by="migration" if people[person_id][1] else "",
            )
            for person_id, audience_id in User.audiences.through.objects.values_list(
                "user_id", "audience_id"
            ).iterator(chunk_size=10_000)
        ),
        batch_size=5_000,
    )
    tallies.rebuild(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0019_scim_tokens"),
    ]

    operations = [
        migrations.CreateModel(
            name="AudienceSpan",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("audience_key", models.TextField()),
                ("start", models.DateTimeField()),
                ("end", models.DateTimeField(null=True)),
                ("joined", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="Membership",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("began_at", models.DateTimeField()),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                ("begun_by", models.CharField(blank=True, max_length=300)),
                ("ended_by", models.CharField(blank=True, max_length=300)),
            ],
            options={
                "ordering": ["began_at", "pk"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="coveragetally",
            name="one_tally_per_run_audiences_and_slot",
        ),
        migrations.RemoveIndex(
            model_name="runstanding",
            name="run_standing_joined",
        ),
        migrations.RemoveIndex(
            model_name="user",
            name="active_person_census",
        ),
        migrations.AddField(
            model_name="coveragetally",
            name="at",
            field=models.DateTimeField(default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="notification",
            name="kind",
            field=models.CharField(
                choices=[
                    ("announcement", "New revision to sign"),
                    ("minor_notice", "Minor revision notice"),
                    ("reminder", "Reminder before the due date"),
                    ("overdue", "Overdue notice"),
                    ("in_scope", "Now applies to you"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddConstraint(
            model_name="coveragetally",
            constraint=models.UniqueConstraint(
                fields=("run", "audience_key", "slot", "at"),
                name="one_tally_per_run_audiences_slot_and_moment",
            ),
        ),
        migrations.AddField(
            model_name="audiencespan",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="audience",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to="acknowledgements.audience",
            ),
        ),
        migrations.AddField(
            model_name="membership",
            name="person",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="memberships",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RemoveField(
            model_name="runstanding",
            name="active",
        ),
        migrations.RemoveField(
            model_name="runstanding",
            name="audience_key",
        ),
        migrations.RemoveField(
            model_name="runstanding",
            name="joined",
        ),
        migrations.RemoveField(
            model_name="user",
            name="audience_key",
        ),
        migrations.AddIndex(
            model_name="audiencespan",
            index=models.Index(fields=["person", "start"], name="audience_span_by_person"),
        ),
        migrations.AddIndex(
            model_name="audiencespan",
            index=models.Index(fields=["start"], name="audience_span_by_start"),
        ),
        migrations.AddIndex(
            model_name="audiencespan",
            index=models.Index(
                condition=models.Q(("end__isnull", False)),
                fields=["end"],
                name="closed_audience_span",
            ),
        ),
        migrations.AddIndex(
            model_name="audiencespan",
            index=models.Index(
                condition=models.Q(("end__isnull", True)),
                fields=["audience_key", "start", "joined"],
                name="open_audience_span",
            ),
        ),
        migrations.AddIndex(
            model_name="membership",
            index=models.Index(
                fields=["person", "audience", "began_at"], name="membership_by_person"
            ),
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.UniqueConstraint(
                condition=models.Q(("ended_at__isnull", True)),
                fields=("person", "audience"),
                name="one_open_membership_per_person_and_audience",
            ),
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("ended_at__isnull", True),
                    ("ended_at__gte", models.F("began_at")),
                    _connector="OR",
                ),
                name="membership_ends_after_it_begins",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
