"""API tokens may be scoped to the read API."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0023_ledger_checkpoints")]

    operations = [
        migrations.AlterField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("scim", "SCIM provisioning"), ("read", "Read API")],
                default="scim",
                max_length=20,
                verbose_name="scope",
            ),
        ),
    ]
