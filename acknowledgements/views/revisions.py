"""A revision's page for administrators: its text and diff, translations, publishing and its
emails' progress."""

from __future__ import annotations

from operator import attrgetter

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.manage import (
    TranslationForm,
)
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    Notification,
    PolicyRevision,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies import diffs
from acknowledgements.policies.text import render_html
from acknowledgements.standings import coverage
from acknowledgements.views.access import administrators_only

MAX_FAILURES_SHOWN = 50


def _previous_published(revision: PolicyRevision) -> PolicyRevision | None:
    """What a revision changes: the one in effect now for a draft, else the one it followed."""
    published = list(revision.policy.revisions.published().exclude(pk=revision.pk))
    if not revision.is_published:
        current = coverage.Timeline.at(published, timezone.now()).current
        return current or max(published, key=attrgetter("publication_position"), default=None)
    order = revision.publication_position
    earlier = [r for r in published if r.publication_position < order]
    return max(earlier, key=attrgetter("publication_position"), default=None)


def _fanout_context(revision: PolicyRevision) -> dict:
    progress = sending.progress(revision)
    failures = (
        Notification.objects.filter(revision=revision, status=Notification.Status.FAILED)
        .select_related("person")
        .order_by("pk")[:MAX_FAILURES_SHOWN]
        if progress.failed
        else []
    )
    return {
        "progress": progress,
        "preparing": progress.preparing,
        "refresh": progress.preparing or not progress.done,
        "failures": failures,
    }


# The live preview posts the whole text on each pause in typing; no policy comes near this.


# --- Revisions and publishing ----------------------------------------------------------------------


@require_GET
@administrators_only
def manage_revision(request, pk: int):
    revision = get_object_or_404(
        PolicyRevision.objects.select_related("policy", "created_by", "published_by")
        .prefetch_related("audiences")
        .annotate(signatures=Count("acknowledgements")),
        pk=pk,
    )
    previous = _previous_published(revision)
    translations = {t.language: t for t in revision.translations.all()}
    context = {
        "revision": revision,
        "policy": revision.policy,
        "timeline": coverage.timeline_for(revision.policy),
        "now": timezone.now(),
        "previous": previous,
        "rows": diffs.side_by_side(previous.body, revision.body) if previous else [],
        "draft_html": "" if revision.is_published else render_html(revision.body),
        # One row per language: its translation (to edit, or to read once frozen), or none yet.
        "languages": [
            (code, name, translations.get(code))
            for code, name in settings.LANGUAGES
            if code != AUTHORITATIVE_LANGUAGE
        ],
    }
    if revision.is_published:
        context |= _fanout_context(revision)
    return render(request, "acknowledgements/manage/revision.html", context)


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_translation(request, pk: int, language: str):
    """Add a translation (or change a draft's); a published revision's is final once saved."""
    revision = get_object_or_404(PolicyRevision.objects.select_related("policy"), pk=pk)
    if language == AUTHORITATIVE_LANGUAGE or language not in dict(settings.LANGUAGES):
        raise Http404(_("No such language."))
    existing = revision.translations.filter(language=language).first()
    form = TranslationForm(
        request.POST if request.method == "POST" else None,
        initial={
            "title": existing.title if existing else "",
            "body": existing.body if existing else revision.body,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            policy_actions.save_translation(
                actor=request.user,
                revision=revision,
                language=language,
                body=form.cleaned_data["body"],
                title=form.cleaned_data["title"],
            )
        except ActionRefused as refused:
            form.add_error("body", str(refused))
        else:
            messages.success(request, _("The translation is saved."))
            return redirect("acknowledgements:manage_revision", pk=revision.pk)
    return render(
        request,
        "acknowledgements/manage/translation.html",
        {
            "revision": revision,
            "policy": revision.policy,
            "language_name": dict(settings.LANGUAGES)[language],
            "language": language,
            "existing": existing,
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_publish(request, pk: int):
    """GET states what publishing will do; POST does it."""
    revision = get_object_or_404(
        PolicyRevision.objects.select_related("policy").prefetch_related("audiences"), pk=pk
    )
    if revision.is_published:
        messages.info(request, _("This revision is already published."))
        return redirect("acknowledgements:manage_revision", pk=revision.pk)
    if request.method == "POST":
        try:
            policy_actions.publish_revision(actor=request.user, revision=revision)
        except ActionRefused as refused:
            messages.error(request, str(refused))
            return redirect("acknowledgements:manage_publish", pk=revision.pk)
        messages.success(
            request,
            _("%(policy)s %(version)s is published.")
            % {"policy": revision.policy.name, "version": revision.version},
        )
        return redirect("acknowledgements:manage_revision", pk=revision.pk)
    return render(
        request,
        "acknowledgements/manage/publish.html",
        {
            "revision": revision,
            "policy": revision.policy,
            "impact": policy_actions.publication_impact(revision),
            "scheduled": revision.effective_at > timezone.now(),
        },
    )


@require_POST
@administrators_only
def manage_retry_failed(request, pk: int):
    revision = get_object_or_404(PolicyRevision.objects.published(), pk=pk)
    count = notification_actions.retry_failed_notifications(actor=request.user, revision=revision)
    if count:
        messages.success(request, _("%(count)d email(s) will be sent again.") % {"count": count})
    else:
        messages.info(request, _("No email of this revision has failed."))
    return redirect("acknowledgements:manage_revision", pk=revision.pk)


urlpatterns = [
    path("manage/revisions/<int:pk>/", manage_revision, name="manage_revision"),
    path("manage/revisions/<int:pk>/publish/", manage_publish, name="manage_publish"),
    path(
        "manage/revisions/<int:pk>/translations/<str:language>/",
        manage_translation,
        name="manage_translation",
    ),
    path("manage/revisions/<int:pk>/retry/", manage_retry_failed, name="manage_retry_failed"),
]
