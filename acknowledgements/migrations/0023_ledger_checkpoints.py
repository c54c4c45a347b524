"""The ledger as a transparency log: stored tree nodes and signed checkpoints."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0022_translation_title")]

    operations: list = []
