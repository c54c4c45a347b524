"""What deciding a signature needs to know, read in one statement.

A signing request must find the revision its URL names, decide whether the person may sign it
(published, current for its policy, meant for one of their audiences), and know whether they
signed it already, when they first opened it and which e-signing consent they accepted. Asked
one question at a time through the ORM, that was nine statements and most of the request's
time; here it is one hand-written statement, whose plan is a handful of index lookups.

"replaced" is `coverage.Timeline.at`'s choice of the current revision written as SQL:
tests/test_coverage.py compares the two on random timelines.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.utils.translation import gettext as _

from .models import Acknowledgement, LedgerEntry, Policy, PolicyRevision, User

# The revision's own columns that are read; its texts are loaded only if something asks.
REVISION_FIELDS = [
    field.attname
    for field in PolicyRevision._meta.concrete_fields
    if field.name not in ("body", "body_html", "change_summary")
]


@dataclass(frozen=True)
class SigningFacts:
    revision: PolicyRevision  # with its policy's name and slug
    in_effect: bool
    replaced: bool  # a later revision of the policy is in effect
    applies: bool  # the revision is meant for one of the person's audiences
    signed: bool  # by this person, already
    first_viewed_at: dt.datetime | None
    consent: dict[str, Any] | None  # the payload of the person's first consent, if any
    consent_at: dt.datetime | None

    @property
    def refusal(self) -> str | None:
        """Why the person may not sign the revision, or None when they may."""
        if not self.revision.is_published:
            return _("This version of the policy is not published.")
        if not self.in_effect:
            return _("This version is not in effect yet.")
        if self.replaced:
            return _("This version has been replaced; please read and sign the current version.")
        if not self.applies:
            return _("This policy does not apply to you.")
        return None


def read(person: User, *, policy_slug: str, version: str, moment: dt.datetime) -> SigningFacts:
    """The facts about signing a policy's `version` at `moment` (PolicyRevision.DoesNotExist
    if the policy has no such version)."""
    connection = connections[router.db_for_write(Acknowledgement)]
    params = {
        "person": person.pk,
        "slug": policy_slug,
        "version": version,
        "moment": connection.ops.adapt_datetimefield_value(moment),
        "published": PolicyRevision.Status.PUBLISHED.value,
        "viewed": LedgerEntry.Kind.VIEWED.value,
        "consented": LedgerEntry.Kind.CONSENTED.value,
    }
    found = list(PolicyRevision.objects.db_manager(connection.alias).raw(_sql(connection), params))
    if not found:
        raise PolicyRevision.DoesNotExist
    row = found[0]
    row.policy = Policy.from_db(
        connection.alias, ["id", "name", "slug"], [row.policy_id, row.policy_name, row.policy_slug]
    )
    recorded_at = LedgerEntry._meta.get_field("recorded_at")
    return SigningFacts(
        revision=row,
        in_effect=bool(row.in_effect),
        replaced=bool(row.replaced),
        applies=bool(row.applies),
        signed=bool(row.signed),
        first_viewed_at=_from_db(connection, recorded_at, row.first_viewed_at),
        consent=None if row.consent is None else json.loads(bytes(row.consent)),
        consent_at=_from_db(connection, recorded_at, row.consent_at),
    )


def _sql(connection) -> str:
    q = connection.ops.quote_name
    revision, policy = q(PolicyRevision._meta.db_table), q(Policy._meta.db_table)
    meant_for = q(PolicyRevision.audiences.through._meta.db_table)
    member_of = q(User.audiences.through._meta.db_table)
    signature, ledger = q(Acknowledgement._meta.db_table), q(LedgerEntry._meta.db_table)
    columns = ", ".join(f"r.{q(name)}" for name in REVISION_FIELDS)
    return f"""
        SELECT {columns}, p.name AS policy_name, p.slug AS policy_slug,
            r.effective_at <= %(moment)s AND r.published_at <= %(moment)s AS in_effect,
            EXISTS (
                SELECT 1 FROM {revision} later
                WHERE later.policy_id = r.policy_id AND later.status = %(published)s
                    AND later.effective_at <= %(moment)s AND later.published_at <= %(moment)s
                    AND (later.effective_at > r.effective_at
                        OR later.effective_at = r.effective_at
                            AND (later.published_at > r.published_at
                                OR later.published_at = r.published_at AND later.id > r.id))
            ) AS replaced,
            EXISTS (
                SELECT 1 FROM {meant_for} meant
                JOIN {member_of} member
                    ON member.audience_id = meant.audience_id AND member.user_id = %(person)s
                WHERE meant.policyrevision_id = r.id
            ) AS applies,
            EXISTS (
                SELECT 1 FROM {signature} signature
                WHERE signature.person_id = %(person)s AND signature.revision_id = r.id
            ) AS signed,
            (
                SELECT MIN(viewed.recorded_at) FROM {ledger} viewed
                WHERE viewed.person_id = %(person)s AND viewed.kind = %(viewed)s
                    AND viewed.revision_id = r.id
            ) AS first_viewed_at,
            consent.recorded_at AS consent_at, consent.payload AS consent
        FROM {revision} r
        JOIN {policy} p ON p.id = r.policy_id
        LEFT JOIN {ledger} consent ON consent.id = (
            SELECT MIN(id) FROM {ledger}
            WHERE person_id = %(person)s AND kind = %(consented)s
        )
        WHERE p.slug = %(slug)s AND r.version = %(version)s
    """  # noqa: S608 - quoted table and column names only; every value is a parameter


def _from_db(connection, field, value):
    """A raw column's value as the ORM gives it (SQLite returns datetimes as text)."""
    column = field.get_col(field.model._meta.db_table)
    for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = convert(value, column, connection)
    return value
