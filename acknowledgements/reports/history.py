"""Histories read from the ledger: one person's (what they viewed, signed and declined, with the
client details as the evidence holds them today) and the audit log's (administrative actions)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import (
    CharField,
    F,
    Func,
    Q,
    QuerySet,
    Value,
)
from django.utils.translation import gettext_lazy as _

from acknowledgements.evidence.client_evidence import ClientFact, RemovalRecorded, client_facts
from acknowledgements.evidence.payload import lookup, shown
from acknowledgements.models import (
    Acknowledgement,
    LedgerEntry,
    Notification,
    User,
)
from acknowledgements.reports.figures import CLIENT_MISMATCH, MISSING, REMOVED
from acknowledgements.standings import coverage

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# --- One person's history ----------------------------------------------------------------------


def shown_client(fact: ClientFact, *, removal_recorded: bool = False) -> str:
    """A client value (IP address, user agent) as the evidence holds it today.

    A value no longer kept was removed after the retention period only if the ledger records
    that removal (client_evidence.RemovalRecorded); otherwise it is missing.
    """
    if fact.state == "removed":
        return REMOVED if removal_recorded else MISSING
    if fact.state == "held" and not fact.matches:
        return f"{fact.value} {CLIENT_MISMATCH}"
    return shown(fact.value)


_EVENT_FACTS: dict[str, list[tuple[StrOrPromise, tuple[str, ...]]]] = {
    LedgerEntry.Kind.VIEWED: [
        (_("IP address"), ("client", "ip")),
        (_("Authentication"), ("authentication", "method")),
    ],
    LedgerEntry.Kind.CONSENTED: [
        (_("Consent version"), ("consent", "version")),
        (_("IP address"), ("client", "ip")),
    ],
    LedgerEntry.Kind.SIGNED: [
        (_("Receipt number"), ("receipt_number",)),
        (_("Name at signing"), ("person", "name")),
        (_("Email at signing"), ("person", "email")),
        (_("Typed name"), ("typed_name",)),
        (_("Authentication"), ("authentication", "method")),
        (_("Multi-factor"), ("authentication", "mfa")),
        (_("IP address"), ("client", "ip")),
        (_("User agent"), ("client", "user_agent")),
    ],
    LedgerEntry.Kind.DECLINED: [
        (_("Reason given"), ("reason",)),
        (_("IP address"), ("client", "ip")),
    ],
    LedgerEntry.Kind.RECEIPT_ISSUED: [
        (_("Receipt number"), ("receipt_number",)),
        (_("Receipt PDF SHA-256"), ("pdf_sha256",)),
        (_("Trusted timestamp"), ("timestamped",)),
    ],
    LedgerEntry.Kind.REDACTED: [
        (_("IP address and user agent removed from entries"), ("entries",)),
        (_("Retention (days)"), ("retention_days",)),
    ],
}


@dataclass(frozen=True)
class Event:
    entry: LedgerEntry
    facts: list[tuple[str, str]]


@dataclass(frozen=True)
class PersonHistory:
    person: User
    moment: dt.datetime
    standings: list[coverage.Standing]
    events: list[Event]
    notifications: list[Notification]
    acknowledgements: list[Acknowledgement]


def person_history(person: User, moment: dt.datetime) -> PersonHistory:
    """Everything recorded about a person up to `moment`, oldest first."""
    entries = (
        LedgerEntry.objects.filter(person=person, recorded_at__lte=moment)
        .select_related("revision__policy", "client_details")
        .annotate(removal_recorded=RemovalRecorded("person_id", "sequence"))
        .order_by("id")
    )
    events = []
    for entry in entries:
        payload = json.loads(bytes(entry.payload))
        client = client_facts(payload, getattr(entry, "client_details", None))
        facts = [
            (
                str(label),
                shown_client(client[path[1]], removal_recorded=entry.removal_recorded)
                if path[0] == "client" and path[1] in client
                else shown(lookup(payload, *path)),
            )
            for label, path in _EVENT_FACTS.get(entry.kind, [])
        ]
        events.append(Event(entry, facts))
    return PersonHistory(
        person=person,
        moment=moment,
        standings=coverage.standings_for(person, moment=moment),
        events=events,
        notifications=list(
            Notification.objects.filter(person=person, created_at__lte=moment)
            .select_related("revision__policy")
            .order_by("created_at", "pk")
        ),
        acknowledgements=list(
            Acknowledgement.objects.filter(person=person, signed_at__lte=moment)
            .select_related("revision__policy", "receipt")
            .order_by("signed_at")
        ),
    )


# --- The audit log -------------------------------------------------------------------------------


AUDIT_KINDS = (LedgerEntry.Kind.ADMIN_ACTION, LedgerEntry.Kind.SUPERSEDED)
SUPERSEDED_ACTION = "superseded"
ENVELOPE = {"schema", "event", "person_id", "actor_id", "revision_id", "recorded_at"}


class PayloadText(Func):
    """A top-level text value of a ledger payload, read by the database (for filtering).

    Payloads are stored as canonical UTF-8 JSON bytes; PostgreSQL decodes them with
    convert_from, SQLite with its JSON functions.
    """

    output_field = CharField()

    def __init__(self, key: str) -> None:
        super().__init__(F("payload"), Value(key))

    def as_sql(self, compiler, connection, *args, **extra_context):
        raise NotImplementedError(f"PayloadText is not written for {connection.vendor}.")

    def as_sqlite(self, compiler, connection, **extra_context):
        payload, key = (compiler.compile(e) for e in self.source_expressions)
        return (
            f"json_extract(CAST({payload[0]} AS TEXT), '$.' || {key[0]})",
            (*payload[1], *key[1]),
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        payload, key = (compiler.compile(e) for e in self.source_expressions)
        return (
            f"(convert_from({payload[0]}, 'UTF8')::jsonb ->> {key[0]}::text)",
            (*payload[1], *key[1]),
        )


def audit_entries(
    *,
    action: str = "",
    actor: str = "",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """Administrative actions and supersessions, newest first, filtered as asked."""
    queryset = LedgerEntry.objects.filter(kind__in=AUDIT_KINDS)
    if action == SUPERSEDED_ACTION:
        queryset = queryset.filter(kind=LedgerEntry.Kind.SUPERSEDED)
    elif action:
        queryset = (
            queryset.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
            .alias(action=PayloadText("action"))
            .filter(action=action)
        )
    if actor:
        queryset = queryset.filter(
            Q(actor__email__icontains=actor) | Q(actor__full_name__icontains=actor)
        )
    if since:
        queryset = queryset.filter(recorded_at__gte=since)
    if until:
        queryset = queryset.filter(recorded_at__lt=until)
    return queryset.select_related("actor", "revision__policy").order_by("-id")


def audit_actions() -> list[str]:
    """The actions recorded so far, for the audit log's filter."""
    recorded = (
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
        .annotate(action=PayloadText("action"))
        .values_list("action", flat=True)
        .distinct()
        .order_by()
    )
    return sorted({a for a in recorded if a} | {SUPERSEDED_ACTION})


@dataclass(frozen=True)
class AuditEvent:
    entry: LedgerEntry
    action: str
    actor: dict[str, Any] | None  # the actor as recorded at the time (id, email, name)
    details: list[tuple[str, str]]

    @property
    def action_label(self) -> str:
        return self.action.replace("_", " ").capitalize()


def describe(entries: Iterable[LedgerEntry]) -> list[AuditEvent]:
    """Decode audit entries into who, what and the details recorded with them."""
    events = []
    for entry in entries:
        payload = json.loads(bytes(entry.payload))
        if entry.kind == LedgerEntry.Kind.SUPERSEDED:
            action = SUPERSEDED_ACTION
            details = {k: v for k, v in payload.items() if k not in ENVELOPE}
            actor = None
        else:
            action = str(payload.get("action") or "")
            details = payload.get("details") or {}
            actor = payload.get("actor")
        events.append(AuditEvent(entry, action, actor, _flatten(details)))
    return events


def _flatten(details: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Details as (label, text) pairs; a nested object's keys read "filters / policy"."""
    pairs = []
    for key, value in sorted(details.items()):
        label = f"{prefix}{key.replace('_', ' ')}"
        if isinstance(value, dict) and value:
            pairs.extend(_flatten(value, f"{label} / "))
        else:
            pairs.append((label, shown(value)))
    return pairs
