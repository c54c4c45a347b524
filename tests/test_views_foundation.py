"""Signing in, the list of policies and the reading pages, as a person sees them."""

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.utils import timezone

from acknowledgements.policies import actions as policy_actions
from tests.conftest import PASSWORD
from tests.pages import html_of, text_of


def h1_count(response) -> int:
    return len(re.findall(r"<h1[\s>]", html_of(response)))


# --- Signing in ---------------------------------------------------------------------------------


def test_home_sends_anonymous_visitors_to_sign_in(client, db):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_sign_in_page_does_not_invite_sign_up_when_closed(client, db, settings):
    settings.PORTAL_OPEN_SIGNUP = False

    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = html_of(response)
    assert "Sign in to read and acknowledge Voipkonnec" in html
    assert "/accounts/signup/" not in html
    assert "Create one" not in html
    assert "sign up" not in html.lower()
    assert h1_count(response) == 1


def test_sign_in_page_invites_sign_up_when_open(client, db, settings):
    settings.PORTAL_OPEN_SIGNUP = True

    response = client.get("/accounts/login/")

    assert 'href="/accounts/signup/"' in html_of(response)


def test_sign_up_is_closed(client, db, settings):
    settings.PORTAL_OPEN_SIGNUP = False

    response = client.get("/accounts/signup/")

    assert response.status_code == 200
    html = html_of(response)
    assert "Sign Up Closed" in html
    assert "the sign up is currently closed" in html
    assert 'name="password1"' not in html


def test_closed_sign_up_creates_nobody(client, db, settings, django_user_model):
    settings.PORTAL_OPEN_SIGNUP = False

    client.post(
        "/accounts/signup/",
        {"email": "eve@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert not django_user_model.objects.filter(email="eve@example.com").exists()


def test_sign_in_with_email_and_password(client, signer):
    response = client.post("/accounts/login/", {"login": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session[SESSION_KEY] == str(signer.pk)
    home = client.get("/")
    assert home.status_code == 200
    assert "Hello Ada Lovelace" in html_of(home)


def test_wrong_password_shows_an_error_and_signs_nobody_in(client, signer):
    response = client.post(
        "/accounts/login/", {"login": "ada@example.com", "password": "not-the-password"}
    )

    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in html_of(response)
    assert SESSION_KEY not in client.session
    assert client.get("/").status_code == 302


# --- My policies --------------------------------------------------------------------------------


def test_home_lists_the_policy_to_sign(logged_in, signer, revision):
    response = logged_in(signer).get("/")

    html = html_of(response)
    assert response.status_code == 200
    assert 'href="/policies/test-policy/"' in html
    assert "Test Policy" in html
    assert "Version 1.0, in effect since" in html
    assert "Not signed yet" in html
    assert "Read and sign" in html
    assert h1_count(response) == 1


def test_home_shows_a_signed_policy_as_signed(logged_in, signer, revision, sign):
    sign(signer, revision)

    html = html_of(logged_in(signer).get("/"))

    assert "Signed version 1.0 on" in html
    assert "Not signed yet" not in html
    assert "Read and sign" not in html


def test_home_asks_someone_who_signed_before_a_material_change_to_sign_again(
    logged_in, signer, make_person, revision, sign, publish
):
    newcomer = Client()
    newcomer.force_login(make_person("New Comer"))
    assert "again" not in text_of(newcomer.get("/"))  # a first version
    sign(signer, revision)
    publish(revision.policy, "2.0")

    signed_before = text_of(logged_in(signer).get("/"))
    never_signed = text_of(newcomer.get("/"))

    assert "Updated — please sign again: due" in signed_before
    assert "Not signed yet" not in signed_before
    assert "Not signed yet: due" in never_signed
    assert "again" not in never_signed


def test_home_of_another_audience_does_not_list_the_policy(logged_in, make_person, revision):
    contractor = make_person("Charles Babbage", audience="contractors")

    html = html_of(logged_in(contractor).get("/"))

    assert "Test Policy" not in html
    assert "No policy applies to you at the moment." in html


def test_policy_page_of_another_audience_is_not_found(logged_in, make_person, revision):
    contractor = make_person("Charles Babbage", audience="contractors")

    assert logged_in(contractor).get("/policies/test-policy/").status_code == 404


@pytest.mark.parametrize("policies", [1, 5])
def test_home_runs_a_bounded_number_of_queries(
    logged_in, signer, make_policy, publish, sign, django_assert_max_num_queries, policies
):
    for n in range(policies):
        revision = publish(make_policy(f"policy-{n}", name=f"Policy {n}"), "1.0")
        if n % 2:
            sign(signer, revision)
    client = logged_in(signer)

    with django_assert_max_num_queries(12):
        response = client.get("/")

    assert html_of(response).count('class="policy-card ') == policies


# --- Reading a policy ---------------------------------------------------------------------------


def test_reading_page_shows_the_text_its_headings_and_its_hash(logged_in, signer, revision):
    response = logged_in(signer).get("/policies/test-policy/")

    html = html_of(response)
    assert response.status_code == 200
    assert "<h1>Test Policy</h1>" in html
    assert h1_count(response) == 1
    assert '<h3 id="1-purpose">1. Purpose</h3>' in html
    assert '<a href="#2-scope">2. Scope</a>' in html
    assert "Be excellent." in html
    assert revision.text_sha256 in html
    assert 'id="sign"' in html


def test_reading_page_of_a_signed_policy_has_no_signing_form(logged_in, signer, revision, sign):
    sign(signer, revision)

    response = logged_in(signer).get("/policies/test-policy/")

    html = html_of(response)
    assert response.status_code == 200
    assert "Signed version 1.0 on" in html
    assert 'id="sign"' not in html
    assert "Be excellent." in html


def test_a_script_in_the_policy_text_is_inert(logged_in, signer, policy, publish):
    publish(
        policy,
        "1.0",
        body=(
            "# Policy\n\n<script>alert('owned')</script>\n\n"
            '<img src=x onerror="alert(1)">\n\n[Click me](javascript:alert(2))\n'
        ),
    )

    html = html_of(logged_in(signer).get("/policies/test-policy/"))

    assert "<script>alert" not in html
    # Shown as text, never run: Markdown's raw HTML is off and the output is sanitised.
    assert "<p>&lt;script&gt;alert('owned')&lt;/script&gt;</p>" in html
    assert "<img" not in html
    assert 'href="javascript:' not in html


def test_an_older_published_version_can_be_read(logged_in, signer, policy, publish):
    old = publish(policy, "1.0", effective_at=timezone.now() - timezone.timedelta(days=30))
    publish(policy, "2.0")

    response = logged_in(signer).get("/policies/test-policy/v/1.0/")

    html = html_of(response)
    assert response.status_code == 200
    assert "Version 1.0." in html
    assert "Version 2.0." not in html
    assert old.text_sha256 in html
    assert 'id="sign"' not in html


def test_a_draft_version_is_not_found(logged_in, signer, policy, revision):
    policy_actions.create_draft(
        actor=None, policy=policy, version="2.0", body="# Draft\n", change="material"
    )

    assert logged_in(signer).get("/policies/test-policy/v/2.0/").status_code == 404
    assert logged_in(signer).get("/policies/test-policy/v/9.9/").status_code == 404
