"""Who holds power in the portal: the roles a person has, granted and revoked through one
audited function whichever door the change comes in by (a command, the Django admin)."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from acknowledgements.evidence import ledger
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.snapshots import person_snapshot
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import LedgerEntry, User
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS

# A role's name (as commands and the ledger say it) and the group it is, or the account flag.
ROLE_GROUPS = {"policy-administrator": POLICY_ADMINISTRATORS, "auditor": AUDITORS}
ROLE_FLAGS = {"staff": "is_staff", "superuser": "is_superuser"}
ROLES = (*ROLE_GROUPS, *ROLE_FLAGS)
ROLE_LABELS = {
    "policy-administrator": gettext_lazy("Policy administrator"),
    "auditor": gettext_lazy("Auditor"),
    "staff": gettext_lazy("Staff (the Django admin)"),
    "superuser": gettext_lazy("Superuser"),
}


def roles_of(person: User) -> set[str]:
    groups = set(person.groups.values_list("name", flat=True))
    held = {role for role, group in ROLE_GROUPS.items() if group in groups}
    return held | {role for role, flag in ROLE_FLAGS.items() if getattr(person, flag)}


def _check(role: str) -> None:
    if role not in ROLES:
        raise ActionRefused(
            _("There is no role %(role)s; the roles are %(roles)s.")
            % {"role": role, "roles": ", ".join(ROLES)}
        )


def _set(person: User, role: str, held: bool) -> None:
    if role in ROLE_GROUPS:
        group = Group.objects.get(name=ROLE_GROUPS[role])
        (person.groups.add if held else person.groups.remove)(group)
    else:
        setattr(person, ROLE_FLAGS[role], held)
        person.save(update_fields=[ROLE_FLAGS[role]])


@transaction.atomic
def set_role(*, actor: User | None, person: User, role: str, held: bool) -> bool:
    """Grant (held) or revoke a role; an actual change is an audited ledger row naming who
    gave or took what from whom. Whether anything changed."""
    _check(role)
    person = User.objects.select_for_update().get(pk=person.pk)
    if (role in roles_of(person)) == held:
        return False
    _set(person, role, held)
    _record(actor=actor, person=person, role=role, held=held)
    return True


def _record(
    *, actor: User | None, person: User, role: str, held: bool, via: str | None = None
) -> None:
    record_admin_action(
        actor=actor,
        action="role_granted" if held else "role_revoked",
        details={"person": person_snapshot(person), "role": role},
        via=via,
        subject=person,
    )


@transaction.atomic
def record_roles_created_with(*, person: User, via: str) -> None:
    """Record the roles an account was created holding as grants by the system through `via`:
    `manage.py createsuperuser` creates it through the model's manager, below every action."""
    held = roles_of(person)
    for role in ROLES:
        if role in held:
            _record(actor=None, person=person, role=role, held=True, via=via)


def role_history(person: User) -> list[dict]:
    """Every grant and revocation of a person's roles, oldest first, as the ledger holds them."""
    entries = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION, person=person)
    history = []
    for entry in entries.order_by("recorded_at", "pk"):
        payload = ledger.decode(entry)
        if payload.get("action") in ("role_granted", "role_revoked"):
            history.append(
                {
                    "granted": payload["action"] == "role_granted",
                    "role": ROLE_LABELS.get(payload["details"]["role"], payload["details"]["role"]),
                    "actor": (payload.get("actor") or {}).get("name") or payload.get("via"),
                    "at": entry.recorded_at,
                }
            )
    return history


def grant_role(*, actor: User | None, person: User, role: str) -> bool:
    """Give a person a role; granting it again changes nothing."""
    return set_role(actor=actor, person=person, role=role, held=True)


def revoke_role(*, actor: User | None, person: User, role: str) -> bool:
    """Take a role from a person; revoking one they do not hold changes nothing."""
    return set_role(actor=actor, person=person, role=role, held=False)


@transaction.atomic
def set_roles(*, actor: User | None, person: User, roles: set[str]) -> None:
    """Make a person's roles exactly these, each grant and revocation audited."""
    for role in ROLES:
        set_role(actor=actor, person=person, role=role, held=role in roles)
