"""The read API's tokens and the webhooks' endpoints and deliveries."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0023_ledger_checkpoints")]

    operations: list = []
