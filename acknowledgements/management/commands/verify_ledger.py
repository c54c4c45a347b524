import sys

from django.core.management.base import BaseCommand

from acknowledgements.evidence import protection
from acknowledgements.evidence.ledger import link_pending, verify_chain


class Command(BaseCommand):
    help = (
        "Link any entry committed but not yet linked, then walk the evidence ledger and "
        "recompute every hash, and check that the database's triggers still protect it. Exit 1 "
        "at the first failure."
    )

    def handle(self, *args, **options):
        if linked := link_pending():
            self.stdout.write(f"Linked {linked} entries that were waiting for their place.")
        result = verify_chain()
        if not result.intact:
            self.stderr.write(result.summary())
            sys.exit(1)
        self.stdout.write(result.summary())
        if weakened := protection.weakened():
            for problem in weakened:
                self.stderr.write(f"Evidence protection weakened: {problem}.")
            sys.exit(1)
