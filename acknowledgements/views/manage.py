"""Policy administrators: policies, drafts, diffs, publishing, fan-out and concerns."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.manage import (
    DraftForm,
    PolicyAudiencesForm,
    PolicyForm,
    RenewalPeriodForm,
)
from acknowledgements.models import (
    ConcernReport,
    Notification,
    Policy,
    PolicyRevision,
)
from acknowledgements.notifications import sending
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies.text import render_html
from acknowledgements.reports import figures
from acknowledgements.standings import coverage
from acknowledgements.views.access import administrators_only

# The live preview posts the whole text on each pause in typing; no policy comes near this.
MAX_PREVIEW_CHARS = 200_000


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
        "renewal_periods",
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


def _policy_page(
    request,
    policy: Policy,
    audiences_form: PolicyAudiencesForm | None = None,
    renewal_form: RenewalPeriodForm | None = None,
    status: int = 200,
):
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
            "audiences_form": audiences_form
            or PolicyAudiencesForm(initial={"audiences": list(policy.audiences.all())}),
            "renewal_form": renewal_form
            or RenewalPeriodForm(
                initial={"months": timeline.renewal.months if timeline.renewal else 0}
            ),
        },
        status=status,
    )


@require_GET
@administrators_only
def manage_policy(request, slug: str):
    policy = get_object_or_404(Policy.objects.select_related("owner"), slug=slug)
    return _policy_page(request, policy)


@require_POST
@administrators_only
def manage_policy_renewal(request, slug: str):
    policy = get_object_or_404(Policy.objects.select_related("owner"), slug=slug)
    form = RenewalPeriodForm(request.POST)
    if not form.is_valid():
        return _policy_page(request, policy, renewal_form=form, status=400)
    months = form.cleaned_data["months"]
    if not policy_actions.set_renewal_period(actor=request.user, policy=policy, months=months):
        messages.info(request, _("The renewal period was already that: nothing changed."))
    elif months:
        messages.success(
            request,
            ngettext(
                "From now on, %(policy)s is re-acknowledged every month; signatures older than "
                "that must be renewed.",
                "From now on, %(policy)s is re-acknowledged every %(months)s months; signatures "
                "older than that must be renewed.",
                months,
            )
            % {"policy": policy, "months": months},
        )
    else:
        messages.success(
            request,
            _(
                "%(policy)s no longer asks for renewal: signatures count while their version is in effect."
            )
            % {"policy": policy},
        )
    return redirect("acknowledgements:manage_policy", slug=policy.slug)


@require_POST
@administrators_only
def manage_policy_audiences(request, slug: str):
    policy = get_object_or_404(Policy.objects.select_related("owner"), slug=slug)
    form = PolicyAudiencesForm(request.POST)
    if not form.is_valid():
        return _policy_page(request, policy, audiences_form=form, status=400)
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


urlpatterns = [
    path("manage/", manage_home, name="manage_home"),
    path("manage/policies/new/", manage_policy_new, name="manage_policy_new"),
    path("manage/policies/<slug:slug>/", manage_policy, name="manage_policy"),
    path(
        "manage/policies/<slug:slug>/audiences/",
        manage_policy_audiences,
        name="manage_policy_audiences",
    ),
    path(
        "manage/policies/<slug:slug>/renewal/",
        manage_policy_renewal,
        name="manage_policy_renewal",
    ),
    path("manage/policies/<slug:slug>/revisions/new/", manage_draft_new, name="manage_draft_new"),
    path("manage/preview/", manage_preview, name="manage_preview"),
    path("manage/revisions/<int:pk>/edit/", manage_draft_edit, name="manage_draft_edit"),
    path("manage/revisions/<int:pk>/delete/", manage_draft_delete, name="manage_draft_delete"),
]
