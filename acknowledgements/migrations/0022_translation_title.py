"""A revision's translation carries the policy's name in its language."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0021_email_claims")]

    operations: list = []
