import sys

from django.core.management.base import BaseCommand

from acknowledgements.evidence.ledger import link_pending, verify_chain


class Command(BaseCommand):
    help = (
        "Link any entry committed but not yet linked, then walk the evidence ledger and "
        "recompute every hash. Exit 1 at the first failure."
    )

    def handle(self, *args, **options):
        if linked := link_pending():
            self.stdout.write(f"Linked {linked} entries that were waiting for their place.")
        result = verify_chain()
        if result.intact:
            self.stdout.write(result.summary())
            return
        self.stderr.write(result.summary())
        sys.exit(1)
