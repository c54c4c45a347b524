"""The demo data: accounts to try the portal with, and the customer's Acceptable Use Policy."""

import hashlib
from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from acknowledgements.models import LedgerEntry, Policy, PolicyRevision, User
from acknowledgements.policies import actions as policy_actions
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS
from acknowledgements.standings import coverage
from acknowledgements.standings.coverage import Status, standings_for

DEFAULT_PASSWORD = "portal-demo-2026"
SLUG = "acceptable-use-policy"
NAMED = [
    # email, full name, audiences, groups
    ("employee@example.com", "Demo Employee", ["employees"], []),
    ("contractor@example.com", "Demo Contractor", ["contractors"], []),
    ("partner@example.com", "Demo Partner", ["partners"], []),
    ("admin@example.com", "Demo Administrator", ["employees"], [POLICY_ADMINISTRATORS]),
    ("auditor@example.com", "Demo Auditor", [], [AUDITORS]),
    ("manager@example.com", "Demo Manager", ["employees"], []),
]
# Sentences of the customer's policy (shared/seed/acceptable-use-policy.txt), word for word.
CUSTOMER_SENTENCES = [
    "This Acceptable Use Policy (AUP) defines the expectations and requirements for the "
    "appropriate and lawful use of Voipkonnec's technology resources, services, and "
    "infrastructure.",
    "This policy applies to all individuals—including employees, contractors, clients, "
    "partners, and third parties—who access or utilize Voipkonnec's systems, services, or "
    "network infrastructure.",
    "By using or accessing Voipkonnec's services or systems, individuals acknowledge that they "
    "have read, understood, and agreed to comply with this Acceptable Use Policy.",
    "They accept responsibility for their conduct and understand the potential consequences of "
    "policy violations.",
    "Voipkonnekt retains the right to revise this policy as needed.",
]


@pytest.fixture
def seed(db, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    def run(*arguments: str) -> str:
        out = StringIO()
        call_command("seed_demo", *arguments, stdout=out)
        return out.getvalue()

    return run


def revision(version: str) -> PolicyRevision:
    return PolicyRevision.objects.get(policy__slug=SLUG, version=version)


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "policies": Policy.objects.count(),
        "revisions": PolicyRevision.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "memberships": User.audiences.through.objects.count(),
        "roles": User.groups.through.objects.count(),
    }


def test_refuses_without_debug(seed, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        seed()

    assert not User.objects.exists()
    assert not Policy.objects.exists()


def test_runs_with_debug(seed, settings):
    settings.DEBUG = True

    output = seed()

    assert "Demo data ready: 206 accounts" in output
    assert Policy.objects.filter(slug=SLUG).exists()


def test_creates_the_named_accounts(seed, settings):
    settings.DEBUG = False

    seed("--force")

    for email, name, audiences, groups in NAMED:
        user = User.objects.get(email=email)
        assert user.full_name == name
        assert sorted(user.audiences.values_list("slug", flat=True)) == audiences
        assert list(user.groups.values_list("name", flat=True)) == groups
        assert user.check_password(DEFAULT_PASSWORD), email
        assert user.is_active
    assert User.objects.get(email="admin@example.com").is_policy_admin
    assert User.objects.get(email="auditor@example.com").is_auditor
    assert not User.objects.get(email="employee@example.com").is_auditor


def test_the_demo_manager_manages_the_employee_and_the_contractor(seed):
    seed("--force")

    manager = User.objects.get(email="manager@example.com")
    assert sorted(manager.reports.values_list("email", flat=True)) == [
        "contractor@example.com",
        "employee@example.com",
    ]


def test_the_demo_policy_is_renewed_yearly_and_a_change_survives_seeding_again(seed):
    seed("--force")
    policy = Policy.objects.get(slug=SLUG)
    assert coverage.timeline_for(policy).renewal.months == 12
    assert "re-acknowledged every 12 months" in seed("--force")

    policy_actions.set_renewal_period(actor=None, policy=policy, months=6)
    seed("--force")
    assert coverage.timeline_for(policy).renewal.months == 6


def test_creates_200_signers_across_the_audiences(seed):
    seed("--force")

    signers = User.objects.filter(email__startswith="signer").prefetch_related("audiences")
    assert signers.count() == 200
    assert all(len(signer.audiences.all()) == 1 for signer in signers)
    per_audience = Counter(signer.audiences.all()[0].slug for signer in signers)
    assert set(per_audience) == {"employees", "contractors", "clients", "partners", "third-parties"}
    assert per_audience.most_common(1)[0][0] == "employees"
    assert all(signer.full_name for signer in signers)
    assert signers.get(email="signer137@example.com").check_password(DEFAULT_PASSWORD)


def test_demo_password_comes_from_the_environment(seed, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-secret")

    seed("--force")

    for email in ["employee@example.com", "signer001@example.com"]:
        user = User.objects.get(email=email)
        assert user.check_password("another-demo-secret")
        assert not user.check_password(DEFAULT_PASSWORD)


def test_creates_the_acceptable_use_policy_revisions(seed):
    seed("--force")

    first, minor, draft = revision("1.0"), revision("1.1"), revision("2.0")
    assert (first.change, first.status) == ("material", "published")
    assert (minor.change, minor.status) == ("minor", "published")
    assert (draft.change, draft.status) == ("material", "draft")
    assert "Voipkonnekt retains the right to revise this policy" in first.body
    assert "Voipkonnec retains the right to revise this policy" in minor.body
    assert "Voipkonnekt" not in minor.body
    assert "Misuse of Generative AI Tools" in draft.body
    for published in (first, minor):
        assert published.text_sha256 == hashlib.sha256(published.body.encode()).hexdigest()
        assert published.body_html
    # 1.1 is the one in effect; a 1.0 signature would still cover (minor change).
    (standing,) = standings_for(User.objects.get(email="employee@example.com"))
    assert standing.current == minor
    assert standing.timeline.baseline == first
    assert standing.status == Status.PENDING


def test_version_1_0_keeps_the_customers_wording(seed):
    seed("--force")

    first = revision("1.0")
    for sentence in CUSTOMER_SENTENCES:
        assert sentence in first.body, sentence
    assert "## 9. User Agreement" in first.body
    assert (
        "By using or accessing Voipkonnec's services or systems, individuals acknowledge"
        in first.body_html
    )


def test_running_twice_changes_nothing(seed):
    seed("--force")
    before = counts()
    versions = {r.version: (r.pk, r.text_sha256) for r in PolicyRevision.objects.all()}

    output = seed("--force")

    assert counts() == before
    assert {r.version: (r.pk, r.text_sha256) for r in PolicyRevision.objects.all()} == versions
    assert "existing Acceptable Use Policy" in output
