"""People: their language, their audiences and their exemption from the signing gate. Each change is audited."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.snapshots import person_snapshot
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Audience,
    User,
)


def set_preferred_language(*, person: User, language: str) -> None:
    """Save the language a person reads the portal and its emails in."""
    if language not in dict(settings.LANGUAGES):
        raise ActionRefused(_("This language is not available."))
    if person.preferred_language != language:
        person.preferred_language = language
        person.save(update_fields=["preferred_language"])


def replace_audiences(*, actor, members, audiences, action: str, subject: dict) -> None:
    """Set a policy's or a person's audiences; an actual change is audited with before/after."""
    before = sorted(a.slug for a in members.all())
    after = sorted(a.slug for a in audiences)
    if before == after:
        return
    members.set(audiences)
    record_admin_action(
        actor=actor, action=action, details={**subject, "before": before, "after": after}
    )


@transaction.atomic
def set_person_audiences(*, actor: User | None, person: User, audiences: list[Audience]) -> None:
    """Change which audiences a person belongs to (and so which policies apply); audited."""
    replace_audiences(
        actor=actor,
        members=person.audiences,
        audiences=audiences,
        action="person_audiences_changed",
        subject={"person": person_snapshot(person)},
    )


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
    )
