"""Headers, re-authentication before signing, MFA for staff, and failures shown as pages."""

import datetime as dt

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from django.db import OperationalError, connection

from acknowledgements.models import Acknowledgement
from tests.conftest import PASSWORD


@pytest.mark.parametrize("path", ["/accounts/login/", "/verify/"])
def test_security_headers_on_public_pages(db, client, path):
    response = client.get(path)
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_signed_in_pages_carry_the_same_headers(signer, revision, logged_in):
    response = logged_in(signer).get("/")
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_pages_have_no_inline_script(signer, revision, logged_in, policy):
    client = logged_in(signer)
    for path in ["/", f"/policies/{policy.slug}/", "/acknowledgements/", "/verify/"]:
        page = client.get(path).content.decode()
        assert "<script>" not in page and "style=" not in page, path


def test_signing_asks_for_a_fresh_sign_in_after_the_configured_time(
    settings, signer, revision, logged_in, policy
):
    client = logged_in(signer)
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 1
    with time_machine.travel(dt.timedelta(minutes=2)):
        page = client.get(f"/policies/{policy.slug}/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/reauthenticate/?next=")


def test_a_stale_sign_in_cannot_sign(settings, signer, revision, logged_in, policy):
    client = logged_in(signer)
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 0
    response = client.post(
        f"/policies/{policy.slug}/v/{revision.version}/sign/",
        {"agree": "on", "typed_name": signer.full_name, "consent": "on"},
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    assert not Acknowledgement.objects.exists()


def test_reauthenticating_lets_the_person_sign(settings, signer, revision, logged_in, policy):
    client = logged_in(signer)
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 0
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 5
    response = client.post(
        f"/policies/{policy.slug}/v/{revision.version}/sign/",
        {"agree": "on", "typed_name": signer.full_name, "consent": "on"},
    )
    assert response.status_code == 302
    assert Acknowledgement.objects.filter(person=signer).exists()


def test_staff_without_mfa_are_sent_to_set_it_up(settings, auditor, admin_user, logged_in):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True
    for person in (auditor, admin_user):
        response = logged_in(person).get("/verify/")
        assert response.status_code == 302
        assert response["Location"] == "/accounts/2fa/"


def test_staff_with_mfa_and_signers_pass(settings, auditor, signer, revision, logged_in):
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = True
    Authenticator.objects.create(user=auditor, type=Authenticator.Type.TOTP, data={})
    assert logged_in(auditor).get("/verify/").status_code == 200
    assert logged_in(signer).get("/verify/").status_code == 200


def test_an_unreachable_database_is_a_friendly_503(signer, revision, logged_in):
    client = logged_in(signer)
    client.raise_request_exception = False

    def unreachable(execute, sql, params, many, context):
        raise OperationalError("could not connect to server: Connection refused")

    with connection.execute_wrapper(unreachable):
        response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "briefly unavailable" in response.content.decode()
    # And it recovers by itself once the database answers again.
    assert client.get("/").status_code == 200


def test_a_session_ends_after_the_configured_idle_time(settings, signer, revision, logged_in):
    client = logged_in(signer)
    idle = dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    with time_machine.travel(idle - dt.timedelta(minutes=1)):
        assert client.get("/").status_code == 200  # activity keeps the session alive
    with time_machine.travel(idle * 2 + dt.timedelta(minutes=1)):
        response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
