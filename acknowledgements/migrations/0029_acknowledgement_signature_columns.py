"""The values a signature's payload shows, as columns of its Acknowledgement (filled by 0030,
required by 0031)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0028_escalations"),
    ]

    operations = [
        migrations.AddField(
            model_name="acknowledgement",
            name=name,
            field=models.TextField(null=True),
        )
        for name in (
            "email_at_signing",
            "name_at_signing",
            "authentication_method",
            "ip_sha256",
            "ip_shown",
            "user_agent_sha256",
            "user_agent_shown",
        )
    ]
