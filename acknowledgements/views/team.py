"""Managers' team page, and reminders sent by hand.

A manager (anyone with an active direct report) sees their direct reports only, with where each
stands on every policy that applies to them, and may remind them; anyone else gets a 404, as
for a page that does not exist. Policy administrators remind people from a report list: one
person, the ones ticked, or everyone the list's filters match (every page of it).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from acknowledgements.forms.reports import PeopleFilterForm
from acknowledgements.models import Policy, User
from acknowledgements.notifications import reminders
from acknowledgements.reports import lists
from acknowledgements.standings import coverage
from acknowledgements.views.access import administrators_only
from acknowledgements.views.reports import people_filter


@dataclass(frozen=True)
class Line:
    standing: coverage.Standing
    reminded_today: bool


@dataclass(frozen=True)
class Member:
    person: User
    lines: list[Line]


def _reports_or_404(manager: User):
    reports = reminders.direct_reports(manager)
    if not reports.exists():
        raise Http404
    return reports


@require_GET
@login_required
def team(request):
    """A manager's direct reports, each with their status toward each policy that applies."""
    people = list(_reports_or_404(request.user).order_by("full_name", "email"))
    now = timezone.now()
    standings = {person.pk: coverage.standings_for(person, moment=now) for person in people}
    policy_ids = {s.policy.pk for listed in standings.values() for s in listed}
    reminded = set(
        reminders.reminded_on(policy_ids, reminders.reminder_day(now))
        .filter(person__in=people)
        .values_list("person_id", "revision__policy_id")
    )
    members = [
        Member(
            person,
            [Line(s, (person.pk, s.policy.pk) in reminded) for s in standings[person.pk]],
        )
        for person in people
    ]
    return render(request, "acknowledgements/team.html", {"members": members})


@require_POST
@login_required
def team_remind(request):
    """A manager reminds one of their direct reports to sign one policy (once a day)."""
    reports = _reports_or_404(request.user)
    person_id, slug = request.POST.get("person", ""), request.POST.get("policy", "")
    if not person_id.isdigit() or not slug:
        return HttpResponseBadRequest(
            _("Say whom to remind, and about which policy."),
            content_type="text/plain; charset=utf-8",
        )
    person = get_object_or_404(reports, pk=int(person_id))
    policy = get_object_or_404(Policy, slug=slug)
    reminded = reminders.remind_direct_report(manager=request.user, person=person, policy=policy)
    names = {"person": person.full_name or person.email, "policy": policy.name}
    if reminded.queued:
        messages.success(request, _("Reminder queued for %(person)s about %(policy)s.") % names)
    elif reminded.already_reminded:
        messages.info(request, _("%(person)s was already reminded about %(policy)s today.") % names)
    else:
        messages.info(request, _("%(person)s has nothing to sign for %(policy)s.") % names)
    return redirect("acknowledgements:team")


@require_POST
@administrators_only
def reports_people_remind(request, slug: str):
    """Remind one person of a report list, the ones ticked, or everyone it lists."""
    policy = get_object_or_404(Policy, slug=slug)
    back = reverse("acknowledgements:reports_people", args=[slug])
    if request.GET:
        back = f"{back}?{request.GET.urlencode()}"
    if "everyone" in request.POST:
        form = PeopleFilterForm(request.GET or None)
        filters = people_filter(form)
        if form.errors:  # a refused filter would widen the list: remind nobody
            messages.error(request, _("Correct the list's filters first; nobody was reminded."))
            return redirect(back)
        now = timezone.now()
        listed = lists.people(coverage.timeline_for(policy, now), now, filters)
        person_ids = listed.order_by().values("pk")
    else:
        chosen = request.POST.getlist("person") or request.POST.getlist("selected")
        if not all(value.isdigit() for value in chosen):
            return HttpResponseBadRequest(
                _("Choose people from the list."), content_type="text/plain; charset=utf-8"
            )
        if not chosen:
            messages.error(request, _("Tick the people to remind, or remind everyone listed."))
            return redirect(back)
        person_ids = [int(value) for value in chosen]
    reminded = reminders.send_manual_reminders(
        actor=request.user, policy=policy, person_ids=person_ids
    )
    messages.success(request, reminded_message(reminded))
    return redirect(back)


def reminded_message(reminded: reminders.Reminded) -> str:
    """How many were reminded and why the others were not, in words."""
    if reminded.queued:
        parts = [
            ngettext(
                "Reminder queued for %(count)d person.",
                "Reminder queued for %(count)d people.",
                reminded.queued,
            )
            % {"count": reminded.queued}
        ]
    else:
        parts = [_("No reminder was queued.")]
    if reminded.already_reminded:
        parts.append(
            ngettext(
                "%(count)d person had already been reminded today.",
                "%(count)d people had already been reminded today.",
                reminded.already_reminded,
            )
            % {"count": reminded.already_reminded}
        )
    if reminded.nothing_to_sign:
        parts.append(
            ngettext(
                "%(count)d person has nothing to sign.",
                "%(count)d people have nothing to sign.",
                reminded.nothing_to_sign,
            )
            % {"count": reminded.nothing_to_sign}
        )
    return " ".join(parts)


urlpatterns = [
    path("team/", team, name="team"),
    path("team/remind/", team_remind, name="team_remind"),
    path(
        "reports/policies/<slug:slug>/people/remind/",
        reports_people_remind,
        name="reports_people_remind",
    ),
]
