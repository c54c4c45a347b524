"""Imports asked for on the people page: a task checks the uploaded file and shows its plan; the
administrator confirms; another task applies it (people/import_plan.py does the work)."""

from __future__ import annotations

import uuid

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.tasks import task
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import PeopleImport, User
from acknowledgements.people import actions as people_actions
from acknowledgements.people import import_apply, import_plan

# The rows a job's page lists (refused ones first): enough to act on, never the whole file.
SHOWN_ROWS = 1_000


def _details(row: import_plan.PlannedRow) -> dict[str, str]:
    """Why a row is refused, or which fields it changes, in each language the portal speaks: the
    task does not know who will read the page."""
    if row.reasons:
        return import_plan.in_each_language(lambda: "; ".join(r.translated() for r in row.reasons))
    return import_plan.in_each_language(
        lambda: ", ".join(import_plan.field_label(name) for name in sorted(row.changes))
    )


def _shown(plan: import_plan.Plan) -> list[dict]:
    listed = sorted(
        (r for r in plan.rows if r.outcome != import_plan.Outcome.UNCHANGED),
        key=lambda r: (r.outcome != import_plan.Outcome.REFUSED, r.line),
    )
    return [
        {
            "line": r.line,
            "key": r.key,
            "email": r.values.get("email") or "",
            "outcome": r.outcome.value,
            "changes": sorted(r.changes),
            "reasons": r.reasons,
            "details": _details(r),
        }
        for r in listed[:SHOWN_ROWS]
    ]


@transaction.atomic
def request_import(*, actor: User, upload: UploadedFile, invite: bool) -> PeopleImport:
    """Keep the uploaded file and have a task check it; nothing changes until it is confirmed."""
    job = PeopleImport(requested_by=actor, filename=upload.name or "people.csv", invite=invite)
    job.file.save(f"{uuid.uuid4().hex}.csv", upload, save=False)
    job.save()
    jobs.enqueue_with_transaction(plan_people_import, job.pk)
    return job


def _progress(job_id: int):
    def report(rows: int) -> None:
        PeopleImport.objects.filter(pk=job_id).update(rows_done=rows)

    return report


def _data(job: PeopleImport) -> bytes:
    with job.file.open("rb") as stored:
        return stored.read()


def _failed(job: PeopleImport, refused: import_plan.ImportRefused) -> None:
    """A refused file's job keeps one text: in the language of whoever asked for the import."""
    with translation.override(job.requested_by.preferred_language):
        job.status, job.error = PeopleImport.Status.FAILED, refused.reason.translated()


def plan_job(*, job_id: int) -> None:
    """Check the file and record what applying it would do."""
    job = PeopleImport.objects.select_related("requested_by").get(pk=job_id)
    try:
        plan = import_plan.plan_import(_data(job), progress=_progress(job_id))
    except import_plan.ImportRefused as refused:
        _failed(job, refused)
    else:
        job.status = PeopleImport.Status.PLANNED
        job.counts, job.rows, job.rows_total = plan.counts, _shown(plan), len(plan.rows)
    job.save()


def invite_added(plan: import_plan.Plan, *, actor: User | None) -> int:
    """Invite everyone an applied import added (each invitation audited); how many."""
    added = [
        r.person_id
        for r in plan.rows
        if r.outcome == import_plan.Outcome.CREATE and r.person_id is not None
    ]
    for person in User.objects.filter(pk__in=added).iterator():
        people_actions.invite_person(actor=actor, person=person)
    return len(added)


@transaction.atomic
def confirm_import(*, actor: User, job: PeopleImport) -> PeopleImport:
    """Apply a checked import (once): a task writes it batch by batch, each batch audited."""
    job = PeopleImport.objects.select_for_update().get(pk=job.pk)
    if job.status != PeopleImport.Status.PLANNED:
        raise ActionRefused(_("Only an import that was checked and not applied can be applied."))
    job.status, job.rows_done = PeopleImport.Status.APPLYING, 0
    job.save(update_fields=["status", "rows_done"])
    jobs.enqueue_with_transaction(apply_people_import, job.pk)
    return job


def apply_job(*, job_id: int) -> None:
    """Apply the file as it reads now, then invite the people it added if that was asked."""
    job = PeopleImport.objects.select_related("requested_by").get(pk=job_id)
    try:
        plan = import_apply.apply_import(
            _data(job),
            actor=job.requested_by,
            filename=job.filename,
            progress=_progress(job_id),
            inviting=job.invite,
        )
    except import_plan.ImportRefused as refused:
        _failed(job, refused)
        job.save()
        return
    if job.invite:
        invite_added(plan, actor=job.requested_by)
    job.status, job.applied_at = PeopleImport.Status.APPLIED, timezone.now()
    job.counts, job.rows, job.rows_total = plan.counts, _shown(plan), len(plan.rows)
    job.save()


@task()
def plan_people_import(job_id: int) -> None:
    plan_job(job_id=job_id)


@task()
def apply_people_import(job_id: int) -> None:
    apply_job(job_id=job_id)
