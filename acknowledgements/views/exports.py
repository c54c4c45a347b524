"""Exports for people who read reports: the CSVs stream at once, the PDF summary is rendered on
request, the workbook and the audit package are built in the background and downloaded from
"My exports". Each export is recorded in the audit log before anything is served."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements.evidence import audit as evidence_audit
from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.reports import PeopleFilterForm
from acknowledgements.models import ExportJob, Policy, User
from acknowledgements.reports import documents, exports, figures, lists, signatures_csv
from acknowledgements.reports import jobs as export_jobs
from acknowledgements.reports.lists import PeopleFilter
from acknowledgements.standings import coverage
from acknowledgements.views.access import readers_of_reports_only
from acknowledgements.views.reports import people_filter, report_moment, report_url

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# --- Exports -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportScope:
    policy: Policy
    timeline: coverage.Timeline
    moment: dt.datetime
    filters: PeopleFilter

    @property
    def record(self) -> dict[str, str]:
        """The scope as written to the audit log (the moment is recorded even when it is now)."""
        return evidence_audit.export_scope(
            policy=self.policy, moment=self.moment, **self.filters.as_record()
        )

    def filename(self, what: str) -> str:
        return f"{self.policy.slug}-{what}-{self.moment.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def _export_scope(request, slug: str) -> ExportScope | HttpResponse:
    """What to export; refused input sends the auditor back to the list with the reason."""
    policy = get_object_or_404(Policy, slug=slug)
    form = PeopleFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else error)
        messages.error(request, _("Nothing was exported."))
        return redirect(report_url("reports_people", slug, **request.GET.dict()))
    moment = report_moment(form).value
    return ExportScope(policy, coverage.timeline_for(policy, moment), moment, people_filter(form))


def _download(stream, *, filename: str, content_type: str, streaming: bool = False):
    if streaming:
        response = StreamingHttpResponse(stream, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        return response
    return FileResponse(stream, as_attachment=True, filename=filename, content_type=content_type)


@require_POST  # it records the export: never on a GET a link from another site could make
@readers_of_reports_only
def reports_export_csv(request, slug: str):
    """Every signature in scope up to the moment, one row each, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    signatures = lists.signatures(scope.policy, scope.timeline, scope.moment, scope.filters)
    evidence_audit.record_export(
        actor=request.user,
        what="acknowledgements.csv",
        filters=scope.record,
        rows=signatures.count(),
    )
    return _download(
        signatures_csv.acknowledgements_csv(signatures),
        filename=f"{scope.filename('acknowledgements')}.csv",
        content_type="text/csv; charset=utf-8",
        streaming=True,
    )


@require_POST  # it records the export: never on a GET a link from another site could make
@readers_of_reports_only
def reports_export_people_csv(request, slug: str):
    """Everyone in scope at the moment with their status, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    people = lists.people(scope.timeline, scope.moment, scope.filters)
    evidence_audit.record_export(
        actor=request.user, what="people.csv", filters=scope.record, rows=people.count()
    )
    return _download(
        exports.people_csv(people),
        filename=f"{scope.filename('people')}.csv",
        content_type="text/csv; charset=utf-8",
        streaming=True,
    )


@require_POST  # it records the export: never on a GET a link from another site could make
@readers_of_reports_only
def reports_export_pdf(request, slug: str):
    """The dashboard's figures and charts for one policy at a moment, as a PDF."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    policy_figures = figures.policy_figures(scope.policy, scope.timeline, scope.moment)
    pdf = documents.summary_pdf(policy_figures, generated_by=exports.exported_by(request.user))
    evidence_audit.record_export(
        actor=request.user,
        what="summary.pdf",
        filters=evidence_audit.export_scope(policy=scope.policy, moment=scope.moment),
        rows=policy_figures.completion.total,
    )
    return _download(
        io.BytesIO(pdf),
        filename=f"{scope.filename('summary')}.pdf",
        content_type="application/pdf",
    )


# --- Exports built in the background --------------------------------------------------------------
#
# An Excel workbook cannot be streamed and the audit package copies every receipt and the whole
# ledger: at scale both take minutes, longer than a request may last. They are built by a task
# (tasks.build_export); the person who asked follows its progress and downloads the file from
# the job's page. The CSVs stream from the first row and the PDF summary costs the same for ten
# people or a hundred thousand, so they stay in the request.

RECENT_EXPORTS = 20
JOB_CONTENT_TYPES = {
    ExportJob.Kind.XLSX: XLSX_TYPE,
    ExportJob.Kind.PACKAGE: "application/zip",
}


def _background_export(request, slug: str, kind: str, stem: str, extension: str):
    """GET: what will be exported, with a button; POST: queue it and show its progress."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    if request.method == "POST":
        job = export_jobs.request_export(
            actor=request.user,
            kind=kind,
            policy=scope.policy,
            as_of=scope.moment,
            filters=scope.filters.as_record(),
            filename=f"{scope.filename(stem)}.{extension}",
        )
        return redirect("acknowledgements:reports_export_job", job.pk)
    return render(
        request,
        "acknowledgements/reports/export_request.html",
        {
            "scope": scope,
            "kind": ExportJob.Kind(kind),
            "recent": _recent_exports(request.user)[:5],
        },
    )


@require_http_methods(["GET", "POST"])
@readers_of_reports_only
def reports_export_xlsx(request, slug: str):
    """The acknowledgements CSV as a workbook, built by a task (XLSX cannot stream)."""
    return _background_export(request, slug, ExportJob.Kind.XLSX, "acknowledgements", "xlsx")


@require_http_methods(["GET", "POST"])
@readers_of_reports_only
def reports_export_package(request, slug: str):
    """One ZIP an external auditor can check without the portal (see its README.txt)."""
    return _background_export(request, slug, ExportJob.Kind.PACKAGE, "audit-package", "zip")


def _recent_exports(user: User):
    return ExportJob.objects.filter(requested_by=user).select_related("policy")[:RECENT_EXPORTS]


def _my_job(request, pk: int) -> ExportJob:
    """The job if the person asked for it; anyone else gets the 404 of a job that does not exist."""
    return get_object_or_404(
        ExportJob.objects.select_related("policy"), pk=pk, requested_by=request.user
    )


@require_GET
@readers_of_reports_only
def reports_exports(request):
    """The exports I asked for, newest first, with their state."""
    jobs = list(_recent_exports(request.user))
    return render(
        request,
        "acknowledgements/reports/exports.html",
        {"jobs": jobs, "refresh": any(job.in_progress for job in jobs)},
    )


@require_GET
@readers_of_reports_only
def reports_export_job(request, pk: int):
    """One export's progress, refreshing by itself until it is ready or has failed."""
    return render(
        request, "acknowledgements/reports/export_job.html", {"job": _my_job(request, pk)}
    )


@require_GET
@readers_of_reports_only
def reports_export_download(request, pk: int):
    """The finished file (its export was recorded in the audit log when it was built)."""
    job = _my_job(request, pk)
    if job.status != ExportJob.Status.DONE or not job.file:
        raise Http404(_("This export is not ready."))
    return FileResponse(
        job.file.open("rb"),
        as_attachment=True,
        filename=job.filename,
        content_type=JOB_CONTENT_TYPES[job.kind],
    )


@require_POST
@readers_of_reports_only
def reports_export_retry(request, pk: int):
    """Queue a failed export again."""
    job = _my_job(request, pk)
    try:
        export_jobs.retry_export(actor=request.user, job=job)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, _("The export was queued again."))
    return redirect("acknowledgements:reports_export_job", job.pk)


urlpatterns = [
    path(
        "reports/policies/<slug:slug>/export/acknowledgements.csv",
        reports_export_csv,
        name="reports_export_csv",
    ),
    path(
        "reports/policies/<slug:slug>/export/people.csv",
        reports_export_people_csv,
        name="reports_export_people_csv",
    ),
    path(
        "reports/policies/<slug:slug>/export/acknowledgements.xlsx",
        reports_export_xlsx,
        name="reports_export_xlsx",
    ),
    path(
        "reports/policies/<slug:slug>/export/summary.pdf",
        reports_export_pdf,
        name="reports_export_pdf",
    ),
    path(
        "reports/policies/<slug:slug>/export/audit-package.zip",
        reports_export_package,
        name="reports_export_package",
    ),
    path("reports/exports/", reports_exports, name="reports_exports"),
    path("reports/exports/<int:pk>/", reports_export_job, name="reports_export_job"),
    path(
        "reports/exports/<int:pk>/download/",
        reports_export_download,
        name="reports_export_download",
    ),
    path("reports/exports/<int:pk>/retry/", reports_export_retry, name="reports_export_retry"),
]
