"""Webhook endpoints and their deliveries."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0024_api_tokens")]

    operations: list = []
