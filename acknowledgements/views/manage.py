"""Policy administrators: policies, drafts, diffs, publishing, fan-out and concerns."""

from __future__ import annotations

import datetime as dt
from operator import attrgetter
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements import concerns as concern_actions
from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.manage import (
    ConcernFilterForm,
    ConcernStatusForm,
    DraftForm,
    PolicyAudiencesForm,
    PolicyForm,
    TranslationForm,
)
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    ConcernReport,
    Notification,
    Policy,
    PolicyRevision,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies import diffs
from acknowledgements.policies.text import render_html
from acknowledgements.reports import figures
from acknowledgements.standings import coverage
from acknowledgements.views.access import administrators_only

# The live preview posts the whole text on each pause in typing; no policy comes near this.
MAX_PREVIEW_CHARS = 200_000
CONCERNS_PER_PAGE = 25
# Right after publishing, the background task may not have queued the emails yet.
PREPARING_EMAILS_FOR = dt.timedelta(minutes=5)
MAX_FAILURES_SHOWN = 50


# --- Reading helpers -----------------------------------------------------------------------------


def _progress_by_revision(revision_ids) -> dict[int, sending.Progress]:
    """Every revision's email progress in one query (sending.progress does one each)."""
    counts: dict[int, dict[str, int]] = {}
    rows = (
        Notification.objects.filter(revision_id__in=revision_ids)
        .values("revision_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts.setdefault(row["revision_id"], dict.fromkeys(Notification.Status.values, 0))
        counts[row["revision_id"]][row["status"]] = row["count"]
    empty = dict.fromkeys(Notification.Status.values, 0)
    return {pk: sending.Progress(**counts.get(pk, empty)) for pk in revision_ids}


def _previous_published(revision: PolicyRevision) -> PolicyRevision | None:
    """What a revision changes: the one in effect now for a draft, else the one it followed."""
    published = list(revision.policy.revisions.published().exclude(pk=revision.pk))
    if not revision.is_published:
        current = coverage.Timeline.at(published, timezone.now()).current
        return current or max(published, key=attrgetter("publication_position"), default=None)
    order = revision.publication_position
    earlier = [r for r in published if r.publication_position < order]
    return max(earlier, key=attrgetter("publication_position"), default=None)


def _expects_emails(revision: PolicyRevision) -> bool:
    return revision.is_material or revision.announce


def _fanout_context(revision: PolicyRevision) -> dict:
    progress = sending.progress(revision)
    preparing = (
        _expects_emails(revision)
        and progress.total == 0
        and revision.published_at is not None
        and timezone.now() - revision.published_at < PREPARING_EMAILS_FOR
    )
    failures = (
        Notification.objects.filter(revision=revision, status=Notification.Status.FAILED)
        .select_related("person")
        .order_by("pk")[:MAX_FAILURES_SHOWN]
        if progress.failed
        else []
    )
    return {
        "progress": progress,
        "preparing": preparing,
        "refresh": preparing or not progress.done,
        "failures": failures,
    }


# --- Policies ------------------------------------------------------------------------------------


@require_GET
@administrators_only
def manage_home(request):
    """Every policy at a glance: in effect, scheduled, drafts, who signed the current revision
    (the reports dashboard's figures) and how far its emails went."""
    now = timezone.now()
    completion = {f.policy.pk: f.completion for f in figures.dashboard(now) if f.policy}
    policies = Policy.objects.prefetch_related(
        Prefetch(
            "revisions",
            queryset=PolicyRevision.objects.prefetch_related("audiences").newest_first(),
        ),
        "audiences",
    ).select_related("owner")
    cards = []
    for policy in policies:
        revisions = list(policy.revisions.all())
        published = [r for r in revisions if r.is_published]
        timeline = coverage.Timeline.at(published, now)
        cards.append(
            {
                "policy": policy,
                "current": timeline.current,
                "completion": completion.get(policy.pk),
                "upcoming": timeline.upcoming,
                "drafts": [r for r in revisions if not r.is_published],
                "published": published,
            }
        )
    progress = _progress_by_revision([r.pk for card in cards for r in card["published"]])
    for card in cards:
        card["published"] = [(r, progress[r.pk]) for r in card["published"]]
    return render(
        request,
        "acknowledgements/manage/home.html",
        {
            "cards": cards,
            "new_concerns": ConcernReport.objects.filter(status=ConcernReport.Status.NEW).count(),
        },
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_policy_new(request):
    if request.method == "POST":
        form = PolicyForm(request.POST)
        if form.is_valid():
            try:
                policy = policy_actions.create_policy(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    slug=form.cleaned_data["slug"],
                    owner=form.cleaned_data["owner"],
                    audiences=list(form.cleaned_data["audiences"]),
                )
            except ActionRefused as refused:  # the slug was taken since the form checked it
                form.add_error("slug", str(refused))
            else:
                messages.success(
                    request,
                    _("%(policy)s was created. Draft its first version next.") % {"policy": policy},
                )
                return redirect("acknowledgements:manage_policy", slug=policy.slug)
    else:
        form = PolicyForm(initial={"owner": request.user})
    return render(
        request,
        "acknowledgements/manage/policy_new.html",
        {"form": form},
        status=400 if form.is_bound else 200,
    )


def _policy_page(request, policy: Policy, audiences_form: PolicyAudiencesForm, status: int = 200):
    revisions = (
        policy.revisions.annotate(signatures=Count("acknowledgements"))
        .prefetch_related("audiences")
        .newest_first()
    )
    timeline = coverage.timeline_for(policy)
    return render(
        request,
        "acknowledgements/manage/policy.html",
        {
            "policy": policy,
            "revisions": revisions,
            "timeline": timeline,
            "now": timezone.now(),
            "audiences_form": audiences_form,
        },
        status=status,
    )


@require_GET
@administrators_only
def manage_policy(request, slug: str):
    policy = get_object_or_404(Policy.objects.select_related("owner"), slug=slug)
    form = PolicyAudiencesForm(initial={"audiences": list(policy.audiences.all())})
    return _policy_page(request, policy, form)


@require_POST
@administrators_only
def manage_policy_audiences(request, slug: str):
    policy = get_object_or_404(Policy.objects.select_related("owner"), slug=slug)
    form = PolicyAudiencesForm(request.POST)
    if not form.is_valid():
        return _policy_page(request, policy, form, status=400)
    policy_actions.set_policy_audiences(
        actor=request.user, policy=policy, audiences=list(form.cleaned_data["audiences"])
    )
    messages.success(request, _("The audiences of %(policy)s are saved.") % {"policy": policy})
    return redirect("acknowledgements:manage_policy", slug=policy.slug)


# --- Drafts --------------------------------------------------------------------------------------


def _draft_page(request, form: DraftForm, policy: Policy, draft: PolicyRevision | None):
    body = form["body"].value() or ""
    return render(
        request,
        "acknowledgements/manage/draft_form.html",
        {
            "form": form,
            "policy": policy,
            "draft": draft,
            "preview_html": render_html(body) if len(body) <= MAX_PREVIEW_CHARS else "",
        },
        status=400 if form.is_bound else 200,
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_draft_new(request, slug: str):
    policy = get_object_or_404(Policy, slug=slug)
    if request.method == "POST":
        form = DraftForm(request.POST, policy=policy)
        if form.is_valid():
            try:
                draft = policy_actions.create_draft(
                    actor=request.user,
                    policy=policy,
                    audiences=list(form.cleaned_data["audiences"]),
                    **form.draft_values(),
                )
            except ActionRefused as refused:  # another administrator took the label
                form.add_error("version", str(refused))
            else:
                messages.success(
                    request,
                    _("Draft %(version)s is saved. Nobody sees it until you publish it.")
                    % {"version": draft.version},
                )
                return redirect("acknowledgements:manage_revision", pk=draft.pk)
    else:
        form = DraftForm(policy=policy, initial=DraftForm.initial_for(policy=policy))
    return _draft_page(request, form, policy, None)


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_draft_edit(request, pk: int):
    draft = get_object_or_404(PolicyRevision.objects.select_related("policy"), pk=pk)
    if draft.is_published:
        messages.error(
            request, _("A published revision cannot be edited; draft a new one instead.")
        )
        return redirect("acknowledgements:manage_revision", pk=draft.pk)
    if request.method == "POST":
        form = DraftForm(request.POST, policy=draft.policy, draft=draft)
        if form.is_valid():
            try:
                policy_actions.update_draft(
                    actor=request.user,
                    revision=draft,
                    audiences=list(form.cleaned_data["audiences"]),
                    **form.draft_values(),
                )
            except ActionRefused as refused:  # published meanwhile, or a label clash
                messages.error(request, str(refused))
            else:
                messages.success(
                    request, _("Draft %(version)s is saved.") % {"version": draft.version}
                )
            return redirect("acknowledgements:manage_revision", pk=draft.pk)
    else:
        form = DraftForm(
            policy=draft.policy,
            draft=draft,
            initial=DraftForm.initial_for(policy=draft.policy, draft=draft),
        )
    return _draft_page(request, form, draft.policy, draft)


@require_POST
@administrators_only
def manage_draft_delete(request, pk: int):
    """Asks first: the button posts here, the confirmation page posts again with `confirm`."""
    draft = get_object_or_404(PolicyRevision.objects.select_related("policy"), pk=pk)
    if draft.is_published:
        messages.error(request, _("A published revision cannot be deleted."))
        return redirect("acknowledgements:manage_revision", pk=draft.pk)
    if request.POST.get("confirm") != "yes":
        return render(request, "acknowledgements/manage/draft_delete.html", {"draft": draft})
    try:
        policy_actions.delete_draft(actor=request.user, revision=draft)
    except ActionRefused as refused:
        messages.error(request, str(refused))
        return redirect("acknowledgements:manage_revision", pk=draft.pk)
    messages.success(
        request,
        _("Draft %(version)s of %(policy)s was deleted.")
        % {"version": draft.version, "policy": draft.policy.name},
    )
    return redirect("acknowledgements:manage_policy", slug=draft.policy.slug)


@require_POST
@administrators_only
def manage_preview(request):
    """The draft text as signers will see it, for the live preview next to the editor."""
    body = request.POST.get("body", "")
    if len(body) > MAX_PREVIEW_CHARS:
        return HttpResponseBadRequest(
            _("The text is too long to preview."), content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(render_html(body), content_type="text/html; charset=utf-8")


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
        initial={"body": existing.body if existing else revision.body},
    )
    if request.method == "POST" and form.is_valid():
        try:
            policy_actions.save_translation(
                actor=request.user,
                revision=revision,
                language=language,
                body=form.cleaned_data["body"],
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
    path("manage/", manage_home, name="manage_home"),
    path("manage/policies/new/", manage_policy_new, name="manage_policy_new"),
    path("manage/policies/<slug:slug>/", manage_policy, name="manage_policy"),
    path(
        "manage/policies/<slug:slug>/audiences/",
        manage_policy_audiences,
        name="manage_policy_audiences",
    ),
    path("manage/policies/<slug:slug>/revisions/new/", manage_draft_new, name="manage_draft_new"),
    path("manage/preview/", manage_preview, name="manage_preview"),
    path("manage/revisions/<int:pk>/", manage_revision, name="manage_revision"),
    path("manage/revisions/<int:pk>/edit/", manage_draft_edit, name="manage_draft_edit"),
    path("manage/revisions/<int:pk>/delete/", manage_draft_delete, name="manage_draft_delete"),
    path("manage/revisions/<int:pk>/publish/", manage_publish, name="manage_publish"),
    path(
        "manage/revisions/<int:pk>/translations/<str:language>/",
        manage_translation,
        name="manage_translation",
    ),
    path("manage/revisions/<int:pk>/retry/", manage_retry_failed, name="manage_retry_failed"),
    path("manage/concerns/", manage_concerns, name="manage_concerns"),
    path("manage/concerns/<int:pk>/status/", manage_concern_status, name="manage_concern_status"),
    path(
        "manage/concerns/<int:pk>/attachment/",
        manage_concern_attachment,
        name="manage_concern_attachment",
    ),
]
