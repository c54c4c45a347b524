from django.conf import settings
from django.core.management.base import BaseCommand

from acknowledgements.evidence import retention


class Command(BaseCommand):
    help = (
        "Remove the raw IP addresses and user agents older than "
        "PORTAL_CLIENT_DETAILS_RETENTION_DAYS, recording each removal in the ledger. Run it "
        "periodically, e.g. daily; running it again removes nothing more."
    )

    def handle(self, *args, **options):
        days = settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS
        if not days:
            self.stdout.write(
                "PORTAL_CLIENT_DETAILS_RETENTION_DAYS is not set: IP addresses and user agents "
                "are kept; nothing removed."
            )
            return
        result = retention.redact_client_details()
        self.stdout.write(
            f"Removed the IP address and user agent of {result.entries} ledger entries recorded "
            f"more than {days} days ago; {result.events} redaction event(s) added to the ledger."
        )
