from django.core.management.base import BaseCommand

from acknowledgements.notifications import witnesses


class Command(BaseCommand):
    help = (
        "Checkpoint the ledger, timestamp the latest checkpoint when PORTAL_TSA_URL is set, and "
        "email it to PORTAL_CHECKPOINT_WITNESSES at most once a day unless --now. Run it hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="send even if sent today")

    def handle(self, *args, now: bool = False, **options):
        result = witnesses.witness(force=now)
        if result.sent_to:
            assert result.checkpoint is not None
            stamped = " with a timestamp" if result.timestamped else ""
            self.stdout.write(
                f"Sent checkpoint {result.checkpoint.tree_size}{stamped} to "
                f"{len(result.sent_to)} witness(es)."
            )
        elif result.timestamped:
            assert result.checkpoint is not None
            self.stdout.write(
                f"Checkpoint {result.checkpoint.tree_size} is timestamped; nothing sent: "
                f"{result.reason}."
            )
        else:
            self.stdout.write(f"Nothing sent: {result.reason}.")
