import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from acknowledgements.receipts.verification import verify_receipt


class Command(BaseCommand):
    help = "Check that a receipt PDF is genuine: seal, stored copy, ledger entry and chain."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="The receipt PDF to check.")

    def handle(self, *args, file: Path, **options):
        try:
            size = file.stat().st_size
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}.") from None
        if size > settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES:
            raise CommandError(f"{file} is larger than any receipt ({size} bytes).")
        verdict = verify_receipt(file.read_bytes())
        for check in verdict.checks:
            mark = "PASS" if check.passed else "FAIL"
            self.stdout.write(f"{mark}  {check.name}: {check.detail}")
        if verdict.genuine:
            self.stdout.write(self.style.SUCCESS(f"Genuine receipt {verdict.receipt_number}."))
            return
        self.stderr.write("Not a receipt." if not verdict.is_receipt else "NOT genuine.")
        sys.exit(1)
