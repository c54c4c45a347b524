"""What each SCIM request does to people and audiences: always through the people actions, so
every change is the same audited ledger row as from the pages, naming the token it came by.

Each function is one transaction: a request whose second change is refused leaves nothing of
its first. Refusals are SCIM exceptions (scim2-models), which the views answer as SCIM errors.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from scim2_models import (
    Group,
    GroupMember,
    InvalidValueException,
    MutabilityException,
    NotFoundException,
    PatchOp,
    UniquenessException,
)

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import ApiToken, Audience
from acknowledgements.models import User as Person
from acknowledgements.people import actions as people
from acknowledgements.scim.auth import via
from acknowledgements.scim.resources import (
    PersonFields,
    UserResource,
    person_fields,
    scim_id,
    user_resource,
)


def person_by_id(person_id: str, *, lock: bool = False) -> Person:
    pk = scim_id(person_id)
    people_ = Person.objects.select_for_update() if lock else Person.objects.all()
    person = people_.filter(pk=pk).first() if pk is not None else None
    if person is None:
        raise NotFoundException(detail=f"No user has the id {person_id}.")
    return person


def audience_by_id(audience_id: str, *, lock: bool = False) -> Audience:
    pk = scim_id(audience_id)
    audiences = Audience.objects.select_for_update() if lock else Audience.objects.all()
    audience = audiences.filter(pk=pk).first() if pk is not None else None
    if audience is None:
        raise NotFoundException(detail=f"No group has the id {audience_id}.")
    return audience


def _checked_email(email: str) -> str:
    email = Person.objects.normalize_email(email.strip()).lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidValueException(
            detail=f"userName must be the person's email address; {email!r} is not one."
        ) from None
    return email


def _check_unique(fields: PersonFields, email: str, person: Person | None) -> None:
    others = Person.objects.exclude(pk=person.pk) if person else Person.objects.all()
    if others.filter(email__iexact=email).exists():
        raise UniquenessException(detail=f"Another user has the userName {email}.")
    if fields.external_id and others.filter(external_id=fields.external_id).exists():
        raise UniquenessException(detail=f"Another user has the externalId {fields.external_id}.")


def _manager(fields: PersonFields) -> Person | None:
    if fields.manager_id is None:
        return None
    pk = scim_id(fields.manager_id)
    manager = Person.objects.filter(pk=pk).first() if pk is not None else None
    if manager is None:
        raise InvalidValueException(detail=f"No user has the id {fields.manager_id} (manager).")
    return manager


def _refused(refusal: ActionRefused) -> InvalidValueException:
    return InvalidValueException(detail=str(refusal))


@transaction.atomic
def create_user(*, token: ApiToken, user: UserResource) -> Person:
    """Add the person a SCIM user describes, uninvited (they sign in by SSO)."""
    fields = person_fields(user)
    email = _checked_email(fields.email)
    _check_unique(fields, email, None)
    try:
        person = people.add_person(
            actor=None,
            email=email,
            full_name=fields.full_name or "",
            audiences=[],
            manager=_manager(fields),
            employee_number=fields.employee_number,
            external_id=fields.external_id,
            invite=False,
            via=via(token),
        )
        if fields.active is False:
            person = people.deactivate_person(actor=None, person=person, via=via(token))
    except ActionRefused as refusal:
        raise _refused(refusal) from refusal
    return person


def _apply(token: ApiToken, person: Person, fields: PersonFields) -> Person:
    email = _checked_email(fields.email)
    _check_unique(fields, email, person)
    wanted = {
        "email": email,
        "external_id": fields.external_id,
        "employee_number": fields.employee_number,
        "manager": _manager(fields),
    }
    if fields.full_name is not None:
        wanted["full_name"] = fields.full_name
    changes = {field: value for field, value in wanted.items() if getattr(person, field) != value}
    try:
        if fields.active is True and not person.is_active:
            person = people.reactivate_person(actor=None, person=person, via=via(token))
        if changes:
            person = people.update_person(actor=None, person=person, via=via(token), **changes)
        if fields.active is False and person.is_active:
            person = people.deactivate_person(actor=None, person=person, via=via(token))
    except ActionRefused as refusal:
        raise _refused(refusal) from refusal
    return person


@transaction.atomic
def replace_user(*, token: ApiToken, person_id: str, user: UserResource) -> Person:
    """Make a person what a SCIM user says (PUT): an attribute left out is cleared, except
    the name and whether they are active, which stay as they are."""
    person = person_by_id(person_id, lock=True)
    return _apply(token, person, person_fields(user))


@transaction.atomic
def patch_user(
    *, token: ApiToken, person_id: str, patch: PatchOp[UserResource], base_url: str
) -> Person:
    """Apply a SCIM PATCH to a person: to the person as SCIM shows them, then each change."""
    person = person_by_id(person_id, lock=True)
    before = user_resource(person, base_url=base_url)
    after = before.model_copy(deep=True)
    patch.patch(after)
    return _apply(token, person, person_fields(after, before=before))


@transaction.atomic
def delete_user(*, token: ApiToken, person_id: str) -> None:
    """A deleted user is a leaver: deactivated, every record and receipt kept."""
    person = person_by_id(person_id, lock=True)
    people.deactivate_person(actor=None, person=person, via=via(token))


# --- Groups: audiences ------------------------------------------------------------------------


def _set_members(token: ApiToken, audience: Audience, member_ids: list[str | None]) -> None:
    wanted: set[int] = set()
    for value in member_ids:
        pk = scim_id(value)
        if pk is None:
            raise InvalidValueException(detail=f"No user has the id {value} (member).")
        wanted.add(pk)
    current = set(audience.members.values_list("pk", flat=True))
    changed = (wanted - current) | (current - wanted)
    # Each person's other audiences are kept as they are, so they are read with the person's
    # row locked: otherwise a PATCH of another group running at the same time (a mover taken
    # out of one group and put in another) is overwritten by the audiences read before it
    # committed. Locked in id order, so that two requests take them in the same order and cannot
    # deadlock; NO KEY, so that rows which merely refer to the person are not held up.
    found = (
        Person.objects.select_for_update(no_key=True)
        .filter(pk__in=changed)
        .prefetch_related("audiences")
        .order_by("pk")
    )
    missing = (wanted - current) - {person.pk for person in found}
    if missing:
        raise InvalidValueException(detail=f"No user has the id {min(missing)} (member).")
    for person in found:
        others = [a for a in person.audiences.all() if a.pk != audience.pk]
        people.set_person_audiences(
            actor=None,
            person=person,
            audiences=[*others, audience] if person.pk in wanted else others,
            via=via(token),
        )


def _member_ids(group: Group) -> list[str | None]:
    return [member.value for member in group.members or []]


@transaction.atomic
def create_group(*, token: ApiToken, group: Group) -> Audience:
    """Add the audience a SCIM group names, with its members. A new audience applies no policy
    until an administrator puts it in a policy's scope."""
    name = (group.display_name or "").strip()
    if Audience.objects.filter(name__iexact=name).exists():
        raise UniquenessException(detail=f"There is already a group named {name}.")
    try:
        audience = people.add_audience(actor=None, name=name, via=via(token))
    except ActionRefused as refusal:
        raise _refused(refusal) from refusal
    _set_members(token, audience, _member_ids(group))
    return audience


def _rename(token: ApiToken, audience: Audience, name: str | None) -> Audience:
    name = (name or "").strip()
    if not name:
        raise MutabilityException(detail="A group keeps a displayName.")
    if Audience.objects.exclude(pk=audience.pk).filter(name__iexact=name).exists():
        raise UniquenessException(detail=f"There is already a group named {name}.")
    try:
        return people.rename_audience(actor=None, audience=audience, name=name, via=via(token))
    except ActionRefused as refusal:
        raise _refused(refusal) from refusal


@transaction.atomic
def replace_group(*, token: ApiToken, audience_id: str, group: Group) -> Audience:
    """Make an audience what a SCIM group says (PUT): its name and exactly these members."""
    audience = audience_by_id(audience_id, lock=True)
    audience = _rename(token, audience, group.display_name)
    _set_members(token, audience, _member_ids(group))
    return audience


@transaction.atomic
def patch_group(*, token: ApiToken, audience_id: str, patch: PatchOp[Group]) -> Audience:
    """Apply a SCIM PATCH to an audience: members added or removed, or a new name. The
    audience's row is locked first, so two PATCHes of one group apply one after the other and
    neither loses the other's members."""
    audience = audience_by_id(audience_id, lock=True)
    members = [str(pk) for pk in audience.members.order_by("pk").values_list("pk", flat=True)]
    group = Group(
        id=str(audience.pk),
        display_name=audience.name,
        members=[GroupMember(value=pk, ref=None, type="User") for pk in members] or None,
    )
    patch.patch(group)
    if group.display_name != audience.name:
        audience = _rename(token, audience, group.display_name)
    _set_members(token, audience, _member_ids(group))
    return audience


@transaction.atomic
def delete_group(*, token: ApiToken, audience_id: str) -> None:
    """Empty an audience, and delete it unless a policy or a revision names it."""
    audience = audience_by_id(audience_id, lock=True)
    people.remove_audience(actor=None, audience=audience, via=via(token))
