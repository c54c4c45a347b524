"""Demo data for trying the portal: the Voipkonnec Acceptable Use Policy and demo accounts.

Running it again changes nothing: every step looks for what it would create first.
"""

import datetime as dt
import os
import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from acknowledgements.demo_people import AUDIENCE_WEIGHTS, FIRST_NAMES, LAST_NAMES
from acknowledgements.models import Audience, Policy, PolicyRevision, User
from acknowledgements.policies import actions as policy_actions
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
POLICY_SLUG = "acceptable-use-policy"
FRENCH_NAME = "Politique d\u2019utilisation acceptable"  # the French translations' name
DEFAULT_PASSWORD = "portal-demo-2026"  # noqa: S105 - the documented demo password
GENERATED_SIGNERS = 200

NAMED_ACCOUNTS = [
    # email, full name, audience slug or None, role group or None
    ("employee@example.com", "Demo Employee", "employees", None),
    ("contractor@example.com", "Demo Contractor", "contractors", None),
    ("partner@example.com", "Demo Partner", "partners", None),
    ("admin@example.com", "Demo Administrator", "employees", POLICY_ADMINISTRATORS),
    ("auditor@example.com", "Demo Auditor", None, AUDITORS),
    ("manager@example.com", "Demo Manager", "employees", None),
]
# The demo manager's direct reports (the team page, escalation).
MANAGED_BY = {
    "employee@example.com": "manager@example.com",
    "contractor@example.com": "manager@example.com",
}
RENEWAL_MONTHS = 12  # the demo policy is re-acknowledged yearly


class Command(BaseCommand):
    help = "Create the demo policy, its revisions and the demo accounts (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even though DJANGO_DEBUG is off (never on a production database).",
        )

    def handle(self, *args, force: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with a known password, so it runs only with "
                "DJANGO_DEBUG=1. Pass --force to run it anyway (never in production)."
            )
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        with transaction.atomic():
            accounts = self._named_accounts(password)
            generated = self._generated_signers(password)
            created = self._policy(owner=accounts["admin@example.com"])
            self._yearly_renewal(owner=accounts["admin@example.com"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(accounts) + generated} accounts, "
                f"{'new' if created else 'existing'} Acceptable Use Policy "
                f"(1.0 and 1.1 published, 2.0 drafted; re-acknowledged every "
                f"{RENEWAL_MONTHS} months)."
            )
        )

    def _yearly_renewal(self, *, owner: User) -> None:
        """Set once: an administrator's later change is kept when the demo is seeded again."""
        policy = Policy.objects.get(slug=POLICY_SLUG)
        if not policy.renewal_periods.exists():
            policy_actions.set_renewal_period(actor=owner, policy=policy, months=RENEWAL_MONTHS)

    def _account(self, email: str, name: str, password: str) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password, full_name=name)
        return user

    def _named_accounts(self, password: str) -> dict[str, User]:
        accounts = {}
        for email, name, audience, role in NAMED_ACCOUNTS:
            user = self._account(email, name, password)
            if audience:
                user.audiences.add(Audience.objects.get(slug=audience))
            if role:
                user.groups.add(Group.objects.get(name=role))
            accounts[email] = user
        for email, manager in MANAGED_BY.items():
            if accounts[email].manager_id is None:
                accounts[email].manager = accounts[manager]
                accounts[email].save(update_fields=["manager"])
        return accounts

    def _generated_signers(self, password: str) -> int:
        # A fixed seed makes the generated people the same on every machine.
        rng = random.Random(2026)  # noqa: S311 - demo names, not secrets
        audiences = {a.slug: a for a in Audience.objects.all()}
        # Hashing one password is slow by design; the generated people all share it.
        template = User(email="template@example.com")
        template.set_password(password)
        for number in range(1, GENERATED_SIGNERS + 1):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            slug = rng.choices(list(AUDIENCE_WEIGHTS), weights=list(AUDIENCE_WEIGHTS.values()))[0]
            email = f"signer{number:03d}@example.com"
            user, created = User.objects.get_or_create(
                email=email, defaults={"full_name": name, "password": template.password}
            )
            if created:
                user.audiences.add(audiences[slug])
        return GENERATED_SIGNERS

    def _policy(self, *, owner: User) -> bool:
        if Policy.objects.filter(slug=POLICY_SLUG).exists():
            return False
        policy = policy_actions.create_policy(
            actor=owner,
            name="Acceptable Use Policy",
            slug=POLICY_SLUG,
            owner=owner,
            audiences=list(Audience.objects.all()),
        )
        first_published = timezone.now() - dt.timedelta(days=30)
        first = policy_actions.create_draft(
            actor=owner,
            policy=policy,
            version="1.0",
            body=(DEMO_DIR / "acceptable-use-policy-1.0.md").read_text("utf-8"),
            change=PolicyRevision.Change.MATERIAL,
            change_summary="First published version of the Acceptable Use Policy.",
            effective_at=first_published,
            due_days=30,
        )
        policy_actions.publish_revision(actor=owner, revision=first)
        minor = policy_actions.create_draft(
            actor=owner,
            policy=policy,
            version="1.1",
            body=(DEMO_DIR / "acceptable-use-policy-1.1.md").read_text("utf-8"),
            change=PolicyRevision.Change.MINOR,
            change_summary='Section 10: corrected the company name "Voipkonnekt" to "Voipkonnec".',
            effective_at=timezone.now(),
        )
        policy_actions.publish_revision(actor=owner, revision=minor)
        policy_actions.save_translation(
            actor=owner,
            revision=minor,
            language="fr",
            title=FRENCH_NAME,
            body=(DEMO_DIR / "acceptable-use-policy-1.1.fr.md").read_text("utf-8"),
        )
        material = policy_actions.create_draft(
            actor=owner,
            policy=policy,
            version="2.0",
            body=(DEMO_DIR / "acceptable-use-policy-2.0.md").read_text("utf-8"),
            change=PolicyRevision.Change.MATERIAL,
            change_summary=(
                "New section 4h on the misuse of generative AI tools, and a matching duty in "
                "section 5: only approved tools, and users stay responsible for the output."
            ),
            due_days=14,
        )
        policy_actions.save_translation(
            actor=owner,
            revision=material,
            language="fr",
            title=FRENCH_NAME,
            body=(DEMO_DIR / "acceptable-use-policy-2.0.fr.md").read_text("utf-8"),
        )
        return True
