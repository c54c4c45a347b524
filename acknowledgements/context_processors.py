from django.conf import settings
from django.utils.functional import SimpleLazyObject


def portal(request) -> dict:
    return {
        "company_name": settings.PORTAL_COMPANY_NAME,
        "compliance_email": settings.PORTAL_COMPLIANCE_EMAIL,
        "portal_open_signup": settings.PORTAL_OPEN_SIGNUP,
        "signatures_due": SimpleLazyObject(lambda: _signatures_due(request)),
    }


def _signatures_due(request) -> list:
    """The signed-in person's policies awaiting their signature, for the banner on every page."""
    return [standing for standing in getattr(request, "standings", []) if standing.must_sign]
