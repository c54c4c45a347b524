"""Reporting a concern (the policy's section 8)."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods

from acknowledgements import concerns as concern_actions
from acknowledgements.forms.concerns import ConcernForm

# The thank-you page is reached by a redirect: the session carries the new report's number.
REPORTED = "concern_reported"


@require_http_methods(["GET", "POST"])
@login_required
def concern_new(request):
    if request.method == "POST":
        form = ConcernForm(request.POST, request.FILES)
        if form.is_valid():
            report = concern_actions.report_concern(
                reporter=request.user,
                category=form.cleaned_data["category"],
                description=form.cleaned_data["description"],
                anonymous=form.cleaned_data["anonymous"],
                attachment=form.cleaned_data["attachment"],
            )
            request.session[REPORTED] = report.pk
            return redirect("acknowledgements:concern_thanks")
    else:
        form = ConcernForm()
    return render(
        request,
        "acknowledgements/concerns/new.html",
        {"form": form, "compliance_email": settings.PORTAL_COMPLIANCE_EMAIL},
        status=400 if form.is_bound else 200,
    )


@require_GET
@login_required
def concern_thanks(request):
    return render(
        request,
        "acknowledgements/concerns/thanks.html",
        {
            "compliance_email": settings.PORTAL_COMPLIANCE_EMAIL,
            "number": request.session.get(REPORTED),
        },
    )


urlpatterns = [
    path("concerns/new/", concern_new, name="concern_new"),
    path("concerns/thanks/", concern_thanks, name="concern_thanks"),
]
