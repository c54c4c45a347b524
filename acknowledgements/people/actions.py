"""People: adding, inviting, editing, retiring and returning them; their language, audiences and
exemption from the signing gate. Each change an administrator makes is an audited ledger row."""

from __future__ import annotations

import datetime as dt

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from acknowledgements import jobs
from acknowledgements.evidence import ledger
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.snapshots import person_snapshot
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Audience,
    User,
)
from acknowledgements.notifications import invitations, scope
from acknowledgements.standings import memberships

# What an administrator may change on a person's page (audiences have their own action).
EDITABLE_FIELDS = ("full_name", "email", "manager", "employee_number", "external_id")


def _shown(person: User, field: str) -> str | None:
    """A field's value as the audit record states it (a manager by email)."""
    if field == "manager":
        return person.manager.email if person.manager else None
    return getattr(person, field) or None


def _changed_by(actor: User | None, via: str | None) -> str:
    """Who a membership history row says made a change: the door it came through, else the
    administrator."""
    return via or (actor.email if actor else "")


def _check_unique(*, email: str, external_id: str | None, person: User | None = None) -> None:
    others = User.objects.exclude(pk=person.pk) if person else User.objects.all()
    if others.filter(email__iexact=email).exists():
        raise ActionRefused(_("Someone else already has the address %(email)s.") % {"email": email})
    if external_id and others.filter(external_id=external_id).exists():
        raise ActionRefused(
            _("Someone else already has the external id %(id)s.") % {"id": external_id}
        )


def _check_manager(person: User | None, manager: User | None) -> None:
    """A manager is another person, and nobody manages their own manager, however far up (read
    from the database: the chain may have changed since the objects were loaded)."""
    if person is None or manager is None:
        return
    seen: set[int] = set()
    current: int | None = manager.pk
    while current is not None and current not in seen:
        if current == person.pk:
            raise ActionRefused(_("A person cannot be their own manager, directly or further up."))
        seen.add(current)
        current = User.objects.filter(pk=current).values_list("manager_id", flat=True).first()


@transaction.atomic
def add_person(
    *,
    actor: User | None,
    email: str,
    full_name: str,
    audiences: list[Audience],
    joined_at: dt.datetime | None = None,
    manager: User | None = None,
    employee_number: str = "",
    external_id: str | None = None,
    language: str = settings.LANGUAGE_CODE,
    invite: bool = True,
    via: str | None = None,
) -> User:
    """Add a person who has never signed in, in the given audiences; audited, and invited by
    email (to set a password, or to sign in by SSO) once the transaction commits."""
    email = User.objects.normalize_email(email).lower()
    external_id = external_id or None
    _check_unique(email=email, external_id=external_id)
    _check_manager(None, manager)
    try:
        with transaction.atomic():  # a concurrent add of the same address loses cleanly
            person = User.objects.create_user(
                email=email,
                password=None,  # unusable until the invitation's link sets one
                full_name=full_name.strip(),
                date_joined=joined_at or timezone.now(),
                manager=manager,
                employee_number=employee_number.strip(),
                external_id=external_id,
                preferred_language=language,
            )
    except IntegrityError:
        raise ActionRefused(
            _("Someone else already has the address %(email)s.") % {"email": email}
        ) from None
    EmailAddress.objects.create(user=person, email=email, primary=True, verified=False)
    since = timezone.now()
    with memberships.changes_by(_changed_by(actor, via)):
        person.audiences.set(audiences)
    record_admin_action(
        actor=actor,
        action="person_added",
        details={
            "person": person_snapshot(person),
            "audiences": sorted(a.slug for a in audiences),
            "joined_at": ledger.utc_iso(person.date_joined),
            "manager": _shown(person, "manager"),
            "employee_number": person.employee_number or None,
            "external_id": person.external_id,
        },
        via=via,
        subject=person,
    )
    if invite:  # the invitation names what they must sign, and by when
        person = invite_person(actor=actor, person=person)
    else:
        scope.after_scope_change([person.pk], since)
    return person


@transaction.atomic
def invite_person(*, actor: User | None, person: User) -> User:
    """Email a person a link to set their password (or to sign in by SSO); sending it again
    makes the earlier links useless once one is used. Audited."""
    person = User.objects.select_for_update().get(pk=person.pk)
    if not person.is_active:
        raise ActionRefused(_("%(name)s has left: reactivate them first.") % {"name": person})
    person.invited_at = timezone.now()
    person.save(update_fields=["invited_at"])
    record_admin_action(
        actor=actor,
        action="person_invited",
        details={"person": person_snapshot(person)},
        subject=person,
    )
    jobs.enqueue_with_transaction(invitations.email_invitation, person.pk)
    return person


@transaction.atomic
def update_person(*, actor: User | None, person: User, via: str | None = None, **changes) -> User:
    """Change a person's name, email, manager, employee number or external id; audited with
    each changed field before and after. A new email address must be confirmed again."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable: {sorted(unknown)}")
    person = User.objects.select_for_update().get(pk=person.pk)
    if "email" in changes:
        changes["email"] = User.objects.normalize_email(changes["email"]).lower()
    if "external_id" in changes:
        changes["external_id"] = changes["external_id"] or None
    _check_unique(
        email=changes.get("email", person.email),
        external_id=changes.get("external_id", person.external_id),
        person=person,
    )
    if "manager" in changes:
        _check_manager(person, changes["manager"])
    before = {field: _shown(person, field) for field in EDITABLE_FIELDS}
    for field, value in changes.items():
        setattr(person, field, value.strip() if isinstance(value, str) else value)
    after = {field: _shown(person, field) for field in EDITABLE_FIELDS}
    changed = sorted(field for field in EDITABLE_FIELDS if before[field] != after[field])
    if not changed:
        return person
    person.save(update_fields=[field for field in changes if field in changed])
    record_admin_action(
        actor=actor,
        action="person_changed",
        details={
            "person": person_snapshot(person),
            "changed": {
                field: {"before": before[field], "after": after[field]} for field in changed
            },
        },
        via=via,
        subject=person,
    )
    if "email" in changed:
        # The new address is unconfirmed until its owner follows the link sent to it.
        EmailAddress.objects.filter(user=person).delete()
        EmailAddress.objects.create(user=person, email=person.email, primary=True, verified=False)
        jobs.enqueue_with_transaction(invitations.email_address_confirmation, person.pk)
    return person


@transaction.atomic
def deactivate_person(
    *,
    actor: User | None,
    person: User,
    left_at: dt.datetime | None = None,
    via: str | None = None,
) -> User:
    """Record that a person left: they can no longer sign in and stop counting as pending or
    overdue, and keep every record and receipt. Deactivating a leaver again changes nothing."""
    person = User.objects.select_for_update().get(pk=person.pk)
    if not person.is_active:
        return person
    left_at = left_at or timezone.now()
    if left_at < person.date_joined:
        raise ActionRefused(_("The leaving date is before the person joined."))
    person.is_active = False
    person.left_at = left_at
    with memberships.changes_by(_changed_by(actor, via)):
        person.save(update_fields=["is_active", "left_at"])  # their memberships end on left_at
    record_admin_action(
        actor=actor,
        action="person_deactivated",
        details={"person": person_snapshot(person), "left_at": ledger.utc_iso(left_at)},
        via=via,
        subject=person,
    )
    return person


@transaction.atomic
def reactivate_person(*, actor: User | None, person: User, via: str | None = None) -> User:
    """Bring back a person who left (a returner): they may sign in and must sign again what
    applies to them. Reactivating an active person changes nothing."""
    person = User.objects.select_for_update().get(pk=person.pk)
    if person.is_active:
        return person
    left_at = person.left_at
    person.is_active = True
    person.left_at = None
    since = timezone.now()
    with memberships.changes_by(_changed_by(actor, via)):
        person.save(update_fields=["is_active", "left_at"])  # their memberships begin again
    scope.after_scope_change([person.pk], since)
    record_admin_action(
        actor=actor,
        action="person_reactivated",
        details={"person": person_snapshot(person), "had_left_at": ledger.utc_iso(left_at)},
        via=via,
        subject=person,
    )
    return person


def set_preferred_language(*, person: User, language: str) -> None:
    """Save the language a person reads the portal and its emails in."""
    if language not in dict(settings.LANGUAGES):
        raise ActionRefused(_("This language is not available."))
    if person.preferred_language != language:
        person.preferred_language = language
        person.save(update_fields=["preferred_language"])


def replace_audiences(
    *, actor, members, audiences, action: str, subject: dict, via: str | None = None
) -> bool:
    """Set a policy's or a person's audiences; an actual change is audited with before/after.
    Returns whether anything changed."""
    before = sorted(a.slug for a in members.all())
    after = sorted(a.slug for a in audiences)
    if before == after:
        return False
    with memberships.changes_by(_changed_by(actor, via)):
        members.set(audiences)
    record_admin_action(
        actor=actor,
        action=action,
        details={**subject, "before": before, "after": after},
        via=via,
    )
    return True


@transaction.atomic
def set_person_audiences(
    *, actor: User | None, person: User, audiences: list[Audience], via: str | None = None
) -> None:
    """Change which audiences a person belongs to (and so which policies apply); audited. Whoever
    this brings into a policy's scope unsigned is told by email."""
    # Locked, so that a concurrent change of the same person's audiences (SCIM, say) is not
    # undone by writing back what was read before it committed.
    person = User.objects.select_for_update().get(pk=person.pk)
    since = timezone.now()
    changed = replace_audiences(
        actor=actor,
        members=person.audiences,
        audiences=audiences,
        action="person_audiences_changed",
        subject={"person": person_snapshot(person)},
        via=via,
    )
    if changed:
        scope.after_scope_change([person.pk], since)


def _audience_snapshot(audience: Audience) -> dict:
    return {"id": audience.pk, "slug": audience.slug, "name": audience.name}


@transaction.atomic
def add_audience(*, actor: User | None, name: str, via: str | None = None) -> Audience:
    """Add an audience (no policy applies to it until an administrator says so); audited."""
    name = name.strip()
    if not name:
        raise ActionRefused(_("An audience needs a name."))
    if Audience.objects.filter(name__iexact=name).exists():
        raise ActionRefused(_("There is already an audience named %(name)s.") % {"name": name})
    base = slugify(name)[:90] or "audience"
    slug, number = base, 1
    while Audience.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    audience = Audience.objects.create(name=name, slug=slug)
    record_admin_action(
        actor=actor,
        action="audience_added",
        details={"audience": _audience_snapshot(audience)},
        via=via,
    )
    return audience


@transaction.atomic
def rename_audience(
    *, actor: User | None, audience: Audience, name: str, via: str | None = None
) -> Audience:
    """Rename an audience; its slug, members and policies stay. Audited."""
    name = name.strip()
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    if name == audience.name:
        return audience
    if not name:
        raise ActionRefused(_("An audience needs a name."))
    if Audience.objects.exclude(pk=audience.pk).filter(name__iexact=name).exists():
        raise ActionRefused(_("There is already an audience named %(name)s.") % {"name": name})
    before = audience.name
    audience.name = name
    audience.save(update_fields=["name"])
    record_admin_action(
        actor=actor,
        action="audience_renamed",
        details={"audience": _audience_snapshot(audience), "before": before, "after": name},
        via=via,
    )
    return audience


@transaction.atomic
def remove_audience(*, actor: User | None, audience: Audience, via: str | None = None) -> bool:
    """Empty an audience, each member's change audited, and delete it unless a policy or a
    revision names it (then it stays, empty). Returns whether it was deleted."""
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    for person in User.objects.filter(audiences=audience).prefetch_related("audiences"):
        set_person_audiences(
            actor=actor,
            person=person,
            audiences=[a for a in person.audiences.all() if a.pk != audience.pk],
            via=via,
        )
    if audience.policies.exists() or audience.revisions.exists():
        return False
    snapshot = _audience_snapshot(audience)
    audience.delete()
    record_admin_action(
        actor=actor, action="audience_removed", details={"audience": snapshot}, via=via
    )
    return True


@transaction.atomic
def set_gate_exemption(*, actor: User | None, person: User, reason: str) -> None:
    """Exempt a service or break-glass account from the gate (empty reason lifts it); audited."""
    reason = reason.strip()
    person = User.objects.select_for_update().get(pk=person.pk)
    if person.gate_exemption == reason:
        return
    before = person.gate_exemption
    person.gate_exemption = reason
    person.save(update_fields=["gate_exemption"])
    record_admin_action(
        actor=actor,
        action="gate_exemption_granted" if reason else "gate_exemption_lifted",
        details={"person": person_snapshot(person), "reason": reason, "previous_reason": before},
        subject=person,
    )
