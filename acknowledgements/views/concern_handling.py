"""Administrators handle the concerns people report: the list, a report's status, its attachment."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from acknowledgements import concerns as concern_actions
from acknowledgements.forms.manage import (
    ConcernFilterForm,
    ConcernStatusForm,
)
from acknowledgements.models import (
    ConcernReport,
)
from acknowledgements.views.access import administrators_only

CONCERNS_PER_PAGE = 25


# The live preview posts the whole text on each pause in typing; no policy comes near this.


# --- Concerns ------------------------------------------------------------------------------------


def _prefix(report: ConcernReport) -> str:
    # One status form per row: distinct ids keep every label tied to its own select.
    return f"concern-{report.pk}"


@require_GET
@administrators_only
def manage_concerns(request):
    form = ConcernFilterForm(request.GET)
    reports = ConcernReport.objects.select_related("reporter").order_by("-created_at", "-pk")
    status = form.cleaned_data["status"] if form.is_valid() else ""
    if status:
        reports = reports.filter(status=status)
    page = Paginator(reports, CONCERNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "acknowledgements/manage/concerns.html",
        {
            "form": form,
            "page": page,
            "rows": [
                (
                    report,
                    ConcernStatusForm(initial={"status": report.status}, prefix=_prefix(report)),
                )
                for report in page
            ],
            "status": status,
            "query": urlencode({"status": status} if status else {}),
        },
    )


@require_POST
@administrators_only
def manage_concern_status(request, pk: int):
    report = get_object_or_404(ConcernReport, pk=pk)
    form = ConcernStatusForm(request.POST, prefix=_prefix(report))
    if not form.is_valid():
        messages.error(request, _("Choose one of the statuses listed."))
    else:
        concern_actions.set_concern_status(
            actor=request.user, report=report, status=form.cleaned_data["status"]
        )
        messages.success(
            request,
            _("Concern #%(number)d is now “%(status)s”.")
            % {
                "number": report.pk,
                "status": ConcernReport.Status(form.cleaned_data["status"]).label,
            },
        )
    # Back to the list as it was filtered.
    shown = request.POST.get("shown_status", "")
    url = reverse("acknowledgements:manage_concerns")
    if shown in ConcernReport.Status.values:
        url = f"{url}?{urlencode({'status': shown})}"
    return redirect(url)


@require_GET
@administrators_only
def manage_concern_attachment(request, pk: int):
    """The reporter's file, always downloaded: it is never shown inline in the portal's origin."""
    report = get_object_or_404(ConcernReport, pk=pk)
    if not report.attachment:
        raise Http404(_("This concern has no attachment."))
    return FileResponse(
        report.attachment.open("rb"),
        as_attachment=True,
        filename=report.attachment.name.rsplit("/", 1)[-1],
        content_type="application/octet-stream",
    )


urlpatterns = [
    path("manage/concerns/", manage_concerns, name="manage_concerns"),
    path("manage/concerns/<int:pk>/status/", manage_concern_status, name="manage_concern_status"),
    path(
        "manage/concerns/<int:pk>/attachment/",
        manage_concern_attachment,
        name="manage_concern_attachment",
    ),
]
