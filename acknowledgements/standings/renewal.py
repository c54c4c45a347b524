"""Periodic re-acknowledgement: how long a signature counts when a policy must be renewed.

A policy may be re-acknowledged every N months (models.RenewalPeriod; no period, or 0 months,
means a signature counts as long as its run is in effect). Under a period of N months:

- a signature counts until the same local time N calendar months later in the time zone the
  signer's browser reported when signing (the portal's zone if none), the day of the month cut
  to the month's last day where it has fewer (31 January + 1 month: 28 or 29 February);
- a signature made before the period began counts at least until the period began: setting a
  period never makes anyone late on the spot;
- once every signature of the run a person made has lapsed, they are *due for renewal* until
  the lapse plus the run's `due_days` (the time the policy gives to sign), then *lapsed*.

The lapse is computed here, once per signature and period, and kept as models.SignatureTerm
for the queries (coverage.py reads it; SQL cannot add calendar months in a time zone
portably). A signature made under a period gets its term when it is recorded
(signing/actions.py); `fill_terms` writes the others when a period is set, and any a race left
out in the hourly reminders run. A signature with no term yet counts, as before the period.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import zoneinfo
from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef

from acknowledgements.evidence.client_evidence import browser_zone
from acknowledgements.models import Acknowledgement, RenewalPeriod, SignatureTerm
from acknowledgements.standings import tallies


def months_later(moment: dt.datetime, months: int, zone_name: str | None) -> dt.datetime:
    """`moment` plus `months` calendar months on the wall clock of `zone_name` (an IANA name;
    the portal's zone when None or unknown), as an aware datetime."""
    zone = zoneinfo.ZoneInfo(browser_zone(zone_name or "") or settings.TIME_ZONE)
    local = moment.astimezone(zone)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    # A wall-clock time skipped or repeated by a daylight-saving change resolves as zoneinfo
    # does (fold 0): the result is still one definite instant.
    later = local.replace(year=year, month=month, day=day, tzinfo=None).replace(tzinfo=zone)
    return later.astimezone(dt.UTC)


def lapse_of(signed_at: dt.datetime, period: RenewalPeriod, zone_name: str | None) -> dt.datetime:
    """When a signature stops counting under `period` (months > 0)."""
    return max(months_later(signed_at, period.months, zone_name), period.starts_at)


def in_force(periods: Iterable[RenewalPeriod], moment: dt.datetime) -> RenewalPeriod | None:
    """The period of renewal in force at `moment` among one policy's, if it asks for one."""
    started = [p for p in periods if p.starts_at <= moment]
    latest = max(started, key=lambda p: (p.starts_at, p.pk), default=None)
    return latest if latest is not None and latest.months else None


def signer_zone(payload: bytes | memoryview) -> str | None:
    """The time zone the signer's browser reported, from the signature's ledger payload."""
    zone = json.loads(bytes(payload)).get("browser_time_zone")
    return zone if isinstance(zone, str) else None


BLOCK = 5_000
ANALYZE_AFTER = 10_000  # terms written at once


def fill_terms(*, policy_id: int | None = None) -> int:
    """Write the terms missing for every signature under every period of N > 0 months (of one
    policy, or of all); returns how many were written. Repeating it writes nothing."""
    periods = RenewalPeriod.objects.filter(months__gt=0)
    if policy_id is not None:
        periods = periods.filter(policy_id=policy_id)
    runs = tallies.runs()
    before = SignatureTerm.objects.count()
    for period in periods:
        missing = (
            Acknowledgement.objects.filter(revision__policy_id=period.policy_id)
            .filter(
                ~Exists(SignatureTerm.objects.filter(acknowledgement=OuterRef("pk"), period=period))
            )
            .values_list("pk", "person_id", "revision_id", "signed_at", "ledger_entry__payload")
        )
        block: list[SignatureTerm] = []
        for pk, person_id, revision_id, signed_at, payload in missing.iterator(chunk_size=BLOCK):
            block.append(
                SignatureTerm(
                    acknowledgement_id=pk,
                    period=period,
                    person_id=person_id,
                    run_id=runs[revision_id],
                    signed_at=signed_at,
                    lapses_at=lapse_of(signed_at, period, signer_zone(payload)),
                )
            )
            if len(block) == BLOCK:
                SignatureTerm.objects.bulk_create(block, ignore_conflicts=True)
                block = []
        SignatureTerm.objects.bulk_create(block, ignore_conflicts=True)
    written = SignatureTerm.objects.count() - before
    if written >= ANALYZE_AFTER and connection.vendor == "postgresql":
        # A period set on a large policy writes a row per signature at once: let the planner
        # know now rather than when autovacuum next looks (it would plan for a handful).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(SignatureTerm._meta.db_table)}")
    return written


def renewal_months(periods: Iterable[RenewalPeriod], moment: dt.datetime) -> int:
    """The months of the period in force at `moment` (0: signatures do not lapse)."""
    period = in_force(periods, moment)
    return period.months if period else 0


# Notification.occasion of a renewal's reminders and overdue notice: the lapse, in whole seconds
# since the Unix epoch, so that each renewal gets its own and the email can tell its due date.
RENEWAL_KINDS = ("renewal_due", "reminder", "overdue")


def occasion(lapsed_at: dt.datetime) -> int:
    return int(lapsed_at.timestamp())


def lapse_of_occasion(notification) -> dt.datetime | None:
    """The lapse a reminder or overdue notice is about, when it is about a renewal."""
    if notification.kind not in RENEWAL_KINDS or not notification.occasion:
        return None
    return dt.datetime.fromtimestamp(notification.occasion, dt.UTC)
