"""Shared fixtures: small factories for people, policies and revisions, and the skip rules.

Tests that need PostgreSQL (`@pytest.mark.postgres`) or Chromium (`@pytest.mark.browser`)
skip with a reason on a laptop without them; REQUIRE_POSTGRES=1 / REQUIRE_BROWSER=1 (set by
CI) turn those skips into failures.
"""

import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest
import time_machine
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.utils import timezone, translation

from acknowledgements.evidence import checks
from acknowledgements.evidence.client_evidence import ClientEvidence
from acknowledgements.models import Audience, PolicyRevision, User
from acknowledgements.policies import actions as policy_actions
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS, install_roles_and_audiences
from acknowledgements.signing import actions as signing_actions

PASSWORD = "correct-horse-battery-staple"
APPEND_ONLY_TABLES = [
    "acknowledgements_ledgerentry",
    "acknowledgements_acknowledgement",
    "acknowledgements_receipt",
    "acknowledgements_policyrevision",
    "acknowledgements_policyrevision_audiences",
    "acknowledgements_revisiontranslation",
    "acknowledgements_ledgertreenode",
    "acknowledgements_ledgercheckpoint",
]


def pytest_configure(config):
    # Keep sealing keys and stored receipts of the test run out of the developer's home.
    scratch = Path(tempfile.mkdtemp(prefix="aup-portal-tests-"))
    settings.PORTAL_SEALING_DIR = scratch / "sealing"
    settings.PORTAL_LEDGER_KEY_DIR = scratch / "ledger"
    # Processes the tests start (gunicorn, task workers) sign checkpoints with the same key.
    os.environ["PORTAL_LEDGER_KEY_DIR"] = str(settings.PORTAL_LEDGER_KEY_DIR)
    os.environ["PORTAL_LEDGER_ORIGIN"] = settings.PORTAL_LEDGER_ORIGIN
    settings.MEDIA_ROOT = scratch / "media"
    settings.PORTAL_BASE_URL = "http://testserver"
    # The run's sealing CA as if made a year ago: a seal's certificate is validated when it
    # seals, so tests that move the clock back (days, months) still find it valid then.
    from acknowledgements.receipts import local_ca

    with time_machine.travel(timezone.now() - dt.timedelta(days=365), tick=False):
        local_ca.ensure_local_ca(
            settings.PORTAL_SEALING_DIR,
            keep_root_key_in=local_ca.root_key_dir(settings.PORTAL_SEALING_DIR),
        )
    # Tests serve static files from the source folders; production serves a collected,
    # hashed copy (collectstatic) that a test run has no reason to build.
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }
    settings.WHITENOISE_AUTOREFRESH = True
    settings.WHITENOISE_USE_FINDERS = True
    # Password hashing is slow by design; tests create hundreds of people.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A test runs in one process, where a memory cache is shared by all it does and costs no
    # query; the tests of several processes start servers with the real settings.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def _required(variable: str) -> bool:
    return os.environ.get(variable, "") not in ("", "0")


def skip_or_fail(reason: str, variable: str):
    if _required(variable):
        pytest.fail(f"{reason} ({variable}=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_postgres(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        skip_or_fail(
            "needs PostgreSQL: set DATABASE_URL to a PostgreSQL database", "REQUIRE_POSTGRES"
        )


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits live in the cache: each test starts with none used. The latest ledger check
    is remembered by the process: each test reads its own."""
    cache.clear()
    checks.forget_latest()


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request by someone who reads French
    activates it for the thread, as a server's next request would reset it."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


# --- Factories ---------------------------------------------------------------------------------


@pytest.fixture
def audiences(db) -> dict[str, Audience]:
    return {a.slug: a for a in Audience.objects.all()}


@pytest.fixture
def make_person(db, audiences):
    counter = iter(range(1, 10_000))

    def make(
        name: str = "Ada Lovelace",
        *,
        email: str | None = None,
        audience: str | None = "employees",
        role: str | None = None,
        joined: dt.datetime | None = None,
    ) -> User:
        user = User.objects.create_user(
            email=email or f"person{next(counter)}@example.com",
            password=PASSWORD,
            full_name=name,
            date_joined=joined or timezone.now() - dt.timedelta(days=365),
        )
        if audience:  # in the audience since they joined (their membership history says so)
            with time_machine.travel(user.date_joined, tick=False):
                user.audiences.add(audiences[audience])
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def signer(make_person) -> User:
    return make_person("Ada Lovelace", email="ada@example.com")


@pytest.fixture
def admin_user(make_person) -> User:
    return make_person("Grace Hopper", email="grace@example.com", role=POLICY_ADMINISTRATORS)


@pytest.fixture
def auditor(make_person) -> User:
    return make_person("Alan Turing", email="alan@example.com", audience=None, role=AUDITORS)


POLICY_BODY = "# Test Policy\n\n## 1. Purpose\n\nBe excellent.\n\n## 2. Scope\n\nEveryone.\n"


@pytest.fixture
def make_policy(db, audiences):
    def make(
        slug: str = "test-policy",
        *,
        name: str = "Test Policy",
        audience_slugs: tuple[str, ...] = ("employees",),
    ):
        return policy_actions.create_policy(
            actor=None,
            name=name,
            slug=slug,
            owner=None,
            audiences=[audiences[s] for s in audience_slugs],
        )

    return make


@pytest.fixture
def publish(db):
    """Publish a revision of a policy: `publish(policy, "1.0", effective_at=..., change=...)`."""

    def make(
        policy,
        version: str,
        *,
        body: str = POLICY_BODY,
        change: str = PolicyRevision.Change.MATERIAL,
        effective_at: dt.datetime | None = None,
        due_days: int = 14,
    ) -> PolicyRevision:
        draft = policy_actions.create_draft(
            actor=None,
            policy=policy,
            version=version,
            body=body + f"\nVersion {version}.\n",
            change=change,
            effective_at=effective_at or timezone.now() - dt.timedelta(seconds=1),
            due_days=due_days,
        )
        if effective_at is None or effective_at >= timezone.now():
            return policy_actions.publish_revision(actor=None, revision=draft)
        # A revision cannot take effect before it is published: publish it back then.
        with time_machine.travel(effective_at, tick=True):
            return policy_actions.publish_revision(actor=None, revision=draft)

    return make


@pytest.fixture
def policy(make_policy):
    return make_policy()


@pytest.fixture
def revision(policy, publish) -> PolicyRevision:
    return publish(policy, "1.0")


def client_evidence(**overrides) -> ClientEvidence:
    values = {
        "ip": "192.0.2.10",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0",
        "request_id": "test-request-0001",
        "session_key_sha256": "a" * 64,
        "auth_method": "password",
        "authenticated_at": timezone.now(),
        "mfa": False,
        "browser_time_zone": "Europe/Paris",
        "locale": "en",
    }
    return ClientEvidence(**(values | overrides))


def sign_through_service(person: User, revision: PolicyRevision, **overrides):
    """Sign a revision as the signing view does: the box ticked, the account's name typed and
    e-signing accepted, unless `overrides` says otherwise."""
    arguments = {
        "person": person,
        "policy_slug": revision.policy.slug,
        "version": revision.version,
        "typed_name": person.full_name,
        "checkbox_ticked": True,
        "consent_accepted": True,
        "client": client_evidence(),
    } | overrides
    return signing_actions.record_acknowledgement(**arguments)


@pytest.fixture
def sign(db):
    """`sign_through_service`, for tests that use the database."""
    return sign_through_service


@pytest.fixture
def built_export(client, django_capture_on_commit_callbacks):
    """Ask for a background export as its button does (a POST); the immediate task backend
    builds it when the request's transaction commits. Returns the job page's response."""

    def build(path: str, params: dict | None = None):
        url = f"{path}?{urlencode(params)}" if params else path
        with django_capture_on_commit_callbacks(execute=True):
            asked = client.post(url)
        assert asked.status_code == 302, asked
        assert asked["Location"].startswith("/reports/exports/")
        return client.get(asked["Location"])

    return build


def downloaded(client, job_page) -> bytes:
    """The file offered on a finished job's page, as the browser downloads it."""
    link = re.search(r'href="(/reports/exports/\d+/download/)"', job_page.content.decode())
    assert link, "the job's page offers no download"
    response = client.get(link.group(1))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


@pytest.fixture
def logged_in(client):
    """Sign a person in through the real sign-in form (so the session records how)."""

    def login(user: User):
        response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
        assert response.status_code == 302, "sign-in failed"
        return client

    return login


# --- Databases with the append-only triggers ------------------------------------------------------


def set_evidence_triggers(enabled: bool) -> None:
    """Switch the append-only triggers (PostgreSQL); only tests that tamper or flush need this."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # Deferred foreign-key checks count as pending trigger events, which block ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in APPEND_ONLY_TABLES:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                [table],
            )
            for (trigger,) in cursor.fetchall():
                switch = "ENABLE ALWAYS" if enabled else "DISABLE"
                cursor.execute(f"ALTER TABLE {table} {switch} TRIGGER {trigger}")


@pytest.fixture
def evidence_db(transactional_db):
    """A transactional database whose append-only tables can be emptied after the test.

    A transactional test starts from empty tables, so the rows that migrations create (roles,
    audiences) are created again first. Django empties the tables afterwards with TRUNCATE,
    which the triggers refuse: they are switched off at the end of the test (fixture order
    does not let them be switched on again right after the flush, so every test that relies
    on them asks for `enforced_triggers`).
    """
    set_evidence_triggers(True)
    install_roles_and_audiences(django_apps)
    yield
    set_evidence_triggers(False)


@pytest.fixture
def enforced_triggers(db):
    set_evidence_triggers(True)
