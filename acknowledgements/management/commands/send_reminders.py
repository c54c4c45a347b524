from django.conf import settings
from django.core.management.base import BaseCommand

from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import escalation, sending
from acknowledgements.webhooks import events as webhook_events


class Command(BaseCommand):
    help = (
        "Queue reminders before due dates and overdue notices, then send every due email "
        "(including retries), and tell managers of long-overdue reports "
        "(PORTAL_ESCALATE_AFTER_DAYS). Run it periodically, e.g. hourly."
    )

    def handle(self, *args, **options):
        reclaimed = sending.reclaim_expired_claims()
        queued = notification_actions.queue_reminders()
        escalated = escalation.queue_escalations()
        webhook_events.emit_from_notices()  # person.overdue / person.renewal_due events
        sent = 0
        while batch := sending.send_batch():
            sent += batch
        self.stdout.write(
            f"Queued {queued} reminder(s); processed {sent} email(s); "
            f"{reclaimed.uncertain} interrupted send(s) marked failed."
        )
        if settings.PORTAL_ESCALATE_AFTER_DAYS is not None:
            emailed = escalation.send_escalations()
            self.stdout.write(f"Queued {escalated} escalation(s); emailed {emailed} manager(s).")
