"""What a read token may do, and what is recorded of it: a number of requests a minute, and
one audit row an hour for the personal data it reads.

Both are counted in the shared cache (the database's, or Redis; ratelimits.py), so every
process of every machine counts the same token's requests together.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from acknowledgements import ratelimits
from acknowledgements.api import tokens
from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.evidence.ledger import utc_iso
from acknowledgements.models import ApiToken, LedgerEntry


def seconds_until_allowed(token: ApiToken) -> int | None:
    """Count one request of the token; None when it is within PORTAL_API_REQUESTS_PER_MINUTE,
    else how many seconds until its next minute starts (the 429's Retry-After)."""
    return ratelimits.seconds_until_allowed(
        f"api-token:{token.pk}", limit=settings.PORTAL_API_REQUESTS_PER_MINUTE
    )


def record_personal_data_read(*, token: ApiToken, what: str) -> LedgerEntry | None:
    """Record in the audit log that a token read personal data (`what`: the first address it
    read); once per token and hour, the rest of that hour's reads being covered by it."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    key = f"api:read-recorded:{token.pk}:{hour:%Y%m%d%H}"
    # get() first: one cheap read for every request after the hour's first (add() alone
    # would try to write on each); add() still decides between two first requests.
    if cache.get(key) is not None or not cache.add(key, 1, timeout=3600 + 60):
        return None
    try:
        with transaction.atomic():
            return record_admin_action(
                actor=None,
                action="api_personal_data_read",
                via=tokens.via(token),
                details={"token": token.name, "hour": utc_iso(hour), "first_read": what},
            )
    except BaseException:
        cache.delete(key)  # not recorded: the next read tries again
        raise
