"""Auditors and administrators: dashboard, lists, as-of views, history, audit log, exports.

Every page is read-only and answers GET only. An export is the one thing that writes: its audit
record (evidence_audit.record_export), before the file is served. The Excel workbook and the audit
package are asked for with a POST and built by a task (an ExportJob), whose page shows its
progress to the person who asked and offers the file when it is ready.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements.evidence import audit as evidence_audit
from acknowledgements.evidence import ledger
from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.reports import AsOfForm, AuditLogFilterForm, PeopleFilterForm
from acknowledgements.models import ExportJob, Policy, PolicyRevision, User
from acknowledgements.reports import charts, exports, figures
from acknowledgements.reports import jobs as export_jobs
from acknowledgements.reports.figures import DEFAULT_SORT, PeopleFilter, PolicyFigures, StatusCount
from acknowledgements.standings import coverage
from acknowledgements.views.access import readers_of_reports_only

PAGE_SIZE = 50
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- Helpers -------------------------------------------------------------------------------------


def _url(name: str, *args: Any, **params: Any) -> str:
    """A URL of this app with the non-empty parameters as its query string."""
    url = reverse(f"acknowledgements:{name}", args=args)
    query = urlencode({key: value for key, value in params.items() if value not in ("", None)})
    return f"{url}?{query}" if query else url


@dataclass(frozen=True)
class Moment:
    """The moment a page shows: the one asked for, or now."""

    value: dt.datetime
    asked: bool

    @property
    def param(self) -> str:
        """The moment for links, in the viewer's zone with its offset (never ambiguous)."""
        return timezone.localtime(self.value).isoformat() if self.asked else ""


def _moment(form: AsOfForm) -> Moment:
    asked = form.moment
    return Moment(asked or timezone.now(), asked is not None)


def _people_filter(form: PeopleFilterForm) -> PeopleFilter:
    """The filters that passed validation (a refused one is left out and shown as an error)."""
    if not form.is_bound:
        return PeopleFilter()
    form.is_valid()
    data = form.cleaned_data
    return PeopleFilter(
        status=data.get("status") or "",
        audience=data.get("audience"),
        signed_from=data.get("signed_from"),
        signed_to=data.get("signed_to"),
        search=(data.get("q") or "").strip(),
        sort=data.get("sort") or DEFAULT_SORT,
    )


def _filter_params(filters: PeopleFilter, moment: Moment, **overrides: Any) -> dict[str, Any]:
    params = {
        "as_of": moment.param,
        "status": filters.status,
        "audience": filters.audience.slug if filters.audience else "",
        "signed_from": filters.signed_from.isoformat() if filters.signed_from else "",
        "signed_to": filters.signed_to.isoformat() if filters.signed_to else "",
        "q": filters.search,
        "sort": "" if filters.sort == DEFAULT_SORT else filters.sort,
    }
    return params | overrides


def _date_bounds(since: dt.date | None, until: dt.date | None) -> tuple[dt.datetime | None, ...]:
    return PeopleFilter(signed_from=since, signed_to=until).signed_range()


# --- Dashboard -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    part: StatusCount
    url: str
    percent: str


@dataclass(frozen=True)
class AudienceRow:
    row: figures.AudienceCompletion
    url: str
    parts: list[Part]
    bar: charts.StackedBar


@dataclass(frozen=True)
class Panel:
    figures: PolicyFigures
    people_url: str
    parts: list[Part]
    bar: charts.StackedBar | None
    audiences: list[AudienceRow]
    chart: charts.ColumnChart | None
    exports: list[ExportLink]


def _parts(completion: figures.Completion, slug: str, moment: Moment, **params: Any) -> list[Part]:
    return [
        Part(
            part,
            _url("reports_people", slug, as_of=moment.param, status=part.status, **params),
            charts.percent_label(part.percent),
        )
        for part in completion.parts
    ]


@dataclass(frozen=True)
class ExportLink:
    label: str
    url: str
    # Built by a task: the button POSTs to the URL and leads to the job's progress page.
    background: bool = False


def export_links(slug: str, params: dict[str, Any]) -> list[ExportLink]:
    return [
        ExportLink(_("Acknowledgements (CSV)"), _url("reports_export_csv", slug, **params)),
        ExportLink(_("People and status (CSV)"), _url("reports_export_people_csv", slug, **params)),
        ExportLink(
            _("Acknowledgements (Excel)"), _url("reports_export_xlsx", slug, **params), True
        ),
        ExportLink(_("Summary (PDF)"), _url("reports_export_pdf", slug, as_of=params.get("as_of"))),
        ExportLink(_("Audit package (ZIP)"), _url("reports_export_package", slug, **params), True),
    ]


def _panel(policy_figures: PolicyFigures, moment: Moment) -> Panel:
    policy = policy_figures.policy
    slug = policy.slug
    uid = f"policy-{policy.pk}"
    if not policy_figures.in_effect:
        return Panel(policy_figures, "", [], None, [], None, [])
    audiences = [
        AudienceRow(
            row=row,
            url=_url("reports_people", slug, as_of=moment.param, audience=row.audience.slug),
            parts=_parts(row.completion, slug, moment, audience=row.audience.slug),
            bar=charts.stacked_bar(
                f"{uid}-{row.audience.slug}",
                row.completion,
                title=_("%(audience)s: status") % {"audience": row.audience.name},
                width=200,
                height=18,
            ),
        )
        for row in policy_figures.audiences
    ]
    signatures = policy_figures.signatures
    return Panel(
        figures=policy_figures,
        people_url=_url("reports_people", slug, as_of=moment.param),
        parts=_parts(policy_figures.completion, slug, moment),
        bar=charts.stacked_bar(
            uid,
            policy_figures.completion,
            title=_("%(policy)s: status of everyone in scope") % {"policy": policy.name},
        ),
        audiences=audiences,
        chart=charts.signatures_chart(
            f"{uid}-daily",
            signatures,
            title=_("%(policy)s: signatures over time") % {"policy": policy.name},
        )
        if signatures
        else None,
        exports=export_links(slug, {"as_of": moment.param}),
    )


@require_GET
@readers_of_reports_only
def reports_dashboard(request):
    """Completion of every policy at a moment: counts, shares, audiences, signatures per day."""
    form = AsOfForm(request.GET or None)
    moment = _moment(form)
    panels = [_panel(f, moment) for f in figures.dashboard(moment.value)]
    return render(
        request,
        "acknowledgements/reports/dashboard.html",
        {"form": form, "moment": moment, "panels": panels},
    )


# --- People --------------------------------------------------------------------------------------

SORTABLE = {  # column: (sort when first clicked, the other direction)
    "name": ("name", "-name"),
    "status": ("status", "status"),
    "signed": ("-signed", "signed"),
    "due": ("due", "due"),
}


def _sort_links(filters: PeopleFilter, moment: Moment, slug: str) -> dict[str, dict[str, str]]:
    links = {}
    for column, (first, other) in SORTABLE.items():
        active = filters.sort in (first, other)
        target = other if filters.sort == first and first != other else first
        direction = ""
        if active:
            direction = "descending" if filters.sort.startswith("-") else "ascending"
        params = _filter_params(filters, moment, sort="" if target == DEFAULT_SORT else target)
        links[column] = {"url": _url("reports_people", slug, **params), "aria_sort": direction}
    return links


def _policy_and_timeline(slug: str, moment: dt.datetime) -> tuple[Policy, coverage.Timeline]:
    """The policy and its timeline; its published revisions bring the policy along."""
    revisions = list(
        PolicyRevision.objects.published()
        .filter(policy__slug=slug)
        .select_related("policy")
        .prefetch_related("audiences")
    )
    policy = revisions[0].policy if revisions else get_object_or_404(Policy, slug=slug)
    return policy, coverage.Timeline.at(revisions, moment)


@require_GET
@readers_of_reports_only
def reports_people(request, slug: str):
    """Everyone in scope of a policy at a moment, filtered, sorted and paginated."""
    form = PeopleFilterForm(request.GET or None)
    moment = _moment(form)
    filters = _people_filter(form)
    policy, timeline = _policy_and_timeline(slug, moment.value)
    people = figures.people(timeline, moment.value, filters).annotate(
        audience_list=figures.current_audience_names()
    )
    page = Paginator(people, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(person, figures.audience_names(person.audience_list, ", ")) for person in page]
    params = _filter_params(filters, moment)
    return render(
        request,
        "acknowledgements/reports/people.html",
        {
            "policy": policy,
            "timeline": timeline,
            "form": form,
            "moment": moment,
            "filters": filters,
            "page": page,
            "rows": rows,
            "page_url": _url("reports_people", slug, **params),
            "sort_links": _sort_links(filters, moment, slug),
            "exports": export_links(slug, params | {"sort": ""}),
            "dashboard_url": _url("reports_dashboard", as_of=moment.param),
        },
    )


# --- One person ----------------------------------------------------------------------------------


@require_GET
@readers_of_reports_only
def reports_person(request, pk: int):
    """A person's full history: evidence events, notifications, receipts, standings."""
    person = get_object_or_404(User.objects.prefetch_related("audiences"), pk=pk)
    form = AsOfForm(request.GET or None)
    moment = _moment(form)
    return render(
        request,
        "acknowledgements/reports/person.html",
        {
            "person": person,
            "form": form,
            "moment": moment,
            "history": figures.person_history(person, moment.value),
        },
    )


# --- Audit log and declines ----------------------------------------------------------------------


@require_GET
@readers_of_reports_only
def reports_audit_log(request):
    """Administrative actions and supersessions, newest first: who did what, when."""
    form = AuditLogFilterForm(request.GET or None, actions=figures.audit_actions())
    data: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        data = form.cleaned_data
    since, until = _date_bounds(data.get("since"), data.get("until"))
    entries = figures.audit_entries(
        action=data.get("action") or "",
        actor=(data.get("actor") or "").strip(),
        since=since,
        until=until,
    )
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    params = {
        "action": data.get("action") or "",
        "actor": (data.get("actor") or "").strip(),
        "since": data["since"].isoformat() if data.get("since") else "",
        "until": data["until"].isoformat() if data.get("until") else "",
    }
    return render(
        request,
        "acknowledgements/reports/audit_log.html",
        {
            "form": form,
            "page": page,
            "events": figures.describe(page),
            "page_url": _url("reports_audit_log", **params),
        },
    )


@require_GET
@readers_of_reports_only
def declines(request):
    """Every recorded decline, newest first, for administrators and auditors to follow up."""
    page = Paginator(figures.declines(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(entry, ledger.decode(entry).get("reason")) for entry in page]
    return render(request, "acknowledgements/reports/declines.html", {"page": page, "rows": rows})


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
        return redirect(_url("reports_people", slug, **request.GET.dict()))
    moment = _moment(form).value
    return ExportScope(policy, coverage.timeline_for(policy, moment), moment, _people_filter(form))


def _download(stream, *, filename: str, content_type: str, streaming: bool = False):
    if streaming:
        response = StreamingHttpResponse(stream, content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        return response
    return FileResponse(stream, as_attachment=True, filename=filename, content_type=content_type)


@require_GET
@readers_of_reports_only
def reports_export_csv(request, slug: str):
    """Every signature in scope up to the moment, one row each, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    signatures = figures.signatures(scope.policy, scope.timeline, scope.moment, scope.filters)
    evidence_audit.record_export(
        actor=request.user,
        what="acknowledgements.csv",
        filters=scope.record,
        rows=signatures.count(),
    )
    return _download(
        exports.acknowledgements_csv(signatures),
        filename=f"{scope.filename('acknowledgements')}.csv",
        content_type="text/csv; charset=utf-8",
        streaming=True,
    )


@require_GET
@readers_of_reports_only
def reports_export_people_csv(request, slug: str):
    """Everyone in scope at the moment with their status, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    people = figures.people(scope.timeline, scope.moment, scope.filters)
    evidence_audit.record_export(
        actor=request.user, what="people.csv", filters=scope.record, rows=people.count()
    )
    return _download(
        exports.people_csv(people),
        filename=f"{scope.filename('people')}.csv",
        content_type="text/csv; charset=utf-8",
        streaming=True,
    )


@require_GET
@readers_of_reports_only
def reports_export_pdf(request, slug: str):
    """The dashboard's figures and charts for one policy at a moment, as a PDF."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    policy_figures = figures.policy_figures(scope.policy, scope.timeline, scope.moment)
    pdf = exports.summary_pdf(policy_figures, generated_by=exports.exported_by(request.user))
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
    path("reports/", reports_dashboard, name="reports_dashboard"),
    path("reports/policies/<slug:slug>/people/", reports_people, name="reports_people"),
    path("reports/people/<int:pk>/", reports_person, name="reports_person"),
    path("reports/audit-log/", reports_audit_log, name="reports_audit_log"),
    path("reports/declines/", declines, name="declines"),
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
