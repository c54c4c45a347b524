"""Single sign-on in a real browser, against a real OpenID Connect provider.

The provider is a small django-oauth-toolkit project (tests/oidc_provider/) started as its own
process, on another origin than the portal. Chromium follows the portal's redirects to the
provider's login and consent pages and back, enforcing the portal's Content-Security-Policy
as it does for people: any violation fails the test.
"""

import datetime as dt
import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.authentication import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement, User
from acknowledgements.receipts.authority import load_sealing_identity
from acknowledgements.receipts.seal import inspect_receipt
from acknowledgements.receipts.verification import trusted_roots

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_ID = "sso"
PROVIDER_NAME = "Company SSO"
# The person as the identity provider knows them; the portal has never heard of them.
PERSON = {
    "username": "ada",
    "password": "idp-correct-horse-battery",
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "groups": ["Employees", "Domain Users"],
}


@dataclass(frozen=True)
class IdentityProvider:
    origin: str
    issuer: str
    client_id: str
    client_secret: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the identity provider exited:\n{log.read_text()}")
        try:
            with opener.open(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"the identity provider did not answer at {url}:\n{log.read_text()}")


@pytest.fixture
def identity_provider(live_server, tmp_path):
    """The provider, on the other loopback name than the portal's, so the origins differ."""
    if find_spec("oauth2_provider") is None:
        pytest.fail("needs django-oauth-toolkit (pip install -e '.[dev]')")
    host = "127.0.0.1" if urlsplit(live_server.url).hostname == "localhost" else "localhost"
    port = free_port()
    origin = f"http://{host}:{port}"
    provider = IdentityProvider(
        origin=origin,
        issuer=f"{origin}/o",
        client_id="policy-portal",
        client_secret=secrets.token_urlsafe(24),
        log=tmp_path / "oidc-provider.log",
    )
    command = [
        sys.executable,
        "-m",
        "tests.oidc_provider",
        f"--database={tmp_path / 'oidc-provider.sqlite3'}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--issuer={provider.issuer}",
        f"--redirect-uri={live_server.url}/accounts/oidc/{PROVIDER_ID}/login/callback/",
        f"--client-id={provider.client_id}",
        f"--client-secret={provider.client_secret}",
        f"--username={PERSON['username']}",
        f"--password={PERSON['password']}",
        f"--email={PERSON['email']}",
        f"--name={PERSON['name']}",
        *[f"--group={group}" for group in PERSON["groups"]],
    ]
    with provider.log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_answering(
            f"{provider.issuer}/.well-known/openid-configuration", process, provider.log
        )
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def portal_sso(identity_provider, evidence_db, settings) -> SocialApp:
    """The portal's social application for the provider, as an administrator would add it."""
    settings.SOCIALACCOUNT_PROVIDERS = {}
    settings.PORTAL_OIDC_AUDIENCE_CLAIM = "groups"
    settings.PORTAL_OIDC_AUDIENCE_MAP = {}
    return SocialApp.objects.create(
        provider="openid_connect",
        provider_id=PROVIDER_ID,
        name=PROVIDER_NAME,
        client_id=identity_provider.client_id,
        secret=identity_provider.client_secret,
        settings={"server_url": identity_provider.issuer, "oauth_pkce_enabled": True},
    )


@pytest.fixture
def refusals(page, csp_violations) -> list[str]:
    """What the browser refused: CSP console messages and events, aborted page loads."""

    def report(violation: str) -> None:
        csp_violations.append(violation)

    page.expose_function("reportCspViolation", report)
    page.add_init_script(
        """document.addEventListener("securitypolicyviolation", (event) => {
            window.reportCspViolation(
                `${event.effectiveDirective} refused ${event.blockedURI} on ${event.documentURI}`
            );
        });"""
    )
    page.on(
        "requestfailed",
        lambda request: (
            csp_violations.append(f"{request.url}: {request.failure}")
            if request.resource_type == "document"
            else None
        ),
    )
    return csp_violations


def arrive(page, prefix: str, refusals: list[str], provider: IdentityProvider) -> None:
    """Wait until the browser is at a URL starting with `prefix`; say what stopped it if not."""
    try:
        page.wait_for_url(lambda url: url.startswith(prefix))
    except PlaywrightTimeoutError:
        pytest.fail(
            f"the browser stayed at {page.url} instead of reaching {prefix}\n"
            f"browser refusals: {refusals}\nidentity provider log:\n{provider.log.read_text()}"
        )


def log_in_at_provider(page, provider: IdentityProvider, refusals: list[str], shot) -> None:
    """At the provider's login page (where the portal's redirect must lead), log in."""
    arrive(page, f"{provider.origin}/login/", refusals, provider)
    expect(page.get_by_role("heading", name="Example identity provider")).to_be_visible()
    shot()
    page.get_by_label("Username").fill(PERSON["username"])
    page.get_by_label("Password").fill(PERSON["password"])
    page.get_by_role("button", name="Log in").click()


def age_sign_in(page, base_url: str, minutes: int) -> None:
    """Make the browser's sign-in `minutes` older, as if the person had been reading since."""
    [cookie] = [
        cookie
        for cookie in page.context.cookies(base_url)
        if cookie["name"] == settings.SESSION_COOKIE_NAME
    ]
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=cookie["value"])
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        record | {"at": record["at"] - minutes * 60}
        for record in session[AUTHENTICATION_METHODS_SESSION_KEY]
    ]
    session.save()


def test_a_new_person_signs_in_by_sso_then_confirms_it_is_them_to_sign(
    live_server,
    identity_provider,
    portal_sso,
    make_policy,
    publish,
    page,
    screenshot,
    refusals,
):
    policy = make_policy(audience_slugs=("employees",))
    publish(policy, "1.0")
    # What the portal's redirects asked the provider for.
    authorization_requests: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda request: (
            authorization_requests.append(parse_qs(urlsplit(request.url).query))
            if request.url.startswith(f"{identity_provider.issuer}/authorize/")
            and request.redirected_from is not None
            and request.redirected_from.url.startswith(live_server.url)
            else None
        ),
    )

    # First sign-in: the portal's button, the provider's login and consent, back signed in.
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("button", name=f"Sign in with {PROVIDER_NAME}").click()
    log_in_at_provider(page, identity_provider, refusals, lambda: screenshot("provider-login"))
    expect(page.get_by_role("heading", name="Authorize Policy portal?")).to_be_visible()
    screenshot("consent")
    page.get_by_role("button", name="Authorize", exact=True).click()
    arrive(page, f"{live_server.url}/", refusals, identity_provider)
    expect(page.get_by_role("link", name="Read and sign", exact=True)).to_be_visible()
    screenshot("signed-in")

    person = User.objects.get()
    assert (person.email, person.full_name) == (PERSON["email"], PERSON["name"])
    assert not person.has_usable_password()
    assert list(person.audiences.values_list("slug", flat=True)) == ["employees"]
    assert SocialAccount.objects.get(user=person).provider == PROVIDER_ID

    # Later: signing needs a fresh sign-in, so the provider is asked to log the person in again.
    age_sign_in(page, live_server.url, minutes=settings.PORTAL_SIGNING_REAUTH_MINUTES + 1)
    confirmed_after = timezone.now() - dt.timedelta(seconds=1)
    page.get_by_role("link", name="Read and sign", exact=True).click()
    expect(page.get_by_role("heading", name=f"Sign In Via {PROVIDER_NAME}")).to_be_visible()
    screenshot("confirm-at-provider")
    page.get_by_role("button", name="Continue").click()
    log_in_at_provider(page, identity_provider, refusals, lambda: screenshot("provider-again"))
    arrive(page, f"{live_server.url}/policies/{policy.slug}/", refusals, identity_provider)
    expect(page.get_by_role("heading", name="Sign version 1.0")).to_be_visible()
    first, again = authorization_requests  # the provider was asked to log the person in anew
    assert "prompt" not in first and again["prompt"] == ["login"]
    assert first["code_challenge_method"] == again["code_challenge_method"] == ["S256"]

    page.get_by_label("I have read and understood this policy").check()
    page.get_by_label("I agree to sign policy acknowledgements electronically").check()
    page.get_by_label("Full name", exact=True).fill(PERSON["name"])
    page.get_by_role("button", name="Sign", exact=True).click()
    expect(
        page.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()
    screenshot("signed")

    acknowledgement = Acknowledgement.objects.get(person=person)
    authentication = json.loads(bytes(acknowledgement.ledger_entry.payload))["authentication"]
    assert authentication["method"] == f"SSO via {PROVIDER_ID}"
    assert dt.datetime.fromisoformat(authentication["authenticated_at"]) >= confirmed_after

    # The download below is a navigation the browser reports as aborted: check before it.
    assert refusals == []

    # The receipt carries the same evidence, under the portal's seal.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download receipt (PDF)").click()
    receipt = download.value.path().read_bytes()
    # pyHanko runs an event loop of its own, which Playwright's thread cannot host.
    with ThreadPoolExecutor(max_workers=1) as worker:
        report = worker.submit(
            inspect_receipt, receipt, trust_roots_pem=trusted_roots(load_sealing_identity())
        ).result()
    assert report.ok, report.problem
    evidence = json.loads(report.evidence_json)
    assert evidence["receipt_number"] == acknowledgement.receipt_number
    assert evidence["authentication"]["method"] == f"SSO via {PROVIDER_ID}"
