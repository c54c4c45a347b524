from django.core.management.base import BaseCommand

from acknowledgements import notifications, services


class Command(BaseCommand):
    help = (
        "Queue reminders before due dates and overdue notices, then send every due email "
        "(including retries). Run it periodically, e.g. hourly."
    )

    def handle(self, *args, **options):
        interrupted = notifications.mark_interrupted()
        queued = services.queue_reminders()
        sent = 0
        while batch := notifications.send_batch():
            sent += batch
        self.stdout.write(
            f"Queued {queued} reminder(s); processed {sent} email(s); "
            f"{interrupted} interrupted send(s) marked failed."
        )
