from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils.functional import SimpleLazyObject

from acknowledgements.evidence import checks


def portal(request) -> dict:
    return {
        "company_name": settings.PORTAL_COMPANY_NAME,
        "compliance_email": settings.PORTAL_COMPLIANCE_EMAIL,
        "portal_open_signup": settings.PORTAL_OPEN_SIGNUP,
        "signatures_due": SimpleLazyObject(lambda: _signatures_due(request)),
        "ledger_damage": SimpleLazyObject(lambda: _ledger_damage(request)),
    }


def _ledger_damage(request):
    """The latest ledger check that found damage, for the people who answer for the evidence
    (administrators and auditors: whoever may read the reports); None for anyone else."""
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("acknowledgements.view_reports"):
        return None
    return checks.damage()


def _signatures_due(request) -> list:
    """The signed-in person's policies awaiting their signature, for the banner on every page."""
    due = [standing for standing in getattr(request, "standings", []) if standing.must_sign]
    # The banner names each policy in the page's language (policy_name): one query for all.
    prefetch_related_objects([standing.current for standing in due], "translations")
    return due
