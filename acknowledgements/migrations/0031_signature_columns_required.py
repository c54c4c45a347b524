"""Every acknowledgement shows its payload: once 0030 filled the columns, a row written without
them is refused."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("acknowledgements", "0030_fill_signature_columns"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="acknowledgement",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    authentication_method__isnull=False,
                    email_at_signing__isnull=False,
                    name_at_signing__isnull=False,
                ),
                name="acknowledgement_shows_its_payload",
            ),
        ),
        *(
            migrations.AddConstraint(
                model_name="acknowledgement",
                constraint=models.CheckConstraint(
                    condition=models.Q(
                        **{f"{name}_sha256__isnull": True, f"{name}_shown__isnull": False}
                    )
                    | models.Q(**{f"{name}_sha256__isnull": False, f"{name}_shown__isnull": True}),
                    name=f"acknowledgement_{name}_committed_or_shown",
                ),
            )
            for name in ("ip", "user_agent")
        ),
    ]
