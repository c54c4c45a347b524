"""A revision's translation carries the policy's name in its language.

Existing translations get a blank name, shown as the policy's English name. Adding the column
fires no row trigger, so the frozen translations of published revisions (0008) stay as they
are; a new translation's name is written with it, in the INSERT the triggers allow.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0021_email_claims")]

    operations = [
        migrations.AddField(
            model_name="revisiontranslation",
            name="title",
            field=models.CharField(blank=True, max_length=200, verbose_name="policy name"),
        ),
    ]
