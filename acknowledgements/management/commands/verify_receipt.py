import sys
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from acknowledgements.receipts.verification import ReceiptVerdict, verify_receipt


def _reason(verdict: ReceiptVerdict) -> str:
    """Why a receipt is not genuine: the first check it failed, in its own words."""
    failed = next((check for check in verdict.checks if not check.passed), None)
    return failed.detail if failed is not None else "no check could be made."


class Command(BaseCommand):
    help = (
        "Check that a receipt PDF is genuine: seal, stored copy, ledger entry and chain. Prints "
        "each check, then one verdict; exits 1 when the file is not a genuine receipt, or cannot "
        "be confirmed because the ledger is damaged."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The receipt PDF to check.")

    def handle(self, *args, file: Path, **options):
        try:
            size = file.stat().st_size
            if size > settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES:
                raise CommandError(f"{file} is larger than any receipt ({size} bytes).")
            data = file.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        try:
            verdict = verify_receipt(data)
        except (ImproperlyConfigured, OSError, DatabaseError) as error:
            # The portal's own set-up, not the file: nothing about the receipt is known.
            raise CommandError(f"Cannot check receipts here: {error}") from None
        for check in verdict.checks:
            mark = "PASS" if check.passed else "FAIL"
            self.stdout.write(f"{mark}  {check.name}: {check.detail}")
        if verdict.genuine:
            self.stdout.write(self.style.SUCCESS(f"Genuine receipt {verdict.receipt_number}."))
            return
        if verdict.unconfirmed:  # only what depends on a ledger known to be damaged failed
            self.stderr.write(f"Cannot be confirmed, the ledger is damaged: {_reason(verdict)}")
        else:
            self.stderr.write(f"Not genuine: {_reason(verdict)}")
        sys.exit(1)
