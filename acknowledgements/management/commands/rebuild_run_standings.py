"""Recompute the dashboard's run standings and tallies from the evidence (standings/tallies.py).

They are kept as people sign, decline and change; this puts them right if something changed
the database behind the portal's back (a bulk load, a restore of part of it). Safe at any
time: it runs in one transaction, and the dashboard reads the old rows until it commits.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from acknowledgements.standings import tallies


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options):
        with transaction.atomic():
            made = tallies.rebuild()
        if options["verbosity"]:
            self.stdout.write(f"{made} run standings rebuilt from the evidence.")
