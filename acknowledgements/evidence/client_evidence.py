"""What a request tells about who signed and from where, as recorded in the ledger.

Everything here is read from the server's view of the request: the socket address (or the
X-Forwarded-For of a configured trusted proxy), the session's authentication records kept by
django-allauth, and the request id. A fact that is not available is recorded as None ("not
recorded"), never guessed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import zoneinfo
from dataclasses import dataclass

from allauth.account.authentication import get_authentication_records
from django.conf import settings
from django.db.models import BooleanField, F, Func
from django.utils import translation

from acknowledgements.evidence.ledger import utc_iso
from acknowledgements.models import LedgerEntry
from acknowledgements.proxies import is_trusted_proxy
from acknowledgements.request_log import current_request_id

MAX_USER_AGENT = 1000
# How each client commitment in a payload is computed, written into the payload so that an
# auditor reading the evidence years later knows how to open it.
COMMITMENT_SCHEME = "SHA-256 of UTF-8 (salt as 64 hex digits, then the value)"


def commitment(salt: str, value: str) -> str:
    """The salted SHA-256 a payload records in place of a raw IP address or user agent."""
    return hashlib.sha256(f"{salt}{value}".encode()).hexdigest()


def opens(committed: str | None, salt: str, value: str | None) -> bool:
    """Whether a value and its salt match the commitment recorded for them."""
    if committed is None or value is None:
        return committed is None and value is None
    return hmac.compare_digest(commitment(salt, value), committed)


@dataclass(frozen=True)
class SealedClient:
    """One ledger entry's client facts: the payload part, and the raw values kept beside it.

    Each value gets its own random salt: without it, the 2^32 IPv4 addresses (or the few
    thousand common user agents) could be hashed one by one until one matched.
    """

    payload: dict
    ip: str | None
    ip_salt: str
    user_agent: str | None
    user_agent_salt: str

    def details_fields(self) -> dict:
        """Keyword arguments for the ClientDetails row of the entry this payload went into."""
        return {
            "ip": self.ip,
            "ip_salt": self.ip_salt,
            "user_agent": self.user_agent,
            "user_agent_salt": self.user_agent_salt,
        }


@dataclass(frozen=True)
class ClientEvidence:
    ip: str | None
    user_agent: str | None
    request_id: str
    session_key_sha256: str | None
    auth_method: str | None
    authenticated_at: dt.datetime | None
    mfa: bool
    browser_time_zone: str | None
    locale: str

    def sealed(self, *, salts: tuple[str, str] | None = None) -> SealedClient:
        """The payload part for one ledger entry, with fresh salts (given ones: bench data only).

        The IP address and user agent go into the payload only as salted commitments; the raw
        values are kept in ClientDetails, which retention may empty (see services).
        """
        ip_salt, user_agent_salt = salts or (secrets.token_hex(32), secrets.token_hex(32))
        return SealedClient(
            payload=self._payload(
                ip_sha256=None if self.ip is None else commitment(ip_salt, self.ip),
                user_agent_sha256=(
                    None
                    if self.user_agent is None
                    else commitment(user_agent_salt, self.user_agent)
                ),
            ),
            ip=self.ip,
            ip_salt=ip_salt,
            user_agent=self.user_agent,
            user_agent_salt=user_agent_salt,
        )

    def _payload(self, *, ip_sha256: str | None, user_agent_sha256: str | None) -> dict:
        return {
            "client": {
                "ip_sha256": ip_sha256,
                "user_agent_sha256": user_agent_sha256,
                "commitment": COMMITMENT_SCHEME,
                "request_id": self.request_id,
            },
            "authentication": {
                "method": self.auth_method,
                "authenticated_at": utc_iso(self.authenticated_at),
                "mfa": self.mfa,
            },
            "session_key_sha256": self.session_key_sha256,
            "browser_time_zone": self.browser_time_zone,
            "locale": self.locale,
        }


def client_ip(request) -> str | None:
    """The client's address: X-Forwarded-For is believed only when sent by a trusted proxy.

    Walking the forwarded chain from the right, the first address that is not itself a
    trusted proxy is the client.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    if remote is None or not is_trusted_proxy(remote):
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not is_trusted_proxy(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return None
    return remote


def browser_zone(name: str) -> str | None:
    """A valid IANA zone name reported by the browser, or None."""
    if not name or len(name) > 64:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _authentication(request) -> tuple[str | None, dt.datetime | None, bool]:
    records = get_authentication_records(request, request.user)
    if not records:
        return None, None, False
    methods = []
    for record in records:
        method = record.get("method")
        if method == "mfa":
            methods.append(str(record.get("type", "mfa")).upper())
        elif method == "socialaccount":
            methods.append(f"SSO via {record.get('provider', 'unknown provider')}")
        elif method:
            methods.append(str(method))
    latest = max(float(record.get("at", 0)) for record in records)
    mfa = any(record.get("method") == "mfa" for record in records)
    return " + ".join(dict.fromkeys(methods)), dt.datetime.fromtimestamp(latest, dt.UTC), mfa


def needs_fresh_sign_in(request) -> bool:
    """Whether the last sign-in (or re-authentication) is older than signing allows."""
    _, authenticated_at, _ = _authentication(request)
    if authenticated_at is None:
        return True
    age = dt.datetime.now(dt.UTC) - authenticated_at
    return age > dt.timedelta(minutes=settings.PORTAL_SIGNING_REAUTH_MINUTES)


def from_request(request, *, browser_time_zone: str = "") -> ClientEvidence:
    method, authenticated_at, mfa = _authentication(request)
    session_key = request.session.session_key
    user_agent = request.headers.get("User-Agent", "")[:MAX_USER_AGENT] or None
    return ClientEvidence(
        ip=client_ip(request),
        user_agent=user_agent,
        request_id=getattr(request, "id", None) or current_request_id(),
        session_key_sha256=(
            hashlib.sha256(session_key.encode("ascii")).hexdigest() if session_key else None
        ),
        auth_method=method,
        authenticated_at=authenticated_at,
        mfa=mfa,
        browser_time_zone=browser_zone(browser_time_zone),
        locale=translation.get_language() or settings.LANGUAGE_CODE,
    )


# --- Reading the client facts back --------------------------------------------------------------


@dataclass(frozen=True)
class ClientFact:
    """What the evidence holds about one client value (the IP address or the user agent).

    `state` is one of:
    - "held": the payload commits to it and the raw value is still kept (`matches` says
      whether it opens the commitment);
    - "removed": the payload commits to it, and the raw value and salt were removed after the
      retention period: nobody can say any more what the value was;
    - "in_payload": an entry written before commitments existed carries the raw value itself
      (the append-only ledger cannot be rewritten, so it stays);
    - "not_recorded": the request did not tell.
    """

    state: str
    value: str | None = None
    sha256: str | None = None
    salt: str | None = None
    matches: bool | None = None


CLIENT_FIELDS = ("ip", "user_agent")


def client_facts(payload: dict, details) -> dict[str, ClientFact]:
    """The IP address and user agent of a decoded payload, with its ClientDetails (or None)."""
    client = payload.get("client") if isinstance(payload, dict) else None
    client = client if isinstance(client, dict) else {}
    facts = {}
    for name in CLIENT_FIELDS:
        committed_key = f"{name}_sha256"
        if committed_key not in client:
            value = client.get(name)
            facts[name] = ClientFact("in_payload" if value is not None else "not_recorded", value)
            continue
        committed = client[committed_key]
        if committed is None:
            facts[name] = ClientFact("not_recorded")
        elif details is None:
            facts[name] = ClientFact("removed", sha256=committed)
        else:
            value, salt = getattr(details, name), getattr(details, f"{name}_salt")
            facts[name] = ClientFact("held", value, committed, salt, opens(committed, salt, value))
    return facts


# --- Whether a removal was recorded --------------------------------------------------------------
#
# Client details may be deleted (retention does it, and nothing stops a database administrator),
# but only a "redacted" ledger event makes the deletion the retention period's:
# retention.redact_client_details appends one per person and batch, whose payload lists the
# sequences of the entries it emptied. A missing IP address and user agent is "removed after the
# retention period" when such an event of the entry's person lists the entry, and "missing, with
# no recorded removal" otherwise. The rule is the SQL below, for every reader: an entry or a
# person in Python, the signatures CSV's COPY in PostgreSQL.


def recorded_removals_sql(vendor: str) -> str:
    """A SELECT of (person_id, sequence): each entry a "redacted" event lists, with its person.

    An event can only list entries linked before it was written, so it always comes after them.
    """
    # Only constants: the table's name and the kind's value.
    table = LedgerEntry._meta.db_table
    kind = LedgerEntry.Kind.REDACTED.value
    if vendor == "postgresql":
        return (
            "SELECT redaction.person_id, (listed.value #>> '{}')::bigint AS sequence"  # noqa: S608
            f" FROM {table} AS redaction"
            " CROSS JOIN LATERAL (SELECT convert_from(redaction.payload, 'UTF8')::jsonb"
            " -> 'entries' AS entries) AS payload"
            " CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(payload.entries)"
            " = 'array' THEN payload.entries ELSE '[]'::jsonb END) AS listed(value)"
            f" WHERE redaction.kind = '{kind}' AND jsonb_typeof(listed.value) = 'number'"
            # Whole numbers only, and short enough for a bigint (a sequence is one).
            " AND (listed.value #>> '{}') ~ '^[0-9]{1,18}$'"
        )
    if vendor == "sqlite":
        return (
            "SELECT redaction.person_id, listed.value AS sequence"  # noqa: S608
            f" FROM {table} AS redaction, json_each(CAST(redaction.payload AS TEXT), '$.entries')"
            f" AS listed WHERE redaction.kind = '{kind}' AND listed.type = 'integer'"
            " AND json_type(CAST(redaction.payload AS TEXT), '$.entries') = 'array'"
        )
    raise NotImplementedError(f"Recorded removals are not written for {vendor}.")


class RemovalRecorded(Func):
    """Whether a "redacted" event lists the ledger entry whose person and sequence are the given
    fields of the query it is used in."""

    output_field = BooleanField()

    def __init__(self, person: str, sequence: str) -> None:
        super().__init__(F(person), F(sequence))

    def as_sql(self, compiler, connection, *args, **extra_context):
        (person, person_params), (sequence, sequence_params) = (
            compiler.compile(expression) for expression in self.source_expressions
        )
        # Constant SQL around Django's compiled columns; their values are parameters.
        return (
            f"EXISTS (SELECT 1 FROM ({recorded_removals_sql(connection.vendor)}) AS removal"  # noqa: S608
            f" WHERE removal.person_id = {person} AND removal.sequence = {sequence})",
            (*person_params, *sequence_params),
        )


def removal_recorded(entry: LedgerEntry) -> bool:
    """Whether the removal of an entry's client details is recorded in the ledger."""
    if entry.sequence is None:  # only linked entries are ever redacted
        return False
    return (
        LedgerEntry.objects.filter(pk=entry.pk)
        .annotate(recorded=RemovalRecorded("person_id", "sequence"))
        .values_list("recorded", flat=True)
        .get()
    )
