"""Recompute the dashboard's run standings and tallies, and the signatures' terms under renewal
periods, from the evidence (standings/tallies.py, standings/renewal.py).

They are kept as people sign, decline and change; this puts them right if something changed
the database behind the portal's back (a bulk load, a restore of part of it). Safe at any
time: it runs in one transaction, and the dashboard reads the old rows until it commits.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from acknowledgements.models import SignatureTerm
from acknowledgements.standings import renewal, tallies


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options):
        with transaction.atomic():
            made = tallies.rebuild()
            SignatureTerm.objects.all().delete()
            terms = renewal.fill_terms()
        if options["verbosity"]:
            self.stdout.write(
                f"{made} run standings and {terms} signature terms rebuilt from the evidence."
            )
