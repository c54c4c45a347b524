from django.core.management.base import BaseCommand

from acknowledgements import services


class Command(BaseCommand):
    help = (
        "Finish what a stopped worker or a lost task left undone: link ledger entries still "
        "waiting for their place in the chain, queue again the receipts of signatures that "
        "have none after ten minutes. Safe to repeat; run it periodically."
    )

    def handle(self, *args, **options):
        recovered = services.recover_interrupted_work()
        self.stdout.write(
            f"Ledger entries linked: {recovered.linked}; "
            f"receipts queued again: {recovered.receipts_queued}."
        )
