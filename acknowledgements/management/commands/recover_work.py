import datetime as dt

from django.core.management.base import BaseCommand

from acknowledgements import jobs
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.receipts import actions as receipt_actions
from acknowledgements.webhooks import delivery as webhook_delivery


class Command(BaseCommand):
    help = (
        "Finish what a stopped worker, a lost task or a failed render left undone: queue again "
        "the tasks a stopped worker left running (for 30 minutes or more), link ledger entries "
        "still waiting for their place in the chain, queue again the receipts of signatures "
        "that have none after ten minutes (at once with --now) and the announcement of a "
        "published revision whose emails were never queued, take back the emails of workers "
        "whose claim ran out and send what is queued, and queue the webhook deliveries that "
        "were due but never sent (a worker stopped mid-request). Safe to repeat; run it when a "
        "worker starts and periodically."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            action="store_true",
            help="Queue every missing receipt, however recent: for when no worker is running "
            "(the portal starting), so none can still be issuing it.",
        )

    def handle(self, *args, now: bool, **options):
        wait = dt.timedelta(0) if now else receipt_actions.RECEIPT_OVERDUE_AFTER
        interrupted = jobs.requeue_interrupted_tasks()
        recovered = receipt_actions.recover_interrupted_work(receipts_after=wait)
        announcements = notification_actions.resume_announcements()
        emails = sending.resume_sending()
        webhooks = webhook_delivery.resume_deliveries()
        self.stdout.write(
            f"Tasks interrupted, queued again: {interrupted}; "
            f"ledger entries linked: {recovered.linked}; "
            f"receipts queued again: {recovered.receipts_queued}; "
            f"announcements queued again: {announcements}; "
            f"emails queued again: {emails.queued_again}, uncertain: {emails.uncertain}; "
            f"webhook deliveries taken back: {webhooks.reclaimed}, queued: {webhooks.queued}."
        )
