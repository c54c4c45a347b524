"""The portal's data: people and audiences, policies and their revisions, and the evidence ledger.

Published revisions, ledger entries, acknowledgements and receipts are append-only: the
application never updates or deletes them, and on PostgreSQL triggers refuse it (migration
0003). "Who has signed what" is the Acknowledgement table, written in the same transaction as
its ledger entry and unique per person and revision.

Every model of the app is here, in one module past the ~400 lines other modules keep to: the
models are declarations (fields, constraints, single-row facts, queryset filters) that
migrations, triggers and permission strings name as `acknowledgements.<Model>`, and a reader
looks for a table in one place; the rules that use them live in the domain packages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import connection, models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The language whose text is binding; translations help people read it.
AUTHORITATIVE_LANGUAGE = "en"

# How every text SHA-256 (a revision's, a translation's) is computed by policies/text.py, in the
# one sentence the receipt and the verification page print; the README and docs/architecture.md
# quote it word for word.
TEXT_SHA256_RULE = _(
    "A policy text's SHA-256 is the SHA-256 of its Markdown source as UTF-8, with LF line "
    "endings, no white space at the end of a line, no blank line at the start or end, and one "
    "LF after the last line."
)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        if not email:
            raise ValueError("A person needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        """An account with staff and superuser, as Django's tools expect. The models cannot
        write the ledger: `manage.py createsuperuser` (the portal's own command) records the
        grants, and the portal's doors grant roles through people.access instead."""
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class Audience(models.Model):
    """A group of people a policy applies to (the policy's section 2: employees, contractors...)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("audience")

    def __str__(self) -> str:
        return self.name


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in by email; their role comes from their groups."""

    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200)
    audiences = models.ManyToManyField(Audience, blank=True, related_name="members")
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, choices=settings.LANGUAGES, default="en"
    )
    gate_exemption = models.CharField(
        _("exempt from the signing gate because"),
        max_length=200,
        blank=True,
        help_text=_("Service and break-glass accounts only; set through the audited service."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("staff status"), default=False)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)
    # A leaver keeps every record: deactivated, with the date they left (None while active).
    left_at = models.DateTimeField(_("left on"), null=True, blank=True)
    manager = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reports",
        verbose_name=_("manager"),
    )
    employee_number = models.CharField(_("employee number"), max_length=64, blank=True)
    # The key other systems (the HR export, the directory) know the person by, if any.
    external_id = models.CharField(
        _("external id"), max_length=255, null=True, blank=True, unique=True
    )
    # The last invitation to set a password (or sign in by SSO) sent to the person.
    invited_at = models.DateTimeField(_("invited at"), null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        ordering = ["full_name", "email"]
        verbose_name = _("person")
        verbose_name_plural = _("people")
        indexes = [
            # Reports list people by name 50 at a time: read in order, not sorted from everyone.
            models.Index(fields=["full_name", "email", "id"], name="person_by_name"),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_gate_exempt(self) -> bool:
        return bool(self.gate_exemption)

    @property
    def is_policy_admin(self) -> bool:
        return self.has_perm("acknowledgements.publish_policyrevision")

    @property
    def is_auditor(self) -> bool:
        return self.has_perm("acknowledgements.view_reports")


class Policy(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    owner = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_policies"
    )
    audiences = models.ManyToManyField(Audience, related_name="policies")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("policy")
        verbose_name_plural = _("policies")
        permissions = [("view_reports", "Can view reports, exports and the audit log")]

    def __str__(self) -> str:
        return self.name


class PolicyRevisionQuerySet(models.QuerySet["PolicyRevision"]):
    def published(self) -> PolicyRevisionQuerySet:
        return self.filter(status=PolicyRevision.Status.PUBLISHED)

    def in_effect(self, at=None) -> PolicyRevisionQuerySet:
        """Published revisions whose effective date has passed at `at` (default: now)."""
        return self.published().filter(effective_at__lte=at or timezone.now())

    def announced(self) -> PolicyRevisionQuerySet:
        """Revisions emailed to their audiences when published (PolicyRevision.is_announced)."""
        return self.filter(Q(change=PolicyRevision.Change.MATERIAL) | Q(announce=True))

    def in_publication_order(self) -> PolicyRevisionQuerySet:
        return self.order_by(*PolicyRevision.PUBLICATION_ORDER)

    def newest_first(self) -> PolicyRevisionQuerySet:
        return self.order_by(*(f"-{field}" for field in PolicyRevision.PUBLICATION_ORDER))


class PolicyRevision(models.Model):
    """One version of a policy's text. A draft until published; published text never changes.

    `text_sha256` is computed as TEXT_SHA256_RULE says, from `body`: the exact text every
    signer of this revision agreed to, attached to their receipt.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")

    class Change(models.TextChoices):
        MATERIAL = "material", _("Material: everyone must sign again")
        MINOR = "minor", _("Minor: earlier signatures carry over")

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="revisions")
    version = models.CharField(_("version"), max_length=20)
    body = models.TextField(_("text (Markdown)"))
    body_html = models.TextField(editable=False, blank=True)
    text_sha256 = models.CharField(max_length=64, editable=False, blank=True)
    change_summary = models.TextField(_("change summary"), blank=True)
    change = models.CharField(
        _("kind of change"), max_length=10, choices=Change.choices, default=Change.MATERIAL
    )
    effective_at = models.DateTimeField(_("effective from"), default=timezone.now)
    due_days = models.PositiveSmallIntegerField(_("acknowledge within (days)"), default=14)
    announce = models.BooleanField(
        _("email everyone in scope"),
        default=True,
        help_text=_("Material revisions are always announced; for a minor one this is optional."),
    )
    audiences = models.ManyToManyField(Audience, related_name="revisions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = PolicyRevisionQuerySet.as_manager()

    # The order of a policy's published revisions, the one rule every reader follows (sort keys,
    # querysets and SQL): by when they take effect, then by when they were published, then by
    # id. A revision's signatures count from the latest material revision at or before it.
    PUBLICATION_ORDER = ("effective_at", "published_at", "id")

    class Meta:
        ordering = ["policy", "-effective_at"]
        verbose_name = _("policy revision")
        permissions = [("publish_policyrevision", "Can draft and publish policy revisions")]
        constraints = [
            models.UniqueConstraint(fields=["policy", "version"], name="revision_version_unique"),
            models.CheckConstraint(
                condition=Q(status="draft")
                | (Q(published_at__isnull=False) & ~Q(text_sha256="") & ~Q(body_html="")),
                name="published_revision_is_frozen",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} {self.version}"

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    @property
    def is_material(self) -> bool:
        return self.change == self.Change.MATERIAL

    @property
    def is_announced(self) -> bool:
        """Emailed to everyone in its audiences when published: a material revision always,
        a minor one when marked to be."""
        return self.is_material or self.announce

    @property
    def due_at(self) -> dt.datetime:
        return self.effective_at + dt.timedelta(days=self.due_days)

    @property
    def publication_position(self) -> tuple:
        """Where the revision stands in PUBLICATION_ORDER: compare or sort by it."""
        return tuple(getattr(self, field) for field in self.PUBLICATION_ORDER)

    @classmethod
    def sql_publication_position(cls, alias: str) -> str:
        """PUBLICATION_ORDER as an SQL row value of the revision row `alias`: row values compare
        field by field, in PostgreSQL and SQLite alike."""
        return f"({cls.sql_publication_order(alias)})"

    @classmethod
    def sql_publication_order(cls, alias: str, *, descending: bool = False) -> str:
        """An ORDER BY list putting revision rows `alias` in PUBLICATION_ORDER (or reversed)."""
        # The three are plain columns named as their fields.
        quoted = connection.ops.quote_name
        direction = " DESC" if descending else ""
        return ", ".join(f"{alias}.{quoted(field)}{direction}" for field in cls.PUBLICATION_ORDER)

    def _translation_shown(self, language: str) -> RevisionTranslation | None:
        """The frozen translation a reader of `language` is shown, if there is one."""
        if language == AUTHORITATIVE_LANGUAGE or not self.is_published:
            return None
        translation = next((t for t in self.translations.all() if t.language == language), None)
        return translation if translation is not None and translation.text_sha256 else None

    def text_in(self, language: str) -> ShownText:
        """The text to show a reader of `language`: its frozen translation, else the English."""
        if translation := self._translation_shown(language):
            return ShownText(
                translation.language,
                translation.title or self.policy.name,
                translation.body,
                translation.body_html,
                translation.text_sha256,
            )
        return ShownText(
            AUTHORITATIVE_LANGUAGE, self.policy.name, self.body, self.body_html, self.text_sha256
        )

    def text_facts_in(self, language: str) -> tuple[str, str, str]:
        """(language, title, SHA-256) of `text_in(language)`, without loading the texts."""
        if translation := self._translation_shown(language):
            title = translation.title or self.policy.name
            return translation.language, title, translation.text_sha256
        return AUTHORITATIVE_LANGUAGE, self.policy.name, self.text_sha256


@dataclass(frozen=True)
class ShownText:
    """The text a person reads (and signs): its language, the policy's name shown above it (in
    that language if the translation gives one), its source, HTML and SHA-256."""

    language: str
    title: str
    body: str
    body_html: str
    text_sha256: str

    @property
    def is_authoritative(self) -> bool:
        return self.language == AUTHORITATIVE_LANGUAGE


class RevisionTranslation(models.Model):
    """A revision's text and its policy's name in another language, for people who read it
    better than English.

    The English text stays authoritative; a person may sign the translation they read, and the
    ledger records which language, the name shown and the SHA-256 of that text. Frozen like its
    revision once published (the database refuses changes on PostgreSQL); a translation may
    still be added to a published revision.
    """

    revision = models.ForeignKey(
        PolicyRevision, on_delete=models.PROTECT, related_name="translations"
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES)
    # Blank for translations saved before it was asked for: they show the English name.
    title = models.CharField(_("policy name"), max_length=200, blank=True)
    body = models.TextField(_("text (Markdown)"))
    body_html = models.TextField(editable=False, blank=True)
    text_sha256 = models.CharField(max_length=64, editable=False, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "language"], name="one_translation_per_language"
            ),
            models.CheckConstraint(
                condition=~Q(language="en"), name="translation_is_not_the_authoritative_text"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.revision} ({self.language})"


class LedgerEntry(models.Model):
    """One evidence event in the append-only, hash-chained ledger (see evidence/ledger.py)."""

    class Kind(models.TextChoices):
        VIEWED = "viewed", _("Viewed")
        CONSENTED = "consented", _("Consented to sign electronically")
        SIGNED = "signed", _("Signed")
        DECLINED = "declined", _("Declined")
        RECEIPT_ISSUED = "receipt_issued", _("Receipt issued")
        SUPERSEDED = "superseded", _("Superseded")
        ADMIN_ACTION = "admin_action", _("Administrative action")
        REDACTED = "redacted", _("Client details removed")

    # The chain columns are null from the INSERT until the entry is linked, moments later
    # (ledger.link_pending); the database allows that one change and no other (migration 0009).
    # NULL rather than "" for the hashes: many unlinked rows must coexist under `unique`.
    sequence = models.PositiveBigIntegerField(unique=True, null=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Indexed first in ledger_person_kind: an index of its own would only slow every append.
    person = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, related_name="evidence", db_index=False
    )
    actor = models.ForeignKey(User, on_delete=models.PROTECT, null=True, related_name="+")
    revision = models.ForeignKey(
        PolicyRevision, on_delete=models.PROTECT, null=True, related_name="evidence"
    )
    recorded_at = models.DateTimeField()
    payload = models.BinaryField()
    payload_sha256 = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64, null=True)  # noqa: DJ001
    row_hash = models.CharField(max_length=64, unique=True, null=True)  # noqa: DJ001

    class Meta:
        ordering = ["id"]  # the order entries were recorded in, linked or not yet
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        indexes = [
            models.Index(fields=["person", "kind", "revision"], name="ledger_person_kind"),
            models.Index(fields=["kind", "recorded_at"], name="ledger_kind_time"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence or '-'} {self.kind}"


class ClientDetails(models.Model):
    """The raw IP address and user agent behind one ledger entry's salted commitments.

    The ledger payload holds only SHA-256(salt + value) of each; the values and their salts live
    here, outside the append-only tables, so they can be removed after
    PORTAL_CLIENT_DETAILS_RETENTION_DAYS (services.redact_client_details) without changing a
    byte of the chain. While a row exists anyone holding it can check it against the payload;
    once it is deleted, the commitment can no longer be opened (the salt went with the value).
    On PostgreSQL a row can be deleted but never changed (migration 0010).
    """

    ledger_entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, primary_key=True, related_name="client_details"
    )
    # Kept exactly as committed to: a GenericIPAddressField would rewrite IPv6 spellings. NULL is
    # "not recorded", as in the payload (whose commitment is then null too).
    ip = models.CharField(max_length=100, null=True)  # noqa: DJ001
    ip_salt = models.CharField(max_length=64)
    user_agent = models.TextField(null=True)  # noqa: DJ001
    user_agent_salt = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("client details")
        verbose_name_plural = _("client details")

    def __str__(self) -> str:
        return f"Client details of ledger entry {self.ledger_entry_id}"


class Acknowledgement(models.Model):
    """A person's signature of one revision; its evidence is the linked ledger entry."""

    # Each leads an index below (the unique pair, the coverage index): indexes of their own
    # would only slow every signature.
    person = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="acknowledgements", db_index=False
    )
    revision = models.ForeignKey(
        PolicyRevision, on_delete=models.PROTECT, related_name="acknowledgements", db_index=False
    )
    ledger_entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    receipt_number = models.CharField(max_length=32, unique=True)
    signed_at = models.DateTimeField()
    # 0 for a first signature of the revision; n for its n-th renewal (RenewalPeriod), so that a
    # double submission still meets the unique constraint below.
    # (A default in the database too: bulk loads that name the other columns keep working.)
    renewal = models.PositiveSmallIntegerField(default=0, db_default=0)
    # What the ledger payload shows, written by the INSERT that creates the row
    # (evidence/signature_columns.py), so that the signatures CSV copies columns instead of
    # parsing every payload. Nullable only so that a row written without them is refused (the
    # constraints below) rather than stored with empty text.
    email_at_signing = models.TextField(null=True)  # noqa: DJ001
    name_at_signing = models.TextField(null=True)  # noqa: DJ001
    authentication_method = models.TextField(null=True)  # noqa: DJ001
    # Each client value is the payload's commitment to it, opened when exporting with the
    # entry's ClientDetails (which retention deletes), or, for a payload that holds no
    # commitment, the value as the payload shows it; one of the two, never both.
    ip_sha256 = models.TextField(null=True)  # noqa: DJ001
    ip_shown = models.TextField(null=True)  # noqa: DJ001
    user_agent_sha256 = models.TextField(null=True)  # noqa: DJ001
    user_agent_shown = models.TextField(null=True)  # noqa: DJ001

    class Meta:
        ordering = ["-signed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "revision", "renewal"],
                name="one_signature_per_person_revision_and_renewal",
            ),
            models.CheckConstraint(
                condition=Q(
                    email_at_signing__isnull=False,
                    name_at_signing__isnull=False,
                    authentication_method__isnull=False,
                ),
                name="acknowledgement_shows_its_payload",
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{name}_sha256__isnull": True, f"{name}_shown__isnull": False})
                    | Q(**{f"{name}_sha256__isnull": False, f"{name}_shown__isnull": True}),
                    name=f"acknowledgement_{name}_committed_or_shown",
                )
                for name in ("ip", "user_agent")
            ),
        ]
        indexes = [
            # Reports: signatures of a revision over time, and "as of" cut-offs; with the
            # person, who is covered by a revision at a moment is read from the index alone.
            models.Index(
                fields=["revision", "signed_at", "person"], name="acknowledgement_coverage"
            )
        ]

    def __str__(self) -> str:
        return f"{self.receipt_number}: {self.person} signed {self.revision}"


class Membership(models.Model):
    """A person's time in an audience: from when to when, and who began and ended it.

    The history behind `User.audiences` (which holds only the present): reports "as of" a past
    moment count the audiences people had then, and a person's due date counts from when they
    came into a policy's scope. Kept in step with the audiences and the person's active flag by
    standings/memberships.py; a leaver's memberships end on their leaving date.
    """

    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="memberships")
    began_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Who made the change: "person@example.com", "scim:Entra ID", "import:people.csv"...
    begun_by = models.CharField(max_length=300, blank=True)
    ended_by = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["began_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "audience"],
                condition=Q(ended_at__isnull=True),
                name="one_open_membership_per_person_and_audience",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("began_at")),
                name="membership_ends_after_it_begins",
            ),
        ]
        indexes = [
            models.Index(fields=["person", "audience", "began_at"], name="membership_by_person"),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} in {self.audience_id} from {self.began_at:%Y-%m-%d}"


class AudienceSpan(models.Model):
    """A stretch of time in which a person was in exactly these audiences (none: no row).

    Derived from Membership and the joining date for the dashboard (standings/tallies.py), never
    evidence itself: the census counts the spans open at a moment instead of every person.
    """

    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    audience_key = models.TextField()  # the audiences' ids, sorted (tallies.audience_key)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True)
    joined = models.DateTimeField()  # a copy of the person's, so that the census reads no more

    class Meta:
        indexes = [
            models.Index(fields=["person", "start"], name="audience_span_by_person"),
            models.Index(fields=["start"], name="audience_span_by_start"),
            models.Index(
                fields=["end"], condition=Q(end__isnull=False), name="closed_audience_span"
            ),
            # The dashboard at the present moment reads the open spans from this index alone.
            models.Index(
                fields=["audience_key", "start", "joined"],
                condition=Q(end__isnull=True),
                name="open_audience_span",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} in {self.audience_key or '-'} from {self.start:%Y-%m-%d}"


class RunStanding(models.Model):
    """When a person first signed and first declined a revision of one run of a policy.

    Derived from the evidence for the dashboard, never evidence itself (standings/tallies.py).
    """

    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    run = models.ForeignKey(
        PolicyRevision, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    signed_at = models.DateTimeField(null=True)
    declined_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["person", "run"], name="one_standing_per_person_and_run"
            )
        ]
        # The census reads only the few rows its tallies cannot answer (standings/tallies.py).
        indexes = [
            models.Index(fields=["run", "signed_at"], name="run_standing_signed"),
            models.Index(
                fields=["run"],
                condition=Q(declined_at__isnull=False),
                name="run_standing_declined",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} in the run of revision {self.run_id}"


class CoverageTally(models.Model):
    """How many people covered in a run, who first signed in a 15-minute slot, entered (+) or
    left (-) these audiences at a moment.

    A signature counts +1 in the audiences the person had when signing, at its slot; moving to
    other audiences (or leaving) counts -1 there and +1 in the new ones at the moment of the
    move. Summing the rows up to a moment gives who is covered in which audiences then.
    Derived from RunStanding and AudienceSpan for the dashboard (standings/tallies.py).
    """

    run = models.ForeignKey(
        PolicyRevision, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    audience_key = models.TextField()
    slot = models.DateTimeField()  # the start of the first signature's slot, in UTC
    at = models.DateTimeField()  # when the change counts: the slot's start for a signature
    people = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "audience_key", "slot", "at"],
                name="one_tally_per_run_audiences_slot_and_moment",
            )
        ]

    def __str__(self) -> str:
        return f"{self.people} in the run of revision {self.run_id} at {self.at:%Y-%m-%d %H:%M}"


class RenewalPeriod(models.Model):
    """How often a policy's signers re-acknowledge it, from `starts_at` on (0 months: never).

    A change is a new row (and an audited ledger entry), so that "as of" any moment reads the
    rule in force then; no row means never.
    """

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="renewal_periods")
    months = models.PositiveSmallIntegerField(_("re-acknowledge every (months)"))
    starts_at = models.DateTimeField(default=timezone.now)
    set_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["policy", "starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(months__lte=120), name="renewal_period_at_most_ten_years"
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy}: every {self.months} months from {self.starts_at:%Y-%m-%d}"


class SignatureTerm(models.Model):
    """When a signature stops counting under a renewal period of N months (not 0).

    Derived from the evidence (standings/renewal.py says how), never evidence itself: the
    lapse is N calendar months after the signature in the signer's time zone, which SQL cannot
    compute portably, so it is computed once and kept here for the queries.
    """

    acknowledgement = models.ForeignKey(Acknowledgement, on_delete=models.CASCADE, related_name="+")
    period = models.ForeignKey(RenewalPeriod, on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", db_index=False)
    run = models.ForeignKey(
        PolicyRevision, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    signed_at = models.DateTimeField()
    lapses_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["acknowledgement", "period"], name="one_term_per_signature_and_period"
            )
        ]
        indexes = [
            # Who has lapsed in a run, person by person (the census, lists and reminders).
            models.Index(
                fields=["period", "run", "person", "signed_at", "lapses_at"],
                name="signature_term_by_person",
            )
        ]

    def __str__(self) -> str:
        return f"Signature {self.acknowledgement_id} lapses at {self.lapses_at:%Y-%m-%d %H:%M}"


class Receipt(models.Model):
    """The sealed PDF issued for an acknowledgement, stored once: the bytes are the evidence."""

    acknowledgement = models.OneToOneField(
        Acknowledgement, on_delete=models.PROTECT, related_name="receipt"
    )
    pdf = models.FileField(upload_to="receipts/%Y/%m/")
    sha256 = models.CharField(max_length=64)
    seal_fingerprint = models.CharField(max_length=64)
    timestamped = models.BooleanField()
    issued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Receipt {self.acknowledgement.receipt_number}"


class Notification(models.Model):
    """One email to one person about one revision; unique, so a retried task never sends twice."""

    class Kind(models.TextChoices):
        ANNOUNCEMENT = "announcement", _("New revision to sign")
        MINOR_NOTICE = "minor_notice", _("Minor revision notice")
        REMINDER = "reminder", _("Reminder before the due date")
        OVERDUE = "overdue", _("Overdue notice")
        # To a person who came into a policy's scope (added, moved, returned) unsigned.
        IN_SCOPE = "in_scope", _("Now applies to you")
        # To a person whose every signature of the run has lapsed (standings/renewal.py).
        RENEWAL_DUE = "renewal_due", _("Time to sign again")
        # Sent by an administrator or a manager from a list (at most one a day and policy).
        MANUAL_REMINDER = "manual_reminder", _("Reminder sent by hand")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Being sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    person = models.ForeignKey(User, on_delete=models.PROTECT, related_name="notifications")
    revision = models.ForeignKey(
        PolicyRevision, on_delete=models.PROTECT, related_name="notifications"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Reminders are told apart by how many days before the due date they went out.
    days_before_due = models.SmallIntegerField(default=0)
    # What else tells two emails of one kind apart: 0; for a renewal's reminders and overdue
    # notice, the moment the signature lapsed (standings/renewal.py); for a reminder sent by
    # hand, the day sent (its proleptic ordinal), so that a person gets at most one a day.
    occasion = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Queued: when to try next. Being sent: when the worker's claim on it (its lease) runs out.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When it was handed to the SMTP server; it was accepted when the status says sent. Handed
    # but never recorded as accepted (the worker died), its delivery is uncertain.
    sent_at = models.DateTimeField(null=True, blank=True)
    # The worker's claim on the batch it is in: a row taken back after the lease is not sent by
    # the worker that lost it.
    claim = models.CharField(max_length=32, blank=True)
    # Kept from the first attempt, so that a retry of an uncertain delivery carries the same
    # Message-ID and mail systems can recognise the copy.
    message_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "revision", "kind", "days_before_due", "occasion"],
                name="one_notification_per_person_revision_kind_occasion",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["revision", "status"], name="notification_progress"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.person.email} ({self.status})"


class Announcement(models.Model):
    """That a revision's announcement emails were queued, written in the same transaction as
    their rows. A revision published to be announced that has none lost its announcing task
    (a worker stopped mid-way): `recover_work` queues the task again (notifications/actions.py).
    """

    revision = models.OneToOneField(
        PolicyRevision, on_delete=models.PROTECT, primary_key=True, related_name="announcement"
    )
    queued_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Announcement of revision {self.revision_id}"


class ConcernReport(models.Model):
    """A policy violation or security incident reported by a person (the policy's section 8)."""

    class Category(models.TextChoices):
        VIOLATION = "violation", _("Policy violation")
        SECURITY = "security", _("Security incident or breach")
        SUSPICIOUS = "suspicious", _("Suspicious activity")
        OTHER = "other", _("Something else")

    class Status(models.TextChoices):
        NEW = "new", _("New")
        IN_REVIEW = "in_review", _("In review")
        CLOSED = "closed", _("Closed")

    # Kept even for anonymous reports so abuse can be investigated by the compliance officer
    # with a legal basis; never shown to administrators when `anonymous` is set.
    reporter = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    anonymous = models.BooleanField(_("hide my name from the policy administrators"))
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    description = models.TextField(_("what happened"))
    attachment = models.FileField(_("attachment"), upload_to="concerns/%Y/%m/", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_category_display()} ({self.get_status_display()})"


class ExportJob(models.Model):
    """An export built by a task for the person who asked, who alone may see and download it.

    The file goes to the default storage (local files or the object store, like receipts): an
    audit package carries every sealed receipt and can weigh gigabytes, too much for a row.
    """

    class Kind(models.TextChoices):
        # The values are the `what` of the export's audit record.
        XLSX = "acknowledgements.xlsx", _("Acknowledgements (Excel)")
        PACKAGE = "audit-package.zip", _("Audit package (ZIP)")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting to start")
        RUNNING = "running", _("Being built")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")

    requested_by = models.ForeignKey(User, on_delete=models.CASCADE, related_name="export_jobs")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="+")
    # Fixed when asked: the export shows the evidence recorded by then, whenever it is built.
    as_of = models.DateTimeField()
    # The list's filters as PeopleFilter.as_record() writes them.
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    filename = models.CharField(max_length=255)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["requested_by", "-created_at"], name="export_job_mine")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.policy} for {self.requested_by} ({self.status})"

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int | None:
        """Rows written as a whole percentage, None while the total is not known."""
        if not self.rows_total:
            return None
        return min(100, 100 * self.rows_done // self.rows_total)


class PeopleImport(models.Model):
    """A CSV of people an administrator uploaded: planned by a task and shown, then applied by
    another when they confirm (people/import_plan.py, import_apply.py)."""

    class Status(models.TextChoices):
        PLANNING = "planning", _("Being checked")
        PLANNED = "planned", _("Checked: waiting for your confirmation")
        APPLYING = "applying", _("Being applied")
        APPLIED = "applied", _("Applied")
        FAILED = "failed", _("Failed")

    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    filename = models.CharField(max_length=255)
    file = models.FileField(upload_to="imports/%Y/%m/")
    invite = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNING)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    # How many rows have each outcome, and the rows shown (refused first), as planned or applied.
    counts = models.JSONField(default=dict, blank=True)
    rows = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Import of {self.filename} by {self.requested_by} ({self.status})"

    @property
    def in_progress(self) -> bool:
        return self.status in (self.Status.PLANNING, self.Status.APPLYING)


class ApiToken(models.Model):
    """A bearer token another system calls the portal with: the directory's SCIM client, or a
    system reading the read API (/api/v1/). A token opens its scope's door and no other.

    Only the SHA-256 of the token is kept: it is shown once, when it is created. The name is
    unique for ever, so the audit rows that name a token name one token.
    """

    class Scope(models.TextChoices):
        SCIM = "scim", _("SCIM provisioning")
        READ = "read", _("Read API")

    name = models.CharField(_("name"), max_length=100, unique=True)
    token_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(_("scope"), max_length=20, choices=Scope.choices, default=Scope.SCIM)
    created_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # Written at most once a minute per token, not on every request.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("API token")

    def __str__(self) -> str:
        return self.name

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


# ---- The ledger as a transparency log (evidence/transparency.py) ----


class LedgerTreeNode(models.Model):
    """A stored hash of the log's Merkle tree: the root of 2**level leaves from index << level.

    Only complete subtrees of at least 2**TILE_LEVEL leaves are kept (transparency.py), so a
    proof reads O(log n) of these and at most a few hundred leaves, and the table stays a small
    fraction of the ledger. Written once, when the subtree's last leaf is linked; never changed.
    """

    level = models.PositiveSmallIntegerField()
    index = models.PositiveBigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="one_tree_node_per_place")
        ]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class LedgerCheckpoint(models.Model):
    """A signed statement of the log's size and root hash (C2SP tlog-checkpoint, signed-note).

    Every checkpoint is kept: a receipt carries the one that first included its signature, and
    anyone who kept an older one can ask for proof that today's ledger extends it.
    """

    tree_size = models.PositiveBigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    note = models.TextField()  # the signed note, exactly as served and attached to receipts
    created_at = models.DateTimeField(default=timezone.now)
    # An RFC 3161 token over the note, when PORTAL_TSA_URL is set (added after signing).
    timestamp_token = models.BinaryField(null=True, blank=True)
    witnessed_at = models.DateTimeField(null=True, blank=True)  # sent to the witnesses

    class Meta:
        ordering = ["-tree_size"]
        verbose_name = _("ledger checkpoint")

    def __str__(self) -> str:
        return f"checkpoint {self.tree_size}"


class LedgerCheck(models.Model):
    """One run of the full ledger verification (`manage.py verify_ledger`, hourly).

    The latest run decides whether administrators and auditors see the "ledger damaged" banner
    and whether exports and /verify/ warn that the evidence cannot be fully confirmed.
    """

    checked_at = models.DateTimeField(default=timezone.now, db_index=True)
    intact = models.BooleanField()
    rows_checked = models.PositiveBigIntegerField(default=0)
    problems = models.JSONField(default=list)  # one sentence each, as verify_ledger printed them

    class Meta:
        ordering = ["-checked_at"]
        verbose_name = _("ledger check")

    def __str__(self) -> str:
        return f"ledger check {self.checked_at:%Y-%m-%d %H:%M} ({'intact' if self.intact else 'damaged'})"


# ---- The read API and webhooks (acknowledgements/api/, acknowledgements/webhooks/) ----


class WebhookEndpoint(models.Model):
    """A URL another system is told of the portal's events at, signed with its own secret.

    Deliveries follow the Standard Webhooks specification (acknowledgements/webhooks/): the
    secret (`whsec_` and base64) is the HMAC key, so it is kept as it is, and shown once.
    """

    class Event(models.TextChoices):
        ACKNOWLEDGEMENT_SIGNED = "acknowledgement.signed", _("A person signed a revision")
        ACKNOWLEDGEMENT_DECLINED = "acknowledgement.declined", _("A person declined a revision")
        REVISION_PUBLISHED = "revision.published", _("A revision was published")
        PERSON_OVERDUE = "person.overdue", _("A person is overdue")
        PERSON_RENEWAL_DUE = "person.renewal_due", _("A person's signature lapsed: renewal due")

    class DisabledReason(models.TextChoices):
        TURNED_OFF = "turned_off", _("Turned off by an administrator")
        FAILING = "failing", _("Turned off after failing for a day")

    url = models.URLField(_("URL"), max_length=2000)
    # The event types it receives, each an Event value.
    events = models.JSONField(_("events"), default=list)
    active = models.BooleanField(_("active"), default=True)
    secret = models.CharField(max_length=100, editable=False)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # When it was turned off and why (by an administrator, or after failing for a day).
    disabled_at = models.DateTimeField(_("disabled"), null=True, blank=True)
    disabled_reason = models.CharField(max_length=20, choices=DisabledReason.choices, blank=True)
    # The first failed attempt since its last success: a day of failures turns it off.
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("webhook endpoint")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: its exact body, and how its attempts went.

    The body is signed as stored, so every attempt and resend carries the same bytes and the
    same event id (the `webhook-id` a receiver deduplicates on).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Being sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=50)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Pending: when to try next. Being sent: when the worker's claim on it runs out.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim = models.CharField(max_length=32, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="one_delivery_per_endpoint_and_event"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.endpoint} ({self.status})"


# ---- Managers told of their reports' overdue signatures (notifications/escalation.py) ----


class Escalation(models.Model):
    """A person overdue long enough (PORTAL_ESCALATE_AFTER_DAYS) that their manager is told.

    One per person, run and due date, so that a person is escalated once each time they fall
    overdue (a renewal has a due date of its own) however often the scheduler looks. A
    manager's unsent escalations go out together in one email, sent with the same care as a
    notification: claimed, recorded as handed to the server, then as sent.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Being sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        # Signed (or no longer in scope, or without an active manager) before it went out.
        WITHDRAWN = "withdrawn", _("Withdrawn: no longer overdue when it was to be sent")

    person = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", db_index=False)
    manager = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    # The material revision whose due date passed (the run's baseline): a minor revision
    # published since changes neither the due date nor the escalation.
    run = models.ForeignKey(PolicyRevision, on_delete=models.PROTECT, related_name="+")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Queued: when to try next. Being sent: when the worker's claim on it runs out.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When its email was handed to the SMTP server (accepted when the status says sent).
    sent_at = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True)
    message_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["person", "run", "due_at"],
                name="one_escalation_per_person_run_and_due_date",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="escalation_due"),
        ]

    def __str__(self) -> str:
        return f"Escalation of {self.person_id} to {self.manager_id} ({self.status})"
