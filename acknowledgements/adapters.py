from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class PortalAccountAdapter(DefaultAccountAdapter):
    """People are created by administrators (or SSO); self sign-up only with PORTAL_OPEN_SIGNUP."""

    def is_open_for_signup(self, request) -> bool:
        return settings.PORTAL_OPEN_SIGNUP
