"""Auditors and administrators: dashboard, lists, as-of views, history, audit log, exports.

Every page is read-only and answers GET only. An export is the one thing that writes: its audit
record (evidence_audit.record_export), before the file is served. The Excel workbook and the audit
package are asked for with a POST and built by a task (an ExportJob), whose page shows its
progress to the person who asked and offers the file when it is ready.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from acknowledgements.evidence import audit as evidence_audit
from acknowledgements.evidence import ledger
from acknowledgements.forms.reports import AsOfForm, AuditLogFilterForm, PeopleFilterForm
from acknowledgements.models import LedgerEntry, Policy, PolicyRevision, User
from acknowledgements.reports import audit_log, charts, figures, history, lists
from acknowledgements.reports.figures import PolicyFigures, StatusCount
from acknowledgements.reports.lists import DEFAULT_SORT, PeopleFilter
from acknowledgements.standings import coverage
from acknowledgements.views.access import readers_of_reports_only

PAGE_SIZE = 50


# --- Helpers -------------------------------------------------------------------------------------


def report_url(name: str, *args: Any, **params: Any) -> str:
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


def report_moment(form: AsOfForm) -> Moment:
    asked = form.moment
    return Moment(asked or timezone.now(), asked is not None)


def people_filter(form: PeopleFilterForm) -> PeopleFilter:
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
            report_url("reports_people", slug, as_of=moment.param, status=part.status, **params),
            charts.percent_label(part.percent),
        )
        for part in completion.parts
    ]


@dataclass(frozen=True)
class ExportLink:
    """An export's button: a POST (each export is recorded), to the URL with the filters."""

    label: str
    url: str
    # Built by a task: the button leads to the job's progress page.
    background: bool = False


def export_links(slug: str, params: dict[str, Any]) -> list[ExportLink]:
    return [
        ExportLink(_("Acknowledgements (CSV)"), report_url("reports_export_csv", slug, **params)),
        ExportLink(
            _("People and status (CSV)"), report_url("reports_export_people_csv", slug, **params)
        ),
        ExportLink(
            _("Acknowledgements (Excel)"), report_url("reports_export_xlsx", slug, **params), True
        ),
        ExportLink(
            _("Summary (PDF)"), report_url("reports_export_pdf", slug, as_of=params.get("as_of"))
        ),
        ExportLink(
            _("Audit package (ZIP)"), report_url("reports_export_package", slug, **params), True
        ),
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
            url=report_url("reports_people", slug, as_of=moment.param, audience=row.audience.slug),
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
        people_url=report_url("reports_people", slug, as_of=moment.param),
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
    moment = report_moment(form)
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
        links[column] = {
            "url": report_url("reports_people", slug, **params),
            "aria_sort": direction,
        }
    return links


def _policy_and_timeline(slug: str, moment: dt.datetime) -> tuple[Policy, coverage.Timeline]:
    """The policy and its timeline; its published revisions bring the policy along."""
    revisions = list(
        PolicyRevision.objects.published()
        .filter(policy__slug=slug)
        .select_related("policy")
        .prefetch_related("audiences", "policy__renewal_periods")
    )
    policy = revisions[0].policy if revisions else get_object_or_404(Policy, slug=slug)
    return policy, coverage.Timeline.at(revisions, moment)


@require_GET
@readers_of_reports_only
def reports_people(request, slug: str):
    """Everyone in scope of a policy at a moment, filtered, sorted and paginated."""
    form = PeopleFilterForm(request.GET or None)
    moment = report_moment(form)
    filters = people_filter(form)
    policy, timeline = _policy_and_timeline(slug, moment.value)
    people = lists.people(timeline, moment.value, filters)
    page = Paginator(people, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(person, lists.audience_names(person.audience_list, ", ")) for person in page]
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
            "page_url": report_url("reports_people", slug, **params),
            "sort_links": _sort_links(filters, moment, slug),
            "exports": export_links(slug, params | {"sort": ""}),
            "dashboard_url": report_url("reports_dashboard", as_of=moment.param),
        },
    )


# --- One person ----------------------------------------------------------------------------------


@require_GET
@readers_of_reports_only
def reports_person(request, pk: int):
    """A person's full history: evidence events, notifications, receipts, standings."""
    person = get_object_or_404(User.objects.prefetch_related("audiences"), pk=pk)
    form = AsOfForm(request.GET or None)
    moment = report_moment(form)
    return render(
        request,
        "acknowledgements/reports/person.html",
        {
            "person": person,
            "form": form,
            "moment": moment,
            "history": history.person_history(person, moment.value),
        },
    )


# --- Audit log and declines ----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditLogFilter:
    action: str = ""
    actor: str = ""
    since: dt.date | None = None
    until: dt.date | None = None

    def entries(self) -> QuerySet[LedgerEntry]:
        since, until = _date_bounds(self.since, self.until)
        return history.audit_entries(action=self.action, actor=self.actor, since=since, until=until)

    def as_record(self) -> dict[str, str]:
        """The filters that were set, as plain strings (links and the export's audit record)."""
        values = {
            "action": self.action,
            "actor": self.actor,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {key: value for key, value in values.items() if value}


def audit_log_filter(form: AuditLogFilterForm) -> AuditLogFilter:
    """The filters that passed validation (a refused one is left out and shown as an error)."""
    if not form.is_bound:
        return AuditLogFilter()
    form.is_valid()
    data = form.cleaned_data
    return AuditLogFilter(
        action=data.get("action") or "",
        actor=(data.get("actor") or "").strip(),
        since=data.get("since"),
        until=data.get("until"),
    )


@require_GET
@readers_of_reports_only
def reports_audit_log(request):
    """Administrative actions and supersessions, newest first: who did what, when."""
    form = AuditLogFilterForm(request.GET or None, actions=history.audit_actions())
    filters = audit_log_filter(form)
    page = Paginator(filters.entries(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "acknowledgements/reports/audit_log.html",
        {
            "form": form,
            "page": page,
            "events": audit_log.audit_rows(page),
            "page_url": report_url("reports_audit_log", **filters.as_record()),
            # Refused filters are not exported as if they had not been asked for.
            "export_url": None
            if form.errors
            else report_url("reports_audit_log_csv", **filters.as_record()),
        },
    )


@require_POST  # it records the export: never on a GET a link from another site could make
@readers_of_reports_only
def reports_audit_log_csv(request):
    """The audit log as filtered, every entry, streamed; the export is itself recorded first."""
    form = AuditLogFilterForm(request.GET or None, actions=history.audit_actions())
    filters = audit_log_filter(form)
    if form.errors:
        for name, errors in form.errors.items():
            label = form.fields[name].label if name in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else error)
        messages.error(request, _("Nothing was exported."))
        return redirect(report_url("reports_audit_log", **request.GET.dict()))
    entries = filters.entries()
    # The rows as they are now: the export's own audit row, written next, is not one of them.
    newest = entries.values_list("pk", flat=True).first()
    entries = entries.filter(pk__lte=newest or 0)
    evidence_audit.record_export(
        actor=request.user,
        what="audit-log.csv",
        filters=filters.as_record(),
        rows=entries.count(),
    )
    response = StreamingHttpResponse(
        audit_log.audit_log_csv(entries), content_type="text/csv; charset=utf-8"
    )
    filename = f"audit-log-{timezone.now().astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@require_GET
@readers_of_reports_only
def declines(request):
    """Every recorded decline, newest first, for administrators and auditors to follow up."""
    page = Paginator(lists.declines(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(entry, ledger.decode(entry).get("reason")) for entry in page]
    return render(request, "acknowledgements/reports/declines.html", {"page": page, "rows": rows})


urlpatterns = [
    path("reports/", reports_dashboard, name="reports_dashboard"),
    path("reports/policies/<slug:slug>/people/", reports_people, name="reports_people"),
    path("reports/people/<int:pk>/", reports_person, name="reports_person"),
    path("reports/audit-log/", reports_audit_log, name="reports_audit_log"),
    path("reports/audit-log/export.csv", reports_audit_log_csv, name="reports_audit_log_csv"),
    path("reports/declines/", declines, name="declines"),
]
