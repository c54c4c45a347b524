"""The tasks' former dotted paths, kept for one release so that task rows queued before an
upgrade still run (deployment guide, "Upgrading"). Nothing imports this module; each task now
lives beside the function it runs.
"""

from acknowledgements.evidence.ledger import link_ledger
from acknowledgements.notifications.actions import announce_revision
from acknowledgements.notifications.sending import email_concern, email_receipt, send_notifications
from acknowledgements.receipts.actions import issue_receipt_task as issue_receipt
from acknowledgements.reports.jobs import build_export_task as build_export

__all__ = [
    "announce_revision",
    "build_export",
    "email_concern",
    "email_receipt",
    "issue_receipt",
    "link_ledger",
    "send_notifications",
]
