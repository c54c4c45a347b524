"""Build the large data set fast: people, policies, revisions and a verified ledger, by COPY.

    python -m bench.datagen --size full --json out.json     (DATABASE_URL: a migrated database)

What it makes (full size):
- 100,000 people in the five audiences (weights as seed_demo's), plus a policy administrator
  and an auditor; 97% joined before the first revision, 3% in the last 60 days;
- 3 policies with 20 published revisions between them over four years (material and minor),
  the latest ones in effect 20, 5 and 60 days ago (so people are signed, pending and overdue);
- exactly `ledger_rows` ledger rows (1,000,000): the administrative actions (policy created,
  draft created, revision published, superseded) with the payloads services.py writes, one
  `consented` row before each signer's first signature, the `signed` rows, a few `declined`,
  and `viewed` rows (of current revisions, some before a signature) to make up the count;
- one Acknowledgement per `signed` row (unique per person and revision, linked to its row, with
  the columns record_acknowledgement stores from its payload: evidence/signature_columns.py);
- one ClientDetails row (the raw IP address and user agent, with the salts of the payload's
  commitments) per `viewed`, `consented`, `signed` and `declined` row, as services keep them.

The events are simulated per policy in time order (a material revision resets everyone's
coverage; a minor one is signed only by those not covered), sorted by time, numbered, and the
chain is computed in Python in one pass with ledger.canonical_bytes / sha256_hex / chain_hash,
exactly as ledger.append computes it, then streamed to PostgreSQL with binary COPY (the
append-only triggers refuse only UPDATE, DELETE and TRUNCATE). `signed` rows leave
`first_viewed_at` null unless a `viewed` row was made for them. Receipts are not generated
(receipt_issued rows would need stored PDFs).

The payload bytes are also written, concatenated, to .out/payloads.bin for the sha256sum
baseline of the verification benchmark.
"""

from __future__ import annotations

import datetime as dt
import inspect
import io
import random
import struct
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from acknowledgements.demo_people import AUDIENCE_WEIGHTS, FIRST_NAMES, LAST_NAMES
from bench.common import (
    ADMIN_EMAIL,
    AUDITOR_EMAIL,
    OUT,
    PASSWORD,
    django_setup,
    main_args,
    size,
    write_json,
)

SEED = 2026
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
]
ZONES = ["Europe/Paris", "Europe/London", "America/New_York", "Asia/Tokyo", "Africa/Lagos", None]

# (slug, name, audiences, [(version, material?, days before now it took effect)])
POLICIES = [
    (
        "acceptable-use-policy",
        "Acceptable Use Policy",
        list(AUDIENCE_WEIGHTS),
        [("1.0", True, 1440), ("1.1", False, 1300), ("2.0", True, 1100), ("2.1", False, 900),
         ("3.0", True, 700), ("4.0", True, 420), ("4.1", False, 250), ("5.0", True, 20)],
    ),
    (
        "information-security-policy",
        "Information Security Policy",
        ["employees", "contractors", "third-parties"],
        [("1.0", True, 1400), ("2.0", True, 1150), ("2.1", False, 1000), ("3.0", True, 760),
         ("4.0", True, 500), ("4.1", False, 300), ("5.0", True, 5)],
    ),
    (
        "code-of-conduct",
        "Code of Conduct",
        ["employees", "contractors", "partners"],
        [("1.0", True, 1380), ("2.0", True, 1000), ("3.0", True, 300), ("3.1", False, 200),
         ("3.2", False, 60)],
    ),
]  # fmt: skip
DUE_DAYS = 14
# Share of the people who must sign a revision who do sign it within its time in effect,
# before the overall scale that makes the ledger come out at the requested size.
SIGN_SHARE_PAST_MATERIAL = 0.92
SIGN_SHARE_MINOR = 0.5
SIGN_SHARE_CURRENT = {"acceptable-use-policy": 0.6, "information-security-policy": 0.35}
DECLINE_SHARE = 0.01
MIN_VIEWED_SHARE = 0.01  # at least this share of the ledger is `viewed` rows

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# --- Binary COPY -------------------------------------------------------------------------------

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)


def _int8(value: int | None) -> bytes:
    return NULL if value is None else struct.pack(">iq", 8, value)


def _text(value: str | bytes | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">i", len(data)) + data


def _bool(value: bool) -> bytes:
    return struct.pack(">ib", 1, 1 if value else 0)


def _moment(value: dt.datetime | None) -> bytes:
    if value is None:
        return NULL
    delta = value - PG_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return struct.pack(">iq", 8, micros)


def _row(*fields: bytes) -> bytes:
    return struct.pack(">h", len(fields)) + b"".join(fields)


class ChunkReader(io.RawIOBase):
    """A file-like view of a generator of byte chunks, for cursor.copy_expert."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
            except BaseException as error:
                # psycopg2 turns an exception here into a bare CopyFail: keep the real one.
                self.error = error
                raise
        if size < 0:
            size = len(self.buffer)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def copy(cursor, table: str, columns: list[str], rows: Iterator[bytes], block: int = 2000) -> int:
    """Binary COPY of pre-encoded rows into a table; returns how many rows went in."""
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        yield COPY_HEADER
        batch = []
        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) == block:
                yield b"".join(batch)
                batch = []
        yield b"".join(batch) + COPY_TRAILER

    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)"
    reader = ChunkReader(chunks())
    try:
        cursor.copy_expert(sql, reader, size=1 << 20)
    except Exception as error:
        if getattr(reader, "error", None) is not None:
            raise reader.error from error
        raise
    return count


# --- The simulation ----------------------------------------------------------------------------


@dataclass
class Person:
    pk: int
    email: str
    name: str
    audience: str
    joined: dt.datetime


@dataclass(order=True)
class Event:
    at: dt.datetime
    order: int
    kind: str = field(compare=False)
    person: int | None = field(compare=False, default=None)
    revision: int | None = field(compare=False, default=None)  # index into revisions
    extra: dict | None = field(compare=False, default=None)


def receipt_number(index: int) -> str:
    """Unique, scattered receipt numbers in the portal's format (VK-XXXX-XXXX-XXXX)."""
    value = (index * 0x9E3779B97F4A7C15) % (32**12)
    chars = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in range(12))
    return f"VK-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


class Generator:
    def __init__(self, people: int, ledger_rows: int, seed: int = SEED):
        from django.utils import timezone

        self.n_people = people
        self.ledger_rows = ledger_rows
        self.seed = seed
        self.now = timezone.now().replace(microsecond=0)
        self.timings: dict[str, float] = {}

    # People ------------------------------------------------------------------------------------

    def make_people(self) -> None:
        rng = random.Random(self.seed)
        first_revision = self.now - dt.timedelta(days=max(d for p in POLICIES for *_, d in p[3]))
        self.people: list[Person] = []
        slugs, weights = list(AUDIENCE_WEIGHTS), list(AUDIENCE_WEIGHTS.values())
        for pk in range(1, self.n_people + 1):
            if rng.random() < 0.03:
                joined = self.now - dt.timedelta(days=rng.uniform(0.5, 60))
            else:
                joined = first_revision - dt.timedelta(days=rng.uniform(1, 400))
            self.people.append(
                Person(
                    pk=pk,
                    email=f"person{pk:06d}@bench.example.com",
                    name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    audience=rng.choices(slugs, weights)[0],
                    joined=joined.replace(microsecond=0),
                )
            )
        self.admin_pk = self.n_people + 1
        self.auditor_pk = self.n_people + 2

    def copy_people(self, cursor) -> None:
        from django.contrib.auth.hashers import make_password

        from acknowledgements.models import Audience

        password = make_password(PASSWORD)
        audience_ids = dict(Audience.objects.values_list("slug", "pk"))
        staff = [
            (self.admin_pk, ADMIN_EMAIL, "Bench Administrator"),
            (self.auditor_pk, AUDITOR_EMAIL, "Bench Auditor"),
        ]

        def users() -> Iterator[bytes]:
            rows = [(p.pk, p.email, p.name, p.joined) for p in self.people]
            rows += [
                (pk, email, name, self.now - dt.timedelta(days=2000)) for pk, email, name in staff
            ]
            for pk, email, name, joined in rows:
                yield _row(
                    _int8(pk), _text(password), NULL, _bool(False), _text(email), _text(name),
                    _text("en"), _bool(True), _bool(False), _moment(joined), _text(""),
                    _text(""),
                )  # fmt: skip

        copy(
            cursor,
            "acknowledgements_user",
            ["id", "password", "last_login", "is_superuser", "email", "full_name",
             "preferred_language", "is_active", "is_staff", "date_joined", "gate_exemption",
             "employee_number"],
            users(),
        )  # fmt: skip
        copy(
            cursor,
            "acknowledgements_user_audiences",
            ["id", "user_id", "audience_id"],
            (_row(_int8(p.pk), _int8(p.pk), _int8(audience_ids[p.audience])) for p in self.people),
        )
        # Each person has been in their audience since they joined (their membership history).
        copy(
            cursor,
            "acknowledgements_membership",
            ["id", "person_id", "audience_id", "began_at", "begun_by", "ended_by"],
            (
                _row(
                    _int8(p.pk),
                    _int8(p.pk),
                    _int8(audience_ids[p.audience]),
                    _moment(p.joined),
                    _text("bench"),
                    _text(""),
                )
                for p in self.people
            ),
        )
        for table in (
            "acknowledgements_user",
            "acknowledgements_user_audiences",
            "acknowledgements_membership",
        ):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )

    def grant_roles(self) -> None:
        from django.contrib.auth.models import Group

        from acknowledgements.models import User
        from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS

        User.objects.get(pk=self.admin_pk).groups.add(Group.objects.get(name=POLICY_ADMINISTRATORS))
        User.objects.get(pk=self.auditor_pk).groups.add(Group.objects.get(name=AUDITORS))

    # Policies and revisions -------------------------------------------------------------------

    def make_policies(self) -> None:
        from acknowledgements.models import Audience, Policy, PolicyRevision, User
        from acknowledgements.policies import text as policy_text
        from bench.common import ROOT

        admin = User.objects.get(pk=self.admin_pk)
        audiences = {a.slug: a for a in Audience.objects.all()}
        demo = ROOT / "acknowledgements" / "demo"
        self.policies = []
        self.revisions: list = []  # in the order they took effect, per policy
        self.revisions_of: dict[str, list[int]] = {}
        for slug, name, audience_slugs, versions in POLICIES:
            first = self.now - dt.timedelta(days=versions[0][2])
            policy = Policy.objects.create(
                name=name, slug=slug, owner=admin, created_at=first - dt.timedelta(days=2)
            )
            policy.audiences.set([audiences[s] for s in audience_slugs])
            self.policies.append((policy, audience_slugs))
            indexes = []
            for version, material, days in versions:
                if slug == "acceptable-use-policy":
                    source = demo / (
                        "acceptable-use-policy-2.0.md"
                        if material
                        else "acceptable-use-policy-1.1.md"
                    )
                    body = source.read_text("utf-8")
                else:
                    body = _generic_body(name)
                body = policy_text.normalise(f"{body}\nThis is version {version} of the {name}.\n")
                effective = self.now - dt.timedelta(days=days)
                revision = PolicyRevision.objects.create(
                    policy=policy,
                    version=version,
                    body=body,
                    body_html=policy_text.render_html(body),
                    text_sha256=policy_text.text_sha256(body),
                    change=PolicyRevision.Change.MATERIAL
                    if material
                    else PolicyRevision.Change.MINOR,
                    change_summary=f"Version {version} ({'material' if material else 'minor'}).",
                    effective_at=effective,
                    due_days=DUE_DAYS,
                    announce=True,
                    created_by=admin,
                    created_at=effective - dt.timedelta(days=1),
                )
                revision.audiences.set([audiences[s] for s in audience_slugs])
                # Published only now: the database refuses audience changes once published.
                PolicyRevision.objects.filter(pk=revision.pk).update(
                    status=PolicyRevision.Status.PUBLISHED,
                    published_at=effective,
                    published_by=admin,
                )
                revision.refresh_from_db()
                indexes.append(len(self.revisions))
                self.revisions.append(revision)
            self.revisions_of[slug] = indexes

    # Events -----------------------------------------------------------------------------------

    def simulate(
        self, scale: float
    ) -> tuple[list[Event], list[tuple[int, int]], dict[int, dt.datetime]]:
        """Signatures and declines at a given overall signing scale (deterministic)."""
        rng = random.Random(self.seed + 1)
        end_of_time = self.now - dt.timedelta(minutes=10)
        signatures: list[Event] = []
        uncovered_now: list[tuple[int, int]] = []  # (person, revision index) of current revisions
        for (policy, audience_slugs), indexes in zip(
            self.policies, self.revisions_of.values(), strict=True
        ):
            scope = [p for p in self.people if p.audience in audience_slugs]
            covered: set[int] = set()
            for position, index in enumerate(indexes):
                revision = self.revisions[index]
                start = revision.effective_at
                is_current = position == len(indexes) - 1
                end = (
                    end_of_time
                    if is_current
                    else self.revisions[indexes[position + 1]].effective_at
                )
                if revision.is_material:
                    covered = set()
                    share = (
                        SIGN_SHARE_CURRENT.get(policy.slug, 0.5)
                        if is_current
                        else SIGN_SHARE_PAST_MATERIAL
                    )
                else:
                    share = SIGN_SHARE_MINOR
                share = min(0.98, share * scale)
                for person in scope:
                    if person.pk in covered:
                        continue
                    earliest = max(start, person.joined)
                    if earliest >= end:
                        continue
                    if rng.random() < share:
                        at = earliest + dt.timedelta(days=rng.expovariate(1 / 4))
                        if at >= end:
                            at = earliest + (end - earliest) * rng.random()
                        signatures.append(Event(at, 0, "signed", person.pk, index))
                        covered.add(person.pk)
                    elif is_current:
                        uncovered_now.append((person.pk, index))
        first_signed: dict[int, dt.datetime] = {}
        for event in signatures:
            if event.person not in first_signed or event.at < first_signed[event.person]:
                first_signed[event.person] = event.at
        return signatures, uncovered_now, first_signed

    def admin_events(self) -> list[Event]:
        events = []
        for (policy, _audiences), indexes in zip(
            self.policies, self.revisions_of.values(), strict=True
        ):
            events.append(Event(policy.created_at, 0, "policy_created", extra={"policy": policy}))
            previous = None
            for index in indexes:
                revision = self.revisions[index]
                events.append(Event(revision.created_at, 0, "draft_created", revision=index))
                events.append(Event(revision.effective_at, 0, "revision_published", revision=index))
                if previous is not None and revision.is_material:
                    events.append(
                        Event(
                            revision.effective_at,
                            1,
                            "superseded",
                            revision=previous,
                            extra={"by": index},
                        )
                    )
                previous = index
        return events

    def build_events(self) -> list[Event]:
        admin = self.admin_events()
        # The ledger's other rows: one consent per signer, some declines, at least 1% views.
        minimum_views = int(self.ledger_rows * MIN_VIEWED_SHARE)
        # Signatures grow about linearly with the scale: aim just under the budget, then trim
        # the few in excess or make up the rest with views.
        scale, signatures = 0.9, []
        for _attempt in range(3):
            signatures, uncovered, first_signed = self.simulate(scale)
            declines = int(len(uncovered) * DECLINE_SHARE)
            budget = self.ledger_rows - len(admin) - len(first_signed) - declines - minimum_views
            if 0.95 * budget < len(signatures) <= budget:
                break
            scale *= 0.99 * budget / max(1, len(signatures))
        rng = random.Random(self.seed + 2)
        if len(signatures) > budget:  # trim the excess at random (a few at most)
            rng.shuffle(signatures)
            del signatures[budget:]
            signatures.sort()
            first_signed = {}
            for event in signatures:
                if event.person not in first_signed or event.at < first_signed[event.person]:
                    first_signed[event.person] = event.at
        events = admin + signatures
        for person, at in first_signed.items():
            events.append(
                Event(at - dt.timedelta(seconds=rng.uniform(5, 120)), 0, "consented", person)
            )
        rng.shuffle(uncovered)
        end_of_time = self.now - dt.timedelta(minutes=10)
        declined = uncovered[:declines]
        for person, index in declined:
            at = self._moment_in(rng, index, person, end_of_time)
            events.append(Event(at, 0, "declined", person, index))
        # Views: of current revisions by people who have not signed them, then (if more are
        # needed) just before signatures of current revisions, whose payload then records them.
        missing = self.ledger_rows - len(events)
        lookers = uncovered[declines : declines + missing]
        for person, index in lookers:
            at = self._moment_in(rng, index, person, end_of_time)
            events.append(Event(at, 0, "viewed", person, index))
        missing = self.ledger_rows - len(events)
        if missing > 0:
            for event in rng.sample(signatures, min(missing, len(signatures))):
                viewed_at = event.at - dt.timedelta(seconds=rng.uniform(30, 600))
                event.extra = {"first_viewed_at": viewed_at}
                events.append(Event(viewed_at, 0, "viewed", event.person, event.revision))
        if len(events) != self.ledger_rows:
            raise RuntimeError(f"made {len(events)} ledger rows, not {self.ledger_rows}")
        events.sort()
        self.consent_at = {e.person: e.at for e in events if e.kind == "consented"}
        return events

    def _moment_in(
        self, rng: random.Random, index: int, person: int, end: dt.datetime
    ) -> dt.datetime:
        start = max(self.revisions[index].effective_at, self.people[person - 1].joined)
        return start + (end - start) * rng.random()

    # Payloads and the chain ------------------------------------------------------------------

    def payload(
        self, event: Event, rng: random.Random, number: str | None
    ) -> tuple[dict, int | None, int | None, int | None, tuple | None]:
        """(payload before the ledger's envelope, person_id, actor_id, revision_id, client
        details: the raw IP address, its salt, the user agent and its salt, as kept beside a
        person's entries in ClientDetails; None for the others)."""
        from acknowledgements.evidence import ledger
        from acknowledgements.evidence import snapshots as evidence_snapshots
        from acknowledgements.evidence.client_evidence import ClientEvidence

        admin = self.admin_user
        kind = event.kind
        if kind in ("policy_created", "draft_created", "revision_published"):
            if kind == "policy_created":
                policy = event.extra["policy"]
                slugs = next(a for p, a in self.policies if p.pk == policy.pk)
                details = {"policy": policy.slug, "name": policy.name, "audiences": sorted(slugs)}
                revision_id = None
            else:
                revision = self.revisions[event.revision]
                if kind == "draft_created":
                    details = {"policy": self.revision_snapshots[event.revision]["slug"], "version": revision.version,
                               "change": revision.change, "draft_id": revision.pk}  # fmt: skip
                    revision_id = None
                else:
                    details = {
                        "policy": self.revision_snapshots[event.revision]["slug"],
                        "version": revision.version,
                        "change": revision.change,
                        "change_summary": revision.change_summary,
                        "text_sha256": revision.text_sha256,
                        "effective_at": ledger.utc_iso(revision.effective_at),
                        "due_days": revision.due_days,
                        "audiences": self.revision_audiences[event.revision],
                    }
                    revision_id = revision.pk
            payload = {
                "action": kind,
                "actor": evidence_snapshots.person_snapshot(admin),
                "details": details,
            }
            return payload, None, admin.pk, revision_id, None
        if kind == "superseded":
            previous = self.revisions[event.revision]
            new = self.revisions[event.extra["by"]]
            payload = {
                "policy": self.revision_snapshots[event.extra["by"]]["slug"],
                "superseded_version": previous.version,
                "by_version": new.version,
                "by_revision_id": new.pk,
                "from": ledger.utc_iso(new.effective_at),
                "rule": "signatures of earlier revisions no longer count from this time",
            }
            return payload, None, admin.pk, previous.pk, None

        person = self.people[event.person - 1]
        user = SimpleNamespace(pk=person.pk, email=person.email, full_name=person.name)
        sealed = ClientEvidence(
            ip=f"198.51.100.{person.pk % 250 + 1}",
            user_agent=USER_AGENTS[person.pk % len(USER_AGENTS)],
            request_id=f"{rng.getrandbits(128):032x}",
            session_key_sha256=f"{rng.getrandbits(256):064x}",
            auth_method="password",
            authenticated_at=event.at - dt.timedelta(seconds=rng.uniform(30, 1200)),
            mfa=False,
            browser_time_zone=ZONES[person.pk % len(ZONES)],
            locale="en",
        ).sealed(salts=(f"{rng.getrandbits(256):064x}", f"{rng.getrandbits(256):064x}"))
        client = sealed.payload
        details = (sealed.ip, sealed.ip_salt, sealed.user_agent, sealed.user_agent_salt)
        if kind == "consented":
            payload = {
                "person": evidence_snapshots.person_snapshot(user),
                "consent": self.consent_evidence,
                **client,
            }
            return payload, person.pk, None, None, details
        revision = self.revisions[event.revision]
        snapshots = {
            "person": evidence_snapshots.person_snapshot(user),
            "policy": self.revision_snapshots[event.revision],
            "text": self.text_snapshots[event.revision],
        }
        if kind == "viewed":
            return {**snapshots, **client}, person.pk, None, revision.pk, details
        if kind == "declined":
            return {**snapshots, "reason": None, **client}, person.pk, None, revision.pk, details
        assert kind == "signed", kind
        first_viewed = (event.extra or {}).get("first_viewed_at")
        payload = {
            "receipt_number": number,
            "company": self.company,
            **snapshots,
            "attestation": self.attestation_evidence,
            "consent": {
                "version": self.consent_evidence["version"],
                "language": self.consent_evidence["language"],
                "sha256": self.consent_evidence["sha256"],
                "accepted_at": ledger.utc_iso(self.consent_at[person.pk]),
            },
            "typed_name": person.name,
            "checkbox_ticked": True,
            "first_viewed_at": ledger.utc_iso(first_viewed),
            "signed_at": ledger.utc_iso(event.at),
            **client,
        }
        return payload, person.pk, None, revision.pk, details

    def prepare_payloads(self, events: list[Event]) -> None:
        """Everything payloads need from the database, read before the COPY starts."""
        from django.conf import settings

        from acknowledgements import models
        from acknowledgements.evidence import snapshots as evidence_snapshots
        from acknowledgements.evidence.statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT
        from acknowledgements.models import User

        self.admin_user = User.objects.get(pk=self.admin_pk)
        self.company = settings.PORTAL_COMPANY_NAME
        self.attestation_evidence = CURRENT_ATTESTATION.as_evidence()
        self.consent_evidence = CURRENT_ESIGN_CONSENT.as_evidence()
        self.revision_snapshots = [evidence_snapshots.revision_snapshot(r) for r in self.revisions]
        # As record_acknowledgement writes it for someone reading the authoritative text (the
        # snapshot takes the language read once translations exist).
        language = getattr(models, "AUTHORITATIVE_LANGUAGE", "en")
        takes_language = (
            "language" in inspect.signature(evidence_snapshots.text_snapshot).parameters
        )
        self.text_snapshots = [
            evidence_snapshots.text_snapshot(r, language)
            if takes_language
            else evidence_snapshots.text_snapshot(r)
            for r in self.revisions
        ]
        self.revision_audiences = [
            sorted(a.slug for a in r.audiences.all()) for r in self.revisions
        ]
        self.events = events
        # Receipt numbers follow the signatures' order in the ledger.
        self.numbers: list[str | None] = []
        signatures = 0
        for event in events:
            if event.kind == "signed":
                signatures += 1
                self.numbers.append(receipt_number(signatures))
            else:
                self.numbers.append(None)

    def bodies(self, chunk: int) -> list[tuple]:
        """Canonical payload bytes of one chunk of events (run in worker processes)."""
        from acknowledgements.evidence import ledger, signature_columns

        rng = random.Random(self.seed * 1_000_003 + chunk)
        out = []
        for index in range(chunk * CHUNK, min(len(self.events), (chunk + 1) * CHUNK)):
            event = self.events[index]
            payload, person_id, actor_id, revision_id, details = self.payload(
                event, rng, self.numbers[index]
            )
            kind = event.kind if event.kind in LEDGER_KINDS else "admin_action"
            # What the signing action stores from the payload in the Acknowledgement row.
            columns = signature_columns.columns_of(payload) if kind == "signed" else None
            body = ledger.canonical_bytes(
                {
                    **payload,
                    "schema": ledger.SCHEMA_VERSION,
                    "event": kind,
                    "person_id": person_id,
                    "actor_id": actor_id,
                    "revision_id": revision_id,
                    "recorded_at": ledger.utc_iso(event.at),
                }
            )
            out.append((body, kind, person_id, actor_id, revision_id, details, columns))
        return out

    def copy_ledger(self, cursor, events: list[Event]) -> dict:
        """Chain the rows in one pass and stream them in; payloads are built by worker processes."""
        import multiprocessing

        from acknowledgements.evidence import ledger, signature_columns

        self.prepare_payloads(events)
        chunks = range((len(events) + CHUNK - 1) // CHUNK)
        pool = None
        if len(events) > 4 * CHUNK:
            global _GENERATOR
            _GENERATOR = self
            # Forked after everything is read: the workers never touch the database connection.
            pool = multiprocessing.get_context("fork").Pool(WORKERS)
            built = pool.imap(_bodies, chunks)
        else:
            built = map(self.bodies, chunks)
        acknowledgements = bytearray()
        # ~200 bytes a row: spooled to a file rather than held in memory at full size.
        client_details = tempfile.TemporaryFile()  # noqa: SIM115 - closed after its COPY
        client_details.write(COPY_HEADER)
        kinds: dict[str, int] = defaultdict(int)
        state = {"head": ledger.GENESIS_HASH, "signatures": 0, "payload_bytes": 0}
        payload_file = (OUT / "payloads.bin").open("wb")

        def rows() -> Iterator[bytes]:
            previous = ledger.GENESIS_HASH
            sequence = 0
            for block in built:
                for body, kind, person_id, actor_id, revision_id, details, columns in block:
                    sequence += 1
                    event = events[sequence - 1]
                    payload_sha256 = ledger.sha256_hex(body)
                    row_hash = ledger.chain_hash(
                        sequence=sequence, previous_hash=previous, payload_sha256=payload_sha256
                    )
                    payload_file.write(body)
                    state["payload_bytes"] += len(body)
                    kinds[kind] += 1
                    if kind == "signed":
                        state["signatures"] += 1
                        acknowledgements.extend(
                            _row(
                                _int8(state["signatures"]), _text(self.numbers[sequence - 1]),
                                _moment(event.at), _int8(person_id), _int8(sequence),
                                _int8(revision_id),
                                *(_text(columns[column]) for column in signature_columns.COLUMNS),
                            )
                        )  # fmt: skip
                    if details is not None:
                        ip, ip_salt, user_agent, user_agent_salt = details
                        client_details.write(
                            _row(
                                _int8(sequence), _text(ip), _text(ip_salt), _text(user_agent),
                                _text(user_agent_salt),
                            )
                        )  # fmt: skip
                    yield _row(
                        _int8(sequence), _int8(sequence), _text(kind), _moment(event.at),
                        _text(body), _text(payload_sha256), _text(previous), _text(row_hash),
                        _int8(actor_id), _int8(person_id), _int8(revision_id),
                    )  # fmt: skip
                    previous = row_hash
            state["head"] = previous

        started = time.perf_counter()
        try:
            copy(
                cursor,
                "acknowledgements_ledgerentry",
                ["id", "sequence", "kind", "recorded_at", "payload", "payload_sha256",
                 "previous_hash", "row_hash", "actor_id", "person_id", "revision_id"],
                rows(),
            )  # fmt: skip
        finally:
            if pool is not None:
                pool.terminate()
            payload_file.close()
        self.timings["ledger_copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        cursor.copy_expert(
            "COPY acknowledgements_acknowledgement (id, receipt_number, signed_at, person_id, "
            f"ledger_entry_id, revision_id, {', '.join(signature_columns.COLUMNS)}) "
            "FROM STDIN WITH (FORMAT binary)",
            io.BytesIO(COPY_HEADER + bytes(acknowledgements) + COPY_TRAILER),
            size=1 << 20,
        )
        self.timings["acknowledgement_copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        client_details.write(COPY_TRAILER)
        client_details.seek(0)
        with client_details:
            cursor.copy_expert(
                "COPY acknowledgements_clientdetails (ledger_entry_id, ip, ip_salt, user_agent, "
                "user_agent_salt) FROM STDIN WITH (FORMAT binary)",
                client_details,
                size=1 << 20,
            )
        self.timings["client_details_copy_s"] = time.perf_counter() - started
        for table in ("acknowledgements_ledgerentry", "acknowledgements_acknowledgement"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        return {
            "kinds": dict(kinds),
            "signatures": state["signatures"],
            "head_hash": state["head"],
            "payload_bytes": state["payload_bytes"],
        }

    def run(self) -> dict:
        from django.db import connection, transaction

        from acknowledgements.evidence import ledger
        from acknowledgements.standings import tallies as run_standings

        started = time.perf_counter()
        step = time.perf_counter()
        self.make_people()
        with transaction.atomic(), connection.cursor() as django_cursor:
            cursor = django_cursor.cursor  # the psycopg2 cursor, for copy_expert
            # Foreign keys are checked below in a few set-based queries instead of one deferred
            # trigger per row at commit (minutes at this size); the append-only triggers are
            # ENABLE ALWAYS and refuse only UPDATE, DELETE and TRUNCATE, so nothing else changes.
            cursor.execute("SET LOCAL session_replication_role = replica")
            self.copy_people(cursor)
            self.timings["people_s"] = time.perf_counter() - step
            self.grant_roles()
            self.make_policies()
            step = time.perf_counter()
            events = self.build_events()
            self.timings["simulate_s"] = time.perf_counter() - step
            ledger_info = self.copy_ledger(cursor, events)
            step = time.perf_counter()
            cursor.execute("SET LOCAL session_replication_role = origin")
            check_foreign_keys(cursor, LOADED_TABLES)
            self.timings["foreign_key_check_s"] = time.perf_counter() - step
        # The dashboard's standings and tallies, as the migration that made them fills them
        # (the load went around the signals that keep them).
        step = time.perf_counter()
        with transaction.atomic():
            run_standings.rebuild()
        self.timings["run_standings_s"] = time.perf_counter() - step
        step = time.perf_counter()
        connection.close()
        with connection.cursor() as cursor:
            for table in LOADED_TABLES + DERIVED_TABLES:
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        self.timings["vacuum_analyze_s"] = time.perf_counter() - step
        total = time.perf_counter() - started
        assert (
            ledger_info["head_hash"]
            == ledger.LedgerEntry.objects.order_by("-sequence")
            .values_list("row_hash", flat=True)
            .first()
        )
        return {
            "people": self.n_people,
            "ledger_rows": len(events),
            "revisions": len(self.revisions),
            "policies": len(self.policies),
            **ledger_info,
            "payload_file": str(OUT / "payloads.bin"),
            "seconds": total,
            "ledger_rows_per_s": len(events) / (self.timings["ledger_copy_s"] or 1),
            "timings": self.timings,
            "generated_at": self.now.isoformat(),
        }


CHUNK = 5_000  # events per unit of work of the payload workers
WORKERS = 2
_GENERATOR: Generator | None = None


def _bodies(chunk: int) -> list:
    assert _GENERATOR is not None
    return _GENERATOR.bodies(chunk)


LEDGER_KINDS = {"viewed", "consented", "signed", "declined", "receipt_issued", "superseded"}
LOADED_TABLES = [
    "acknowledgements_user",
    "acknowledgements_user_audiences",
    "acknowledgements_membership",
    "acknowledgements_ledgerentry",
    "acknowledgements_acknowledgement",
    "acknowledgements_clientdetails",
]
DERIVED_TABLES = [
    "acknowledgements_audiencespan",
    "acknowledgements_runstanding",
    "acknowledgements_coveragetally",
]


def check_foreign_keys(cursor, tables: list[str]) -> None:
    """Every foreign key of the loaded tables points at an existing row (one query per key)."""
    cursor.execute(
        """
        SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, f.attname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s)
        """,
        [tables],
    )
    for table, column, target, target_column in cursor.fetchall():
        cursor.execute(
            f"SELECT count(*) FROM {table} t WHERE t.{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {target} r WHERE r.{target_column} = t.{column})"
        )
        (dangling,) = cursor.fetchone()
        if dangling:
            raise RuntimeError(f"{dangling} rows of {table}.{column} point at no {target} row")


def _generic_body(name: str) -> str:
    sections = [
        ("Purpose", f"This {name} sets out what the company expects of everyone it applies to."),
        ("Scope", "It applies to the audiences named when the revision was published."),
        ("Rules", "Follow the rules below at all times.\n\n1. Be careful.\n2. Be honest.\n3. Ask."),
        ("Reporting", "Report any concern to the compliance team without delay."),
        ("Consequences", "Breaking this policy may lead to disciplinary action."),
    ]
    text = f"# {name}\n\n"
    for number, (title, paragraph) in enumerate(sections, 1):
        text += f"## {number}. {title}\n\n{paragraph}\n\n"
    return text


def main() -> None:
    args = main_args(__doc__.splitlines()[0])
    chosen = size(args.size)
    django_setup()
    OUT.mkdir(parents=True, exist_ok=True)
    result = Generator(chosen.people, chosen.ledger_rows).run()
    write_json(args.json, result)
    print(
        f"{result['ledger_rows']:,} ledger rows ({result['signatures']:,} signatures) for "
        f"{result['people']:,} people in {result['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
