import sys

from django.core.management.base import BaseCommand

from acknowledgements.ledger import verify_chain


class Command(BaseCommand):
    help = "Walk the evidence ledger and recompute every hash. Exit 1 at the first failure."

    def handle(self, *args, **options):
        result = verify_chain()
        if result.intact:
            self.stdout.write(result.summary())
            return
        self.stderr.write(result.summary())
        sys.exit(1)
