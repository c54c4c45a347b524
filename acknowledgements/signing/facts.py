"""What deciding a signature needs to know, read in one statement.

A signing request must find the revision its URL names, decide whether the person may sign it
(published, current for its policy, meant for one of their audiences), and know whether they
signed it already (and whether that signature still counts: standings/renewal.py), when they
first opened it and which e-signing consent they accepted. Asked one question at a time through the ORM, that was nine statements and most of the request's
time; here it is one hand-written statement, whose plan is a handful of index lookups.

"replaced" is `coverage.Timeline.at`'s choice of the current revision written as SQL:
tests/test_coverage.py compares the two on random timelines.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connections, router
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.utils.translation import gettext as _

from acknowledgements.evidence import ledger
from acknowledgements.models import (
    Acknowledgement,
    AudienceSpan,
    LedgerEntry,
    Policy,
    PolicyRevision,
    RenewalPeriod,
    SignatureTerm,
    User,
    WebhookEndpoint,
)
from acknowledgements.standings import tallies
from acknowledgements.standings.memberships import Span

# The revision's own columns that are read (its texts are loaded only if something asks), then
# the policy's name and slug, then the facts.
REVISION_FIELDS = [
    field
    for field in PolicyRevision._meta.concrete_fields
    if field.name not in ("body", "body_html", "change_summary")
]
FACTS = [
    "policy_name",
    "policy_slug",
    "in_effect",
    "replaced",
    "applies",
    "signatures",
    "signed",
    "first_viewed_at",
    "consent_at",
    "consent",
    "run",
    "renewal_id",
    "renewal_months",
    "renewal_starts_at",
    "spans",
    "webhooks",
]
# Named in the SQL, and positional ($1...) in the statement PostgreSQL prepares.
PARAMETERS = ["person", "slug", "version", "moment", "published", "viewed", "consented"]
PREPARED_NAME = "portal_signing_facts"


@dataclass(frozen=True)
class SigningFacts:
    revision: PolicyRevision  # without its texts; its policy with only its name and slug
    in_effect: bool
    replaced: bool  # a later revision of the policy is in effect
    applies: bool  # the revision is meant for one of the person's audiences
    signatures: int  # of this revision by this person, lapsed or not (renewal.py)
    signed: bool  # by this person, already, and it still counts
    first_viewed_at: dt.datetime | None
    consent: dict[str, Any] | None  # the payload of the person's first consent, if any
    consent_at: dt.datetime | None
    run_id: int | None  # the material revision this one builds on (tallies.py)
    renewal: RenewalPeriod | None = None  # in force, when it asks for renewal (renewal.py)
    # What recording a signature needs besides: the person's audience spans open at the moment
    # (for the tallies, tallies.py) and whether any webhook endpoint is active.
    spans: tuple[Span, ...] = ()
    webhooks_active: bool = False

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

    @property
    def signable_run_id(self) -> int:
        """The run a signature or decline counts in: every published revision is in one."""
        if self.run_id is None:
            raise ValueError(f"Revision {self.revision.pk} is in no run: it is not published.")
        return self.run_id


def read(
    person: User, *, policy_slug: str, version: str, moment: dt.datetime, lock: bool = False
) -> SigningFacts:
    """The facts about signing a policy's `version` at `moment` (PolicyRevision.DoesNotExist
    if the policy has no such version).

    With `lock`, the person's lock (ledger.lock_person) is taken first, in the same round trip:
    PostgreSQL runs the statements of one string in order, each reading what was committed
    when it starts, so the facts still see everything committed before the lock was granted.
    """
    connection = connections[router.db_for_write(Acknowledgement)]
    params: dict[str, int | str | None] = {
        "person": person.pk,
        "slug": policy_slug,
        "version": version,
        "moment": connection.ops.adapt_datetimefield_value(moment),
        "published": PolicyRevision.Status.PUBLISHED.value,
        "viewed": LedgerEntry.Kind.VIEWED.value,
        "consented": LedgerEntry.Kind.CONSENTED.value,
    }
    lock_sql = ledger.person_lock_sql(person, connection) if lock else ""
    with connection.cursor() as cursor:
        # After the cursor: opening it may connect again, which forgets the prepared statement.
        statement = _statement(connection)
        cursor.execute(f"{lock_sql};\n{statement}" if lock_sql else statement, params)
        row = cursor.fetchone()
    if row is None:
        raise PolicyRevision.DoesNotExist
    own = row[: len(REVISION_FIELDS)]
    facts = dict(zip(FACTS, row[len(REVISION_FIELDS) :], strict=True))
    revision = PolicyRevision.from_db(
        connection.alias,
        [field.attname for field in REVISION_FIELDS],
        [
            _from_db(connection, field, value)
            for field, value in zip(REVISION_FIELDS, own, strict=True)
        ],
    )
    revision.policy = Policy.from_db(
        connection.alias,
        ["id", "name", "slug"],
        [revision.policy_id, facts["policy_name"], facts["policy_slug"]],
    )
    recorded_at = LedgerEntry._meta.get_field("recorded_at")
    return SigningFacts(
        revision=revision,
        in_effect=bool(facts["in_effect"]),
        replaced=bool(facts["replaced"]),
        applies=bool(facts["applies"]),
        signatures=int(facts["signatures"]),
        signed=bool(facts["signed"]),
        first_viewed_at=_from_db(connection, recorded_at, facts["first_viewed_at"]),
        consent=None if facts["consent"] is None else json.loads(bytes(facts["consent"])),
        consent_at=_from_db(connection, recorded_at, facts["consent_at"]),
        run_id=facts["run"],
        renewal=RenewalPeriod(
            pk=facts["renewal_id"],
            policy_id=revision.policy_id,
            months=facts["renewal_months"],
            starts_at=_from_db(
                connection, RenewalPeriod._meta.get_field("starts_at"), facts["renewal_starts_at"]
            ),
        )
        if facts["renewal_months"]
        else None,
        spans=tuple(_spans(facts["spans"])),
        webhooks_active=bool(facts["webhooks"]),
    )


def _spans(found: str | None) -> Iterator[Span]:
    """The spans the statement returned as a JSON list of [audiences, start, end]."""
    for key, start, end in json.loads(found or "[]"):
        yield Span(key, _aware(start), None if end is None else _aware(end))


def _aware(moment: str) -> dt.datetime:
    """A time from JSON: PostgreSQL writes its offset; SQLite keeps UTC without one."""
    parsed = dt.datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _statement(connection) -> str:
    """The statement to run with the named parameters.

    PostgreSQL spends longer planning this statement than running it, so each connection
    prepares it once and then only executes it. A prepared statement lasts as long as the
    database session: `connection_created` (below) forgets it when Django connects again.
    """
    if connection.vendor != "postgresql":
        return _sql(connection, lambda name: f"%({name})s")
    if not getattr(connection, "portal_signing_facts_prepared", False):
        positional = _sql(connection, lambda name: f"${PARAMETERS.index(name) + 1}")
        with connection.cursor() as cursor:
            cursor.execute(f"PREPARE {PREPARED_NAME} AS {positional}")
        connection.portal_signing_facts_prepared = True
    return f"EXECUTE {PREPARED_NAME}({', '.join(f'%({name})s' for name in PARAMETERS)})"


@receiver(connection_created)
def _forget_prepared_statement(sender, connection, **kwargs) -> None:
    connection.portal_signing_facts_prepared = False


def _sql(connection, param) -> str:
    """The statement's text, `param(name)` standing for each parameter."""
    q = connection.ops.quote_name
    revision, policy = q(PolicyRevision._meta.db_table), q(Policy._meta.db_table)
    meant_for = q(PolicyRevision.audiences.through._meta.db_table)
    member_of = q(User.audiences.through._meta.db_table)
    signature, ledger = q(Acknowledgement._meta.db_table), q(LedgerEntry._meta.db_table)
    term, period = q(SignatureTerm._meta.db_table), q(RenewalPeriod._meta.db_table)
    spans, webhooks = q(AudienceSpan._meta.db_table), q(WebhookEndpoint._meta.db_table)
    columns = ", ".join(f"r.{q(field.column)}" for field in REVISION_FIELDS)
    person, moment = param("person"), param("moment")
    # The renewal period in force (renewal.in_force).
    in_force = (
        f"SELECT period.id FROM {period} period WHERE period.policy_id = r.policy_id"  # noqa: S608 - quoted names only
        f" AND period.starts_at <= {moment} ORDER BY period.starts_at DESC, period.id DESC LIMIT 1"
    )
    return f"""
        SELECT {columns}, p.name, p.slug,
            r.effective_at <= {moment} AND r.published_at <= {moment},
            EXISTS (
                SELECT 1 FROM {revision} later
                WHERE later.policy_id = r.policy_id AND later.status = {param("published")}
                    AND later.effective_at <= {moment} AND later.published_at <= {moment}
                    AND {PolicyRevision.sql_publication_position("later")}
                        > {PolicyRevision.sql_publication_position("r")}
            ),
            EXISTS (
                SELECT 1 FROM {meant_for} meant
                JOIN {member_of} member
                    ON member.audience_id = meant.audience_id AND member.user_id = {person}
                WHERE meant.policyrevision_id = r.id
            ),
            (
                SELECT COUNT(*) FROM {signature} signature
                WHERE signature.person_id = {person} AND signature.revision_id = r.id
            ),
            EXISTS (
                SELECT 1 FROM {signature} signature
                WHERE signature.person_id = {person} AND signature.revision_id = r.id
                    AND NOT EXISTS (
                        SELECT 1 FROM {term} term
                        WHERE term.acknowledgement_id = signature.id
                            AND term.lapses_at <= {moment} AND term.period_id = ({in_force})
                    )
            ),
            (
                SELECT MIN(viewed.recorded_at) FROM {ledger} viewed
                WHERE viewed.person_id = {person} AND viewed.kind = {param("viewed")}
                    AND viewed.revision_id = r.id
            ),
            consent.recorded_at, consent.payload,
            {tallies.run_of_sql("r")},
            renewal.id, renewal.months, renewal.starts_at,
            ({_open_spans_json(connection, spans, person, moment)}),
            EXISTS (SELECT 1 FROM {webhooks} WHERE active)
        FROM {revision} r
        JOIN {policy} p ON p.id = r.policy_id
        LEFT JOIN {ledger} consent ON consent.id = (
            SELECT MIN(id) FROM {ledger}
            WHERE person_id = {person} AND kind = {param("consented")}
        )
        LEFT JOIN {period} renewal ON renewal.id = ({in_force})
        WHERE p.slug = {param("slug")} AND r.version = {param("version")}
    """  # noqa: S608 - quoted table and column names only; every value is a parameter


def _open_spans_json(connection, spans: str, person: str, moment: str) -> str:
    """A JSON list of the person's spans not ended at the moment, [audiences, start, end] in
    order of start (tallies.contributions reads them)."""
    if connection.vendor == "postgresql":
        return (
            # As text, as SQLite gives it: psycopg2 would decode json itself.
            'SELECT json_agg(json_build_array(s.audience_key, s.start, s."end")'  # noqa: S608 - quoted names only
            " ORDER BY s.start)::text"
            f' FROM {spans} s WHERE s.person_id = {person} AND (s."end" IS NULL OR s."end" > {moment})'
        )
    return (
        'SELECT json_group_array(json_array(s.audience_key, s.start, s."end")) FROM ('  # noqa: S608 - quoted names only
        f' SELECT * FROM {spans} WHERE person_id = {person} AND ("end" IS NULL OR "end" > {moment})'
        " ORDER BY start) s"
    )


def _from_db(connection, field, value):
    """A raw column's value as the ORM gives it (SQLite returns datetimes as text)."""
    column = field.get_col(field.model._meta.db_table)
    for convert in connection.ops.get_db_converters(column) + field.get_db_converters(connection):
        value = convert(value, column, connection)
    return value
