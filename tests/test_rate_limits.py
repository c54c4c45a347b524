"""Sign-in rate limits hold across processes and behind a trusted proxy: several gunicorn
workers share one cache (the database's here), and each client is known by its own address,
not the proxy's."""

import re
import subprocess
import sys
import time
import urllib.request

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from acknowledgements.models import User
from tests.test_deployment import ROOT, _environment, _free_port

PASSWORD = "correct-horse-battery-staple"
WORKERS = 3


@pytest.fixture
def portal_behind_a_proxy(evidence_db):
    """gunicorn with several workers and the production settings; 127.0.0.1 is the proxy."""
    environment = _environment(DJANGO_ALLOWED_HOSTS="127.0.0.1", PORTAL_TRUSTED_PROXIES="127.0.0.1")
    # Production pages name their static files through the collected manifest.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=environment,
        check=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "aup_portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(WORKERS)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz").close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


SIGNED_IN, WRONG, THROTTLED = "signed in", "wrong password", "throttled"


def sign_in(base: str, email: str, password: str, client_address: str) -> str:
    """One sign-in as a browser behind the proxy sends it, and what came of it."""
    browser = requests.Session()
    headers = {"X-Forwarded-For": client_address}
    form = browser.get(f"{base}/accounts/login/", headers=headers, timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert found, (form.status_code, form.text[:3000])
    token = found.group(1)
    answer = browser.post(
        f"{base}/accounts/login/",
        data={"login": email, "password": password, "csrfmiddlewaretoken": token},
        headers={**headers, "Referer": f"{base}/accounts/login/"},
        allow_redirects=False,
        timeout=60,
    )
    if answer.status_code == 302:
        return SIGNED_IN
    if answer.status_code == 429 or "Too many failed login attempts" in answer.text:
        return THROTTLED
    assert answer.status_code == 200, answer.status_code
    return WRONG


def person(email: str) -> User:
    # Hashed as the server's settings check it (the tests' own hasher is a fast one).
    hasher = PBKDF2PasswordHasher()
    return User.objects.create(
        email=email, full_name="Rate Limited", password=hasher.encode(PASSWORD, hasher.salt())
    )


@pytest.mark.postgres
def test_an_attack_from_many_addresses_does_not_lock_everyone_out(portal_behind_a_proxy):
    base = portal_behind_a_proxy
    people = [person(f"person{n}@example.com") for n in range(3)]
    # More wrong passwords than one address may send in a minute, each from its own address.
    for n in range(12):
        assert sign_in(base, f"nobody{n}@example.com", "wrong", f"203.0.113.{n + 1}") == WRONG
    for n, somebody in enumerate(people):
        assert sign_in(base, somebody.email, PASSWORD, f"198.51.100.{n + 1}") == SIGNED_IN


@pytest.mark.postgres
def test_one_account_gets_five_real_checks_whatever_the_worker(portal_behind_a_proxy):
    base = portal_behind_a_proxy
    target = person("target@example.com")
    outcomes = [
        sign_in(base, target.email, "wrong", f"192.0.2.{n + 1}") for n in range(3 * WORKERS)
    ]
    # login_failed allows 5 per account in 5 minutes (settings.ACCOUNT_RATE_LIMITS), counted in
    # the cache every worker shares: the rest are refused without a password check.
    assert outcomes[:5] == [WRONG] * 5, outcomes
    assert set(outcomes[5:]) == {THROTTLED}, outcomes
    # The right password is refused too while the account is limited.
    assert sign_in(base, target.email, PASSWORD, "192.0.2.200") == THROTTLED
