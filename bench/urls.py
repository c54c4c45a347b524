"""The portal's URLs plus the bench's bare view (never in the product's URLconf)."""

import uuid

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_POST

from acknowledgements.evidence import ledger
from acknowledgements.evidence.statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT
from aup_portal.urls import handler500
from aup_portal.urls import urlpatterns as portal_urlpatterns
from bench.models import BenchRow

# Figure 1q: the bare view with this many more round trips to PostgreSQL, each the cheapest
# statement there is, to price a round trip under load.
EXTRA_ROUND_TRIPS = 4


@require_POST
@login_required
def bench_insert(request):
    """The baseline of the signing benchmark: one ORM INSERT of a row shaped like a ledger row.

    Same server, same middleware (session, CSRF, authentication, the gate), a payload of the
    same size and the same two SHA-256s; no chain lock, no head read, no other query.
    """
    now = timezone.now()
    body = ledger.canonical_bytes(
        {
            "event": "signed",
            "person": {"id": request.user.pk, "email": request.user.email},
            "typed_name": request.POST.get("typed_name", ""),
            "attestation": CURRENT_ATTESTATION.as_evidence(),
            "consent": CURRENT_ESIGN_CONSENT.as_evidence(),
            "client": {
                "ip": request.META.get("REMOTE_ADDR"),
                "user_agent": request.headers.get("User-Agent", "")[:1000],
                "request_id": getattr(request, "id", ""),
            },
            "recorded_at": ledger.utc_iso(now),
        }
    )
    payload_sha256 = ledger.sha256_hex(body)
    BenchRow.objects.create(
        kind="signed",
        person_id=request.user.pk,
        recorded_at=now,
        payload=body,
        payload_sha256=payload_sha256,
        previous_hash=ledger.GENESIS_HASH,
        row_hash=ledger.sha256_hex(f"{uuid.uuid4()}\n{payload_sha256}".encode()),
    )
    return HttpResponse(status=204)


@require_POST
@login_required
def bench_insert_round_trips(request):
    """The bare view after EXTRA_ROUND_TRIPS round trips of `SELECT 1` (figure 1q)."""
    with connection.cursor() as cursor:
        for _ in range(EXTRA_ROUND_TRIPS):
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return bench_insert(request)


urlpatterns = [
    path("bench/insert/", bench_insert, name="bench_insert"),
    path("bench/insert-round-trips/", bench_insert_round_trips),
    *portal_urlpatterns,
]

__all__ = ["handler500", "urlpatterns"]
