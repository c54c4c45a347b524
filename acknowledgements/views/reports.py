"""Auditors and administrators: dashboard, lists, as-of views, history, audit log, exports.

Every page is read-only and answers GET only. An export is the one thing that writes: its audit
record (services.record_export), before the file is served.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from .. import coverage, ledger, services
from ..forms import AsOfForm, AuditLogFilterForm, PeopleFilterForm
from ..models import Policy, PolicyRevision, User
from ..reports import charts, exports, figures
from ..reports.figures import DEFAULT_SORT, PeopleFilter, PolicyFigures, StatusCount

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
    exports: list[tuple[str, str]]


def _parts(completion: figures.Completion, slug: str, moment: Moment, **params: Any) -> list[Part]:
    return [
        Part(
            part,
            _url("reports_people", slug, as_of=moment.param, status=part.status, **params),
            charts.percent_label(part.percent),
        )
        for part in completion.parts
    ]


def export_links(slug: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (_("Acknowledgements (CSV)"), _url("reports_export_csv", slug, **params)),
        (_("People and status (CSV)"), _url("reports_export_people_csv", slug, **params)),
        (_("Acknowledgements (Excel)"), _url("reports_export_xlsx", slug, **params)),
        (_("Summary (PDF)"), _url("reports_export_pdf", slug, as_of=params.get("as_of"))),
        (_("Audit package (ZIP)"), _url("reports_export_package", slug, **params)),
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
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
        return {
            "policy": self.policy.slug,
            "as_of": ledger.utc_iso(self.moment) or "",
            **self.filters.as_record(),
        }

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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
def reports_export_csv(request, slug: str):
    """Every signature in scope up to the moment, one row each, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    signatures = figures.signatures(scope.policy, scope.timeline, scope.moment, scope.filters)
    services.record_export(
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
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
def reports_export_people_csv(request, slug: str):
    """Everyone in scope at the moment with their status, streamed."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    people = figures.people(scope.timeline, scope.moment, scope.filters)
    services.record_export(
        actor=request.user, what="people.csv", filters=scope.record, rows=people.count()
    )
    return _download(
        exports.people_csv(people),
        filename=f"{scope.filename('people')}.csv",
        content_type="text/csv; charset=utf-8",
        streaming=True,
    )


@require_GET
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
def reports_export_xlsx(request, slug: str):
    """The acknowledgements CSV as a workbook, built in a temporary file (XLSX cannot stream)."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    signatures = figures.signatures(scope.policy, scope.timeline, scope.moment, scope.filters)
    about = [
        ("Policy", scope.policy.name),
        ("As of (UTC)", ledger.utc_iso(scope.moment) or ""),
        ("Filters", ", ".join(f"{k}={v}" for k, v in scope.filters.as_record().items()) or "none"),
        ("Exported by", exports.exported_by(request.user)),
        ("Exported at (UTC)", ledger.utc_iso(timezone.now()) or ""),
    ]
    workbook = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it when sent
    try:
        rows = exports.write_acknowledgements_xlsx(workbook, signatures, about=about)
        services.record_export(
            actor=request.user, what="acknowledgements.xlsx", filters=scope.record, rows=rows
        )
    except BaseException:
        workbook.close()
        raise
    workbook.seek(0)
    return _download(
        workbook, filename=f"{scope.filename('acknowledgements')}.xlsx", content_type=XLSX_TYPE
    )


@require_GET
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
def reports_export_pdf(request, slug: str):
    """The dashboard's figures and charts for one policy at a moment, as a PDF."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    policy_figures = figures.policy_figures(scope.policy, scope.timeline, scope.moment)
    pdf = exports.summary_pdf(policy_figures, generated_by=exports.exported_by(request.user))
    services.record_export(
        actor=request.user,
        what="summary.pdf",
        filters={"policy": scope.policy.slug, "as_of": ledger.utc_iso(scope.moment) or ""},
        rows=policy_figures.completion.total,
    )
    return _download(
        io.BytesIO(pdf),
        filename=f"{scope.filename('summary')}.pdf",
        content_type="application/pdf",
    )


@require_GET
@login_required
@permission_required("acknowledgements.view_reports", raise_exception=True)
def reports_export_package(request, slug: str):
    """One ZIP an external auditor can check without the portal (see its README.txt)."""
    scope = _export_scope(request, slug)
    if isinstance(scope, HttpResponse):
        return scope
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it when sent
    try:
        summary = exports.write_package(
            archive,
            policy=scope.policy,
            timeline=scope.timeline,
            moment=scope.moment,
            filters=scope.filters,
            exported_by=exports.exported_by(request.user),
        )
        services.record_export(
            actor=request.user,
            what="audit-package.zip",
            filters=scope.record,
            rows=summary.signatures,
        )
    except BaseException:
        archive.close()
        raise
    archive.seek(0)
    return _download(
        archive, filename=f"{scope.filename('audit-package')}.zip", content_type="application/zip"
    )


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
]
