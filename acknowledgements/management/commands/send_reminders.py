from django.core.management.base import BaseCommand

from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.webhooks import events as webhook_events


class Command(BaseCommand):
    help = (
        "Queue reminders before due dates and overdue notices, then send every due email "
        "(including retries). Run it periodically, e.g. hourly."
    )

    def handle(self, *args, **options):
        reclaimed = sending.reclaim_expired_claims()
        queued = notification_actions.queue_reminders()
        webhook_events.emit_overdue()  # a person.overdue event per new overdue notice
        sent = 0
        while batch := sending.send_batch():
            sent += batch
        self.stdout.write(
            f"Queued {queued} reminder(s); processed {sent} email(s); "
            f"{reclaimed.uncertain} interrupted send(s) marked failed."
        )
