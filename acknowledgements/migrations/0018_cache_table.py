"""The database cache's table (settings.CACHE_TABLE), so that every process shares one cache,
rate limits above all, when no Redis is configured. Made whichever cache is configured, so that
dropping Redis later needs no extra step; creating it again is a no-op."""

from django.conf import settings
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations


def create_cache_table(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(schema_editor.connection.alias, settings.CACHE_TABLE, False)


def drop_cache_table(apps, schema_editor):
    table = schema_editor.connection.ops.quote_name(settings.CACHE_TABLE)
    schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = [("acknowledgements", "0017_people_imports")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
