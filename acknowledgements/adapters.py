"""How django-allauth creates and signs in people: password accounts and single sign-on.

Single sign-on (allauth's OpenID Connect provider) follows these rules:

- The identity provider must say the email address is verified (`email_verified` true, or the
  social application's allauth setting `verified_email`); otherwise the sign-in is refused and
  nothing is created or connected.
- A first SSO sign-in creates the person (even while password sign-up is closed), with the
  verified email and the full name from the `name` claim; a person who already has that email
  address is signed in and the SSO identity connected to them instead.
- Audiences come from the PORTAL_OIDC_AUDIENCE_CLAIM claim (values matched against audience
  slugs and names, case-insensitively, after PORTAL_OIDC_AUDIENCE_MAP): set when the person is
  created and replaced at every later SSO sign-in, through the audited
  `people_actions.set_person_audiences`. When the claim is absent, audiences are left as they are.
"""

from __future__ import annotations

import logging

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.emailkit import valid_email_or_none
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from acknowledgements.evidence import client_evidence
from acknowledgements.models import Audience, User
from acknowledgements.people import actions as people_actions

logger = logging.getLogger(__name__)


class PortalAccountAdapter(DefaultAccountAdapter):
    """People are created by administrators (or SSO); self sign-up only with PORTAL_OPEN_SIGNUP."""

    def is_open_for_signup(self, request) -> bool:
        return settings.PORTAL_OPEN_SIGNUP

    def get_client_ip(self, request) -> str:
        # allauth keys its rate limits on the client's address: the same rule as the evidence
        # (X-Forwarded-For believed only from PORTAL_TRUSTED_PROXIES), or behind a load
        # balancer every person would share the balancer's address and its limits.
        address = client_evidence.client_ip(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's address.")
        return address


def sso_claims(sociallogin) -> dict:
    """The identity provider's claims: the ID token's, overridden by the userinfo answer's.

    Both come straight from the provider's token and userinfo endpoints (the portal fetches
    them itself), so either may carry the audience claim.
    """
    data = sociallogin.account.extra_data or {}
    if "id_token" not in data and "userinfo" not in data:
        return dict(data)  # an account stored by allauth < 65.11
    return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}


def claim_is_true(value) -> bool:
    """`true` in JSON; some providers send the string "true"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _claim(claims: dict, name: str):
    """A claim by name, or by a dotted path into nested claims ("realm_access.roles")."""
    if name in claims:
        return claims[name]
    value = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def audiences_from_claims(claims: dict) -> list[Audience] | None:
    """The audiences named by the configured claim; None when the claim is absent.

    Each value is looked up in PORTAL_OIDC_AUDIENCE_MAP first, then matched against audience
    slugs and names, case-insensitively; values that match nothing are ignored.
    """
    value = _claim(claims, settings.PORTAL_OIDC_AUDIENCE_CLAIM)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple):
        logger.warning("SSO claim %s is not a list: ignored", settings.PORTAL_OIDC_AUDIENCE_CLAIM)
        return None
    by_key: dict[str, Audience] = {}
    for audience in Audience.objects.all():
        by_key.setdefault(audience.slug.casefold(), audience)
        by_key.setdefault(audience.name.casefold(), audience)
    mapping = settings.PORTAL_OIDC_AUDIENCE_MAP
    found: dict[int, Audience] = {}
    for item in values:
        if not isinstance(item, str):
            continue
        key = item.strip().casefold()
        key = mapping.get(key, key)
        audience = by_key.get(key.casefold())
        if audience is not None:
            found[audience.pk] = audience
        elif item.strip().casefold() in mapping:
            logger.warning("PORTAL_OIDC_AUDIENCE_MAP names an unknown audience: %s", key)
    return sorted(found.values(), key=lambda a: a.slug)


def full_name_from_claims(claims: dict, email: str) -> str:
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get("given_name"), claims.get("family_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    name = " ".join(str(name or "").split())
    max_length = User._meta.get_field("full_name").max_length
    return (name or email.partition("@")[0])[:max_length]


class PortalSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Single sign-on: see the module's docstring."""

    # --- Which email address is verified ------------------------------------------------------

    def populate_user(self, request, sociallogin, data):
        """The proposed person: verified email, full name; email flags read strictly."""
        claims = sso_claims(sociallogin)
        claimed = valid_email_or_none(claims.get("email"))
        verified_claim = claim_is_true(claims.get("email_verified"))
        # allauth takes the raw claim as a flag, so the string "false" would count as verified.
        for address in sociallogin.email_addresses:
            address.verified = bool(
                (claimed and address.email.lower() == claimed.lower() and verified_claim)
                or self.is_email_verified(sociallogin.provider, address.email)
            )
        user = sociallogin.user
        email = (valid_email_or_none(data.get("email")) or "").lower()
        user.email = email
        user.full_name = full_name_from_claims(claims, email)
        return user

    @staticmethod
    def verified_email(sociallogin) -> str | None:
        for address in sociallogin.email_addresses:
            if address.verified and address.email:
                return address.email.lower()
        return None

    def _refuse(self, request, message: str):
        messages.error(request, message)
        raise ImmediateHttpResponse(redirect("account_login"))

    # --- Sign-in ------------------------------------------------------------------------------

    def pre_social_login(self, request, sociallogin) -> None:
        """Refuse an unverified email; keep an existing person's audiences in sync."""
        provider = sociallogin.provider.name
        if self.verified_email(sociallogin) is None:
            logger.warning(
                "SSO sign-in refused: %s did not verify the email address of %s",
                sociallogin.account.provider,
                sociallogin.account.uid,
            )
            self._refuse(
                request,
                _(
                    "%(provider)s did not confirm your email address, so you cannot sign in "
                    "with it. Ask your IT team to verify the address on your %(provider)s "
                    "account, then try again."
                )
                % {"provider": provider},
            )
        user = sociallogin.user
        if (
            sociallogin.is_existing
            and user.is_active
            and sociallogin.state.get("process", AuthProcess.LOGIN) == AuthProcess.LOGIN
        ):
            self._sync_audiences(user, sso_claims(sociallogin))

    def is_open_for_signup(self, request, sociallogin) -> bool:
        """SSO creates accounts, whatever PORTAL_OPEN_SIGNUP says about passwords."""
        email = self.verified_email(sociallogin)
        if email and User.objects.filter(email__iexact=email).exists():
            # Not matched by allauth (an address stored with other capitals): never offer the
            # sign-up form, where another address could be typed.
            self._refuse(
                request,
                _(
                    "An account with this email address exists but could not be signed in. "
                    "Please ask a policy administrator."
                ),
            )
        return True

    def is_auto_signup_allowed(self, request, sociallogin) -> bool:
        return True

    @transaction.atomic
    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        self._sync_audiences(user, sso_claims(sociallogin))
        return user

    @staticmethod
    def _sync_audiences(user: User, claims: dict) -> None:
        audiences = audiences_from_claims(claims)
        if audiences is None:
            return
        people_actions.set_person_audiences(actor=None, person=user, audiences=audiences)
