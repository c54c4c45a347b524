"""Rate limits (sign-in, receipt uploads at /verify/, declines) hold across processes and behind a
trusted proxy: several gunicorn workers share one cache (the database's here), and each client is
known by its own address, not the proxy's; declines are counted per person."""

import datetime as dt
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import requests
import time_machine
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from acknowledgements import ratelimits
from acknowledgements.models import User
from tests.pages import text_of
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


# --- Receipt uploads at /verify/ ---------------------------------------------------------------

VERIFY = "/verify/"
# Ten seconds into a minute: every upload of a test falls in the same window.
IN_A_WINDOW = dt.datetime(2026, 3, 2, 9, 15, 10, tzinfo=dt.UTC)


def upload(client, **request):
    """One upload of a file that is not a receipt: quick to check, and counted all the same."""
    receipt = SimpleUploadedFile("receipt.pdf", b"not a receipt", content_type="application/pdf")
    return client.post(VERIFY, {"receipt": receipt}, **request)


def test_the_eleventh_upload_in_a_minute_waits_for_the_next_one(db, client):
    with time_machine.travel(IN_A_WINDOW, tick=False):
        answers = [upload(client) for _ in range(11)]

        assert [a.status_code for a in answers[:10]] == [200] * 10
        refused = answers[10]
        assert refused.status_code == 429
        assert refused["Retry-After"] == "50"  # the next minute starts in fifty seconds
        text = text_of(refused)
        assert "You may check another receipt in 50 seconds." in text
        assert "at most 10 receipts a minute" in text and "was not checked" in text
        assert "Not a receipt" not in text  # the upload was not verified
        # The page stays open to read, and to come back to.
        assert client.get(VERIFY).status_code == 200


def test_another_client_is_not_held_back(db, client):
    with time_machine.travel(IN_A_WINDOW, tick=False):
        for _ in range(11):
            upload(client, REMOTE_ADDR="203.0.113.1")

        assert upload(client, REMOTE_ADDR="203.0.113.1").status_code == 429
        assert upload(client, REMOTE_ADDR="203.0.113.2").status_code == 200


def test_uploads_are_accepted_again_in_the_next_minute(db, client):
    with time_machine.travel(IN_A_WINDOW, tick=False) as traveller:
        for _ in range(10):
            assert upload(client).status_code == 200
        refused = upload(client)
        assert refused.status_code == 429

        traveller.shift(int(refused["Retry-After"]))

        assert upload(client).status_code == 200


@pytest.mark.parametrize("backend", ["db.DatabaseCache", "locmem.LocMemCache"])
def test_a_window_is_started_once_and_then_only_counted(db, settings, backend):
    settings.CACHES = {
        "default": {
            "BACKEND": f"django.core.cache.backends.{backend}",
            "LOCATION": settings.CACHE_TABLE,
        }
    }
    with (
        time_machine.travel(IN_A_WINDOW, tick=False),
        CaptureQueriesContext(connection) as captured,
    ):
        waits = [ratelimits.seconds_until_allowed("probe", limit=5) for _ in range(6)]

    assert waits == [None] * 5 + [50]
    if backend.startswith("db."):
        # The first request starts the count (one INSERT); the others only update it.
        writes = [q["sql"].split()[0] for q in captured.captured_queries]
        writes = [verb for verb in writes if verb in ("INSERT", "UPDATE", "DELETE")]
        assert writes == ["INSERT"] + ["UPDATE"] * 5


def test_behind_a_trusted_proxy_each_forwarded_client_counts_for_itself(db, client, settings):
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    with time_machine.travel(IN_A_WINDOW, tick=False):
        for _ in range(10):
            assert upload(client, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 200

        assert upload(client, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy).status_code == 429
        # Another person behind the same proxy, and one who claims an address the proxy did
        # not add (the proxy appends the real one), are counted on their own.
        assert upload(client, HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy).status_code == 200
        forged = "198.51.100.8, 198.51.100.7"
        assert upload(client, HTTP_X_FORWARDED_FOR=forged, **proxy).status_code == 429
        # An untrusted sender's X-Forwarded-For is ignored: it is counted by its own address.
        untrusted = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.9"}
        for _ in range(10):
            assert upload(client, **untrusted).status_code == 200
        assert upload(client, REMOTE_ADDR="203.0.113.9").status_code == 429


def test_an_ipv6_client_is_counted_by_its_network(db, client):
    with time_machine.travel(IN_A_WINDOW, tick=False):
        for host in range(10):
            assert upload(client, REMOTE_ADDR=f"2001:db8:1:2::{host + 1:x}").status_code == 200

        assert upload(client, REMOTE_ADDR="2001:db8:1:2:ffff::1").status_code == 429
        assert upload(client, REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_the_limit_is_a_setting(db, client, settings):
    settings.PORTAL_VERIFY_UPLOADS_PER_MINUTE = 2
    with time_machine.travel(IN_A_WINDOW, tick=False):
        assert [upload(client).status_code for _ in range(3)] == [200, 200, 429]
        assert "at most 2 receipts a minute" in text_of(upload(client))


def test_an_upload_larger_than_any_receipt_is_refused_unread(db, client, settings):
    settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES = 1000
    # A body larger than the largest receipt plus its envelope: refused on its declared size.
    receipt = SimpleUploadedFile("big.pdf", b"%PDF-1.7\n" + bytes(200_000))

    answer = client.post(VERIFY, {"receipt": receipt})

    assert answer.status_code == 400
    assert "This file is larger than any receipt (1000 bytes at most)." in text_of(answer)


@pytest.mark.postgres
def test_uploads_are_counted_together_by_every_worker(portal_behind_a_proxy):
    base = portal_behind_a_proxy
    # The window is a minute on the clock; the uploads below take a few seconds.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)

    def upload_from(address: str) -> int:
        browser = requests.Session()
        headers = {"X-Forwarded-For": address}
        page = browser.get(f"{base}{VERIFY}", headers=headers, timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = browser.post(
            f"{base}{VERIFY}",
            data={"csrfmiddlewaretoken": token},
            files={"receipt": ("receipt.pdf", b"not a receipt", "application/pdf")},
            headers={**headers, "Referer": f"{base}{VERIFY}"},
            timeout=60,
        )
        if answer.status_code == 429:
            assert 1 <= int(answer.headers["Retry-After"]) <= 60
        return answer.status_code

    # More uploads than workers: each worker sees a few, and all count in the shared cache.
    statuses = [upload_from("203.0.113.50") for _ in range(4 * WORKERS)]

    assert statuses[:10] == [200] * 10, statuses
    assert set(statuses[10:]) == {429}, statuses
    assert upload_from("203.0.113.51") == 200


# --- Declines: counted per person, in the same shared windows ---------------------------------

DECLINE = "/policies/test-policy/v/1.0/decline/"


def next_decline_window() -> dt.datetime:
    """Ten seconds into the next ten-minute window on the clock, ahead of the test's revision."""
    start = (int(time.time()) // 600 + 1) * 600
    return dt.datetime.fromtimestamp(start + 10, tz=dt.UTC)


def test_the_sixth_decline_in_a_window_waits_for_the_next_one(logged_in, signer, revision):
    with time_machine.travel(next_decline_window(), tick=False) as traveller:
        client = logged_in(signer)
        answers = [client.post(DECLINE, {"reason": "No."}) for _ in range(6)]

        assert [a.status_code for a in answers[:5]] == [302] * 5
        refused = answers[5]
        assert refused.status_code == 429
        assert refused["Retry-After"] == "590"  # the next ten minutes start in 590 seconds
        assert "Too many declines in a short time" in refused.content.decode()

        traveller.shift(590)

        assert client.post(DECLINE, {"reason": "No."}).status_code == 302


def test_one_persons_declines_do_not_hold_back_anothers(
    logged_in, signer, make_person, revision, client
):
    other = make_person("Katherine Johnson", email="katherine@example.com")
    with time_machine.travel(next_decline_window(), tick=False):
        for _ in range(6):
            logged_in(signer).post(DECLINE, {"reason": "No."})
        assert client.post(DECLINE, {"reason": "No."}).status_code == 429

        client.logout()

        assert logged_in(other).post(DECLINE, {"reason": "No."}).status_code == 302
