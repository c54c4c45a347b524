"""Policy administrators manage people: find, add and invite, edit, retire and bring back,
their audiences and their exemption from the signing gate, and the list as a CSV file."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements.evidence import audit
from acknowledgements.exceptions import ActionRefused
from acknowledgements.forms.people import (
    DeactivateForm,
    GateExemptionForm,
    PeopleImportForm,
    PeopleSearchForm,
    PersonAudiencesForm,
    PersonForm,
)
from acknowledgements.models import PeopleImport, User
from acknowledgements.people import access, directory, import_jobs
from acknowledgements.people import actions as people_actions
from acknowledgements.standings import coverage
from acknowledgements.views.access import administrators_only

PEOPLE_PER_PAGE = 50


@require_GET
@administrators_only
def manage_people(request):
    form = PeopleSearchForm(request.GET)
    people = User.objects.prefetch_related("audiences").order_by("full_name", "email")
    query = {}
    if form.is_valid():
        if text := form.cleaned_data["q"].strip():
            people = people.filter(Q(full_name__icontains=text) | Q(email__icontains=text))
            query["q"] = text
        if audience := form.cleaned_data["audience"]:
            people = people.filter(audiences=audience)
            query["audience"] = audience.slug
    page = Paginator(people, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "acknowledgements/manage/people.html",
        {"form": form, "page": page, "query": urlencode(query)},
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_person_new(request):
    form = PersonForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            person = people_actions.add_person(
                actor=request.user,
                email=data["email"],
                full_name=data["full_name"],
                audiences=list(data["audiences"]),
                joined_at=data["joined_at"],
                manager=data["manager"],
                employee_number=data["employee_number"],
                external_id=data["external_id"],
                language=data["language"],
            )
        except ActionRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(
                request,
                _("%(name)s is added, and an invitation is on its way to %(email)s.")
                % {"name": person.full_name, "email": person.email},
            )
            return redirect("acknowledgements:manage_person", pk=person.pk)
    return render(
        request,
        "acknowledgements/manage/person_form.html",
        {"form": form, "person": None, "people": _active_emails()},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_person_edit(request, pk: int):
    person = get_object_or_404(User.objects.select_related("manager"), pk=pk)
    initial = {
        "email": person.email,
        "full_name": person.full_name,
        "manager": person.manager,
        "employee_number": person.employee_number,
        "external_id": person.external_id or "",
    }
    form = PersonForm(
        request.POST if request.method == "POST" else None, initial=initial, editing=person
    )
    if request.method == "POST" and form.is_valid():
        try:
            people_actions.update_person(
                actor=request.user,
                person=person,
                **{field: form.cleaned_data[field] for field in people_actions.EDITABLE_FIELDS},
            )
        except ActionRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, _("The details of %(name)s are saved.") % {"name": person})
            return redirect("acknowledgements:manage_person", pk=person.pk)
    return render(
        request,
        "acknowledgements/manage/person_form.html",
        {"form": form, "person": person, "people": _active_emails(exclude=person)},
        status=400 if form.errors else 200,
    )


def _active_emails(exclude: User | None = None) -> list[str]:
    """The addresses a manager field suggests (a datalist): everyone active."""
    people = User.objects.filter(is_active=True)
    if exclude is not None:
        people = people.exclude(pk=exclude.pk)
    return list(people.order_by("email").values_list("email", flat=True)[:5_000])


def _person_page(
    request,
    person: User,
    *,
    exemption_form: GateExemptionForm | None = None,
    audiences_form: PersonAudiencesForm | None = None,
    deactivate_form: DeactivateForm | None = None,
    status: int = 200,
):
    held = access.roles_of(person)
    return render(
        request,
        "acknowledgements/manage/person.html",
        {
            "person": person,
            "standings": coverage.standings_for(person) if person.is_active else [],
            "exemption_form": exemption_form
            or GateExemptionForm(initial={"reason": person.gate_exemption}),
            "audiences_form": audiences_form
            or PersonAudiencesForm(initial={"audiences": list(person.audiences.all())}),
            "deactivate_form": deactivate_form or DeactivateForm(),
            "roles": [access.ROLE_LABELS[role] for role in access.ROLES if role in held],
            "role_history": access.role_history(person),
        },
        status=status,
    )


def _person(pk: int) -> User:
    return get_object_or_404(
        User.objects.select_related("manager").prefetch_related("audiences"), pk=pk
    )


@require_GET
@administrators_only
def manage_person(request, pk: int):
    return _person_page(request, _person(pk))


@require_POST
@administrators_only
def manage_person_audiences(request, pk: int):
    person = _person(pk)
    form = PersonAudiencesForm(request.POST)
    if not form.is_valid():
        return _person_page(request, person, audiences_form=form, status=400)
    people_actions.set_person_audiences(
        actor=request.user, person=person, audiences=list(form.cleaned_data["audiences"])
    )
    messages.success(
        request, _("The audiences of %(name)s are saved.") % {"name": person.full_name}
    )
    return redirect("acknowledgements:manage_person", pk=person.pk)


@require_POST
@administrators_only
def manage_person_exemption(request, pk: int):
    """Grant an exemption from the signing gate with a reason, or lift it (`lift`)."""
    person = _person(pk)
    if "lift" in request.POST:
        people_actions.set_gate_exemption(actor=request.user, person=person, reason="")
        messages.success(request, _("%(name)s is no longer exempt.") % {"name": person.full_name})
        return redirect("acknowledgements:manage_person", pk=person.pk)
    form = GateExemptionForm(request.POST)
    if not form.is_valid():
        return _person_page(request, person, exemption_form=form, status=400)
    people_actions.set_gate_exemption(
        actor=request.user, person=person, reason=form.cleaned_data["reason"]
    )
    messages.success(
        request,
        _("%(name)s is exempt from the signing gate.") % {"name": person.full_name},
    )
    return redirect("acknowledgements:manage_person", pk=person.pk)


@require_POST
@administrators_only
def manage_person_invite(request, pk: int):
    person = _person(pk)
    try:
        people_actions.invite_person(actor=request.user, person=person)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(
            request, _("A new invitation is on its way to %(email)s.") % {"email": person.email}
        )
    return redirect("acknowledgements:manage_person", pk=person.pk)


@require_POST
@administrators_only
def manage_person_deactivate(request, pk: int):
    person = _person(pk)
    form = DeactivateForm(request.POST)
    if not form.is_valid():
        return _person_page(request, person, deactivate_form=form, status=400)
    try:
        people_actions.deactivate_person(
            actor=request.user, person=person, left_at=form.cleaned_data["left_at"]
        )
    except ActionRefused as refused:
        form.add_error("left_at", str(refused))
        return _person_page(request, person, deactivate_form=form, status=400)
    messages.success(
        request,
        _("%(name)s is recorded as having left; their records and receipts are kept.")
        % {"name": person.full_name},
    )
    return redirect("acknowledgements:manage_person", pk=person.pk)


@require_POST
@administrators_only
def manage_person_reactivate(request, pk: int):
    person = _person(pk)
    people_actions.reactivate_person(actor=request.user, person=person)
    messages.success(request, _("%(name)s is active again.") % {"name": person.full_name})
    return redirect("acknowledgements:manage_person", pk=person.pk)


@require_POST
@administrators_only
def manage_people_export(request):
    """Everyone as CSV, in the columns an import reads; the export is audited first."""
    people = directory.directory_people()
    audit.record_export(
        actor=request.user, what="people-directory.csv", filters={}, rows=people.count()
    )
    response = StreamingHttpResponse(
        (block.encode() for block in directory.directory_csv(people)),
        content_type="text/csv; charset=utf-8",
    )
    filename = f"people-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@require_http_methods(["GET", "POST"])
@administrators_only
def manage_people_import(request):
    """Upload a CSV of people: it is checked in the background and nothing changes yet."""
    form = PeopleImportForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
    )
    if request.method == "POST" and form.is_valid():
        job = import_jobs.request_import(
            actor=request.user, upload=form.cleaned_data["file"], invite=form.cleaned_data["invite"]
        )
        return redirect("acknowledgements:manage_people_import_job", pk=job.pk)
    recent = PeopleImport.objects.select_related("requested_by")[:10]
    return render(
        request,
        "acknowledgements/manage/people_import.html",
        {"form": form, "recent": recent},
        status=400 if form.errors else 200,
    )


@require_GET
@administrators_only
def manage_people_import_job(request, pk: int):
    job = get_object_or_404(PeopleImport.objects.select_related("requested_by"), pk=pk)
    return render(request, "acknowledgements/manage/people_import_job.html", {"job": job})


@require_POST
@administrators_only
def manage_people_import_apply(request, pk: int):
    job = get_object_or_404(PeopleImport, pk=pk)
    try:
        import_jobs.confirm_import(actor=request.user, job=job)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    return redirect("acknowledgements:manage_people_import_job", pk=job.pk)


urlpatterns = [
    path("manage/people/", manage_people, name="manage_people"),
    path("manage/people/new/", manage_person_new, name="manage_person_new"),
    path("manage/people/export.csv", manage_people_export, name="manage_people_export"),
    path("manage/people/import/", manage_people_import, name="manage_people_import"),
    path(
        "manage/people/import/<int:pk>/",
        manage_people_import_job,
        name="manage_people_import_job",
    ),
    path(
        "manage/people/import/<int:pk>/apply/",
        manage_people_import_apply,
        name="manage_people_import_apply",
    ),
    path("manage/people/<int:pk>/", manage_person, name="manage_person"),
    path("manage/people/<int:pk>/edit/", manage_person_edit, name="manage_person_edit"),
    path(
        "manage/people/<int:pk>/audiences/",
        manage_person_audiences,
        name="manage_person_audiences",
    ),
    path(
        "manage/people/<int:pk>/exemption/",
        manage_person_exemption,
        name="manage_person_exemption",
    ),
    path("manage/people/<int:pk>/invite/", manage_person_invite, name="manage_person_invite"),
    path(
        "manage/people/<int:pk>/deactivate/",
        manage_person_deactivate,
        name="manage_person_deactivate",
    ),
    path(
        "manage/people/<int:pk>/reactivate/",
        manage_person_reactivate,
        name="manage_person_reactivate",
    ),
]
