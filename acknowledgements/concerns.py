"""Concerns people report (the policy's section 8), and their handling by the compliance team."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from acknowledgements import jobs
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.models import (
    ConcernReport,
    User,
)
from acknowledgements.notifications import sending


@transaction.atomic
def report_concern(
    *, reporter: User, category: str, description: str, anonymous: bool, attachment=None
) -> ConcernReport:
    """Store a concern and email it to the compliance address after commit."""
    report = ConcernReport.objects.create(
        reporter=reporter,
        anonymous=anonymous,
        category=category,
        description=description.strip(),
        attachment=attachment or "",
    )
    jobs.enqueue_with_transaction(sending.email_concern, report.pk)
    return report


@transaction.atomic
def set_concern_status(*, actor: User | None, report: ConcernReport, status: str) -> None:
    """Move a concern between new, in review and closed; audited."""
    report = ConcernReport.objects.select_for_update().get(pk=report.pk)
    if report.status == status:
        return
    before, report.status, report.updated_at = report.status, status, timezone.now()
    report.save(update_fields=["status", "updated_at"])
    record_admin_action(
        actor=actor,
        action="concern_status_changed",
        details={"concern_id": report.pk, "from": before, "to": status},
    )
