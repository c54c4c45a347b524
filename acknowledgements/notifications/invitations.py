"""Invitations: the email that brings a person an administrator added to the portal, and the
one that asks them to confirm a changed address."""

from __future__ import annotations

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.tasks import task
from django.urls import reverse

from acknowledgements import sso
from acknowledgements.models import User
from acknowledgements.notifications.sending import absolute_url, email_message
from acknowledgements.standings import coverage


def password_link(person: User) -> str:
    """A one-time link to set a password: allauth's reset link, void once a password is set
    (or the address changes), and after PASSWORD_RESET_TIMEOUT."""
    path = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(person),
            "key": default_token_generator.make_token(person),
        },
    )
    return absolute_url(path)


def send_invitation(*, person_id: int) -> None:
    """Email a person their invitation, in their language, naming what they must sign."""
    person = User.objects.get(pk=person_id)
    if not person.is_active:
        return  # left before the email went out
    standings = [s for s in coverage.standings_for(person) if s.must_sign]
    email_message(
        "email/invitation",
        {
            "person": person,
            "password_url": password_link(person),
            "sign_in_url": absolute_url(reverse("account_login")),
            "single_sign_on": [app.name for app in sso.providers()],
            "standings": standings,
            "days": settings.PASSWORD_RESET_TIMEOUT // 86_400,
        },
        to=person.email,
        language=person.preferred_language,
    ).send()


def send_address_confirmation(*, person_id: int) -> None:
    """Email a person's new address a link that confirms it is theirs."""
    person = User.objects.get(pk=person_id)
    address = EmailAddress.objects.filter(user=person, email=person.email, verified=False).first()
    if address is None:
        return  # confirmed already, or changed again since
    key = EmailConfirmationHMAC(address).key
    email_message(
        "email/address_confirmation",
        {
            "person": person,
            "confirm_url": absolute_url(reverse("account_confirm_email", args=[key])),
        },
        to=person.email,
        language=person.preferred_language,
    ).send()


@task()
def email_invitation(person_id: int) -> None:
    send_invitation(person_id=person_id)


@task()
def email_address_confirmation(person_id: int) -> None:
    send_address_confirmation(person_id=person_id)
