"""A person's own preferences."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import i18n
from django.views.decorators.http import require_http_methods, require_POST

from acknowledgements.forms.account import PreferencesForm
from acknowledgements.people import actions as people_actions


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request):
    form = PreferencesForm(
        request.POST if request.method == "POST" else None,
        initial={"language": request.user.preferred_language},
    )
    if request.method == "POST" and form.is_valid():
        people_actions.set_preferred_language(
            person=request.user, language=form.cleaned_data["language"]
        )
        translation.activate(form.cleaned_data["language"])
        messages.success(request, _("Your preferences are saved."))
        return redirect("acknowledgements:preferences")
    return render(
        request,
        "acknowledgements/preferences.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@require_POST
def set_language(request):
    """Django's set_language; a signed-in person's choice is also saved in their account."""
    form = PreferencesForm(request.POST)
    if request.user.is_authenticated and form.is_valid():
        people_actions.set_preferred_language(
            person=request.user, language=form.cleaned_data["language"]
        )
    return i18n.set_language(request)


urlpatterns = [path("preferences/", preferences, name="preferences")]
