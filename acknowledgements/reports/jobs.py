"""Exports built in the background: asked for, built into storage by a task, tidied after the retention period."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import File
from django.db import transaction
from django.db.models import F
from django.tasks import task
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.evidence.audit import export_record, record_export
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    ExportJob,
    Policy,
    User,
)
from acknowledgements.reports import audit_package, documents, exports, lists
from acknowledgements.reports.lists import PeopleFilter
from acknowledgements.standings import coverage

logger = logging.getLogger(__name__)


@transaction.atomic
def request_export(
    *,
    actor: User,
    kind: str,
    policy: Policy,
    as_of: dt.datetime,
    filters: dict[str, str],
    filename: str,
) -> ExportJob:
    """Queue an export for the person who asked; a task builds it and records it when built."""
    job = ExportJob.objects.create(
        requested_by=actor,
        kind=kind,
        policy=policy,
        as_of=as_of,
        filters=filters,
        filename=filename,
    )
    jobs.enqueue_with_transaction(build_export_task, job.pk)
    return job


@transaction.atomic
def retry_export(*, actor: User, job: ExportJob) -> ExportJob:
    """Queue a failed export again, for the person who asked it; other states are left alone."""
    job = ExportJob.objects.select_for_update().get(pk=job.pk, requested_by=actor)
    if job.status != ExportJob.Status.FAILED:
        raise ActionRefused(_("Only an export that failed can be tried again."))
    job.status = ExportJob.Status.QUEUED
    job.error = ""
    job.rows_done = 0
    job.rows_total = None
    job.started_at = job.finished_at = None
    job.save()
    jobs.enqueue_with_transaction(build_export_task, job.pk)
    return job


# A job still "running" this long after it started was cut off (its worker stopped): even the
# largest audit package takes minutes.
EXPORT_INTERRUPTED_AFTER = dt.timedelta(hours=2)


@dataclass(frozen=True)
class ExportTidying:
    interrupted: int  # jobs left running by a stopped worker, now failed (and retryable)
    removed: int  # finished exports older than the retention period, file and job deleted


def tidy_exports(*, moment: dt.datetime | None = None) -> ExportTidying:
    """Fail the jobs a stopped worker left running, so they can be tried again, and delete the
    files (exports hold personal data) and jobs of exports older than
    PORTAL_EXPORT_RETENTION_DAYS. Their audit records stay in the ledger. Safe to repeat."""
    moment = moment or timezone.now()
    interrupted = ExportJob.objects.filter(
        status=ExportJob.Status.RUNNING, started_at__lt=moment - EXPORT_INTERRUPTED_AFTER
    ).update(
        status=ExportJob.Status.FAILED,
        error="Interrupted: the worker building it stopped. Try again.",
        finished_at=moment,
    )
    expired = ExportJob.objects.filter(
        status__in=[ExportJob.Status.DONE, ExportJob.Status.FAILED],
        finished_at__lt=moment - dt.timedelta(days=settings.PORTAL_EXPORT_RETENTION_DAYS),
    )
    removed = 0
    for job in expired.iterator():
        if job.file:
            job.file.delete(save=False)
        job.delete()
        removed += 1
    return ExportTidying(interrupted=interrupted, removed=removed)


def build_export(*, job_id: int) -> ExportJob | None:
    """Build a queued export into storage, then record it in the audit log, once.

    Not one transaction: the progress saved on the way must be seen by the job's page while
    the file is written. A job that is not queued (delivered twice) is left alone. A failure
    keeps no file and no audit record, and leaves the job failed, to be tried again.
    """
    started = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING,
        started_at=started,
        attempts=F("attempts") + 1,
        rows_done=0,
    )
    if not claimed:
        return None
    job = ExportJob.objects.select_related("policy", "requested_by").get(pk=job_id)

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job_id).update(rows_done=rows)

    try:
        filters = PeopleFilter.from_record(job.filters)
        timeline = coverage.timeline_for(job.policy, job.as_of)
        signatures = lists.signatures(job.policy, timeline, job.as_of, filters)
        by = exports.exported_by(job.requested_by)
        with tempfile.TemporaryFile() as workfile:
            if job.kind == ExportJob.Kind.XLSX:
                job.rows_total = signatures.count()
                job.save(update_fields=["rows_total"])
                # Its warning of a damaged ledger, if any, in the language of whoever asked.
                with translation.override(job.requested_by.preferred_language):
                    rows = documents.write_acknowledgements_xlsx(
                        workfile,
                        signatures,
                        about=exports.export_metadata(
                            policy=job.policy,
                            moment=job.as_of,
                            filters=job.filters,
                            exported_by=by,
                        ),
                        progress=progress,
                    )
                done = rows
            else:
                job.rows_total = audit_package.package_rows(
                    policy=job.policy, timeline=timeline, moment=job.as_of, filters=filters
                )
                job.save(update_fields=["rows_total"])
                summary = audit_package.write_package(
                    workfile,
                    policy=job.policy,
                    timeline=timeline,
                    moment=job.as_of,
                    filters=filters,
                    exported_by=by,
                    progress=progress,
                )
                rows = summary.signatures
                done = summary.signatures + summary.receipts + summary.ledger_rows
            job.size = workfile.tell()
            workfile.seek(0)
            job.file.save(job.filename, File(workfile), save=False)
        with transaction.atomic():
            record_export(
                actor=job.requested_by, what=job.kind, filters=export_record(job), rows=rows
            )
            job.status = ExportJob.Status.DONE
            job.rows_done = done
            job.rows_total = max(job.rows_total or 0, done)
            job.finished_at = timezone.now()
            job.save()
    except Exception as error:
        logger.exception("Export job %s failed", job_id)
        if job.file:
            job.file.delete(save=False)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.FAILED,
            error=f"{type(error).__name__}: {error}"[:2000],
            file="",
            size=None,
            finished_at=timezone.now(),
        )
        job.refresh_from_db()
    return job


@task()
def build_export_task(job_id: int) -> None:
    build_export(job_id=job_id)
