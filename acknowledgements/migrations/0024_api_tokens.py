"""API tokens may be scoped to the read API."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0023_ledger_checkpoints")]

    operations: list = []
