from django.core.management.base import BaseCommand

from acknowledgements.reports import jobs as export_jobs


class Command(BaseCommand):
    help = (
        "Fail the exports a stopped worker left running (they can then be tried again) and "
        "delete the exports older than PORTAL_EXPORT_RETENTION_DAYS. Run it periodically."
    )

    def handle(self, *args, **options):
        tidied = export_jobs.tidy_exports()
        self.stdout.write(
            f"{tidied.interrupted} interrupted export(s) marked failed; "
            f"{tidied.removed} old export(s) deleted."
        )
