"""The bare view's table: the columns of a ledger row, without the chain's lock or links.

Not managed by migrations (the bench creates it with `CREATE TABLE ... (LIKE ...)` so that it
has the ledger table's columns and indexes), and only installed under bench.settings.
"""

from django.db import models

TABLE = "bench_row"


class BenchRow(models.Model):
    sequence = models.BigIntegerField(null=True)
    kind = models.CharField(max_length=20)
    person_id = models.BigIntegerField(null=True)
    actor_id = models.BigIntegerField(null=True)
    revision_id = models.BigIntegerField(null=True)
    recorded_at = models.DateTimeField()
    payload = models.BinaryField()
    payload_sha256 = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64)

    class Meta:
        managed = False
        db_table = TABLE

    def __str__(self) -> str:
        return f"bench row {self.pk}"
