"""Single sign-on through allauth's OpenID Connect provider, against a real (fake) IdP.

The identity provider (tests/fake_oidc.py) is served over HTTP on 127.0.0.1: the portal
fetches its discovery document, exchanges the code at its token endpoint and reads its
userinfo endpoint for real. The test plays the browser: it posts to the portal's SSO login
URL, opens the IdP's authorize URL with urllib and brings the callback back to the portal.
"""

import json
import runpy
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils.csp import build_policy

from acknowledgements.adapters import audiences_from_claims
from acknowledgements.models import Acknowledgement, LedgerEntry, User
from tests.conftest import PASSWORD
from tests.fake_oidc import FakeIdentityProvider
from tests.pages import html_of

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "aup_portal" / "settings.py"
OIDC_VARIABLES = [
    "PORTAL_OIDC_SERVER_URL",
    "PORTAL_OIDC_PROVIDER_ID",
    "PORTAL_OIDC_PROVIDER_NAME",
    "PORTAL_OIDC_CLIENT_ID",
    "PORTAL_OIDC_CLIENT_SECRET",
    "PORTAL_OIDC_AUDIENCE_CLAIM",
    "PORTAL_OIDC_AUDIENCE_MAP",
]
CLIENT_ID = "policy-portal"
CLIENT_SECRET = "fake-idp-client-secret"
CALLBACK = "http://testserver/accounts/oidc/{}/login/callback/"
ADA = {"sub": "idp-ada-0001", "email": "Ada@Example.com", "name": "Ada Lovelace"}
# The signing form; "language" is the language of the text read.
SIGNATURE = {"agree": "on", "typed_name": "Ada Lovelace", "consent": "on", "language": "en"}


def settings_from_environment(monkeypatch, **variables) -> dict:
    """Run aup_portal/settings.py with these environment variables; return its names."""
    for name in OIDC_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


@pytest.fixture
def idp():
    provider = FakeIdentityProvider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=(CALLBACK.format("sso"), CALLBACK.format("corp")),
    )
    with provider:
        yield provider


@pytest.fixture
def sso(db, settings, monkeypatch, idp):
    """The portal configured for the fake IdP from environment variables, as in production."""
    configured = settings_from_environment(
        monkeypatch,
        PORTAL_OIDC_SERVER_URL=idp.issuer + "/",
        PORTAL_OIDC_CLIENT_ID=CLIENT_ID,
        PORTAL_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        PORTAL_OIDC_AUDIENCE_MAP="ext-vendors=third-parties;CN=Staff,OU=Groups=employees",
    )
    for name in [
        "SOCIALACCOUNT_PROVIDERS",
        "PORTAL_OIDC_AUDIENCE_CLAIM",
        "PORTAL_OIDC_AUDIENCE_MAP",
    ]:
        setattr(settings, name, configured[name])
    settings.PORTAL_OPEN_SIGNUP = False
    return idp


def start_sign_in(client, provider_id: str = "sso") -> str:
    """Press the SSO button: the portal redirects the browser to the IdP's authorize URL."""
    response = client.post(f"/accounts/oidc/{provider_id}/login/")
    assert response.status_code == 302, response.content.decode()[:500]
    return response["Location"]


def sso_sign_in(client, idp, provider_id: str = "sso", **identity):
    """The whole round trip; returns the portal's answer to the callback."""
    idp.sign_in_as(**(ADA | identity))
    callback = urlsplit(idp.authorize(start_sign_in(client, provider_id)))
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == CALLBACK.format(provider_id)
    return client.get(f"{callback.path}?{callback.query}")


def signed_in_as(client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def audience_changes() -> list[dict]:
    payloads = [
        json.loads(bytes(entry.payload))
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    ]
    return [p for p in payloads if p["action"] == "person_audiences_changed"]


def slugs(person: User) -> list[str]:
    return sorted(person.audiences.values_list("slug", flat=True))


# --- Configuration ---------------------------------------------------------------------------


def test_environment_configures_one_openid_connect_app(monkeypatch):
    configured = settings_from_environment(
        monkeypatch,
        PORTAL_OIDC_SERVER_URL="https://login.example.com/realms/staff/",
        PORTAL_OIDC_PROVIDER_ID="keycloak",
        PORTAL_OIDC_PROVIDER_NAME="Staff login",
        PORTAL_OIDC_CLIENT_ID="portal",
        PORTAL_OIDC_CLIENT_SECRET="s3cret",
        PORTAL_OIDC_AUDIENCE_CLAIM="realm_access.roles",
        PORTAL_OIDC_AUDIENCE_MAP="Staff=employees, Vendors = third-parties",
    )

    assert configured["SOCIALACCOUNT_PROVIDERS"] == {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "keycloak",
                    "name": "Staff login",
                    "client_id": "portal",
                    "secret": "s3cret",
                    "settings": {
                        "server_url": "https://login.example.com/realms/staff",
                        "oauth_pkce_enabled": True,
                    },
                }
            ]
        }
    }
    assert configured["PORTAL_OIDC_AUDIENCE_CLAIM"] == "realm_access.roles"
    assert configured["PORTAL_OIDC_AUDIENCE_MAP"] == {
        "staff": "employees",
        "vendors": "third-parties",
    }
    assert "allauth.socialaccount.providers.openid_connect" in configured["INSTALLED_APPS"]
    assert configured["SOCIALACCOUNT_EMAIL_AUTHENTICATION"] is True
    assert configured["SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT"] is True


def test_without_a_server_url_nothing_is_configured(monkeypatch):
    configured = settings_from_environment(monkeypatch, PORTAL_OIDC_CLIENT_ID="portal")

    assert configured["SOCIALACCOUNT_PROVIDERS"] == {}
    assert configured["PORTAL_OIDC_AUDIENCE_CLAIM"] == "groups"
    assert configured["PORTAL_OIDC_AUDIENCE_MAP"] == {}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "PORTAL_OIDC_CLIENT_ID"),
        ({"PORTAL_OIDC_CLIENT_ID": "portal", "PORTAL_OIDC_PROVIDER_ID": "Our SSO"}, "lower-case"),
        ({"PORTAL_OIDC_CLIENT_ID": "portal", "PORTAL_OIDC_AUDIENCE_MAP": "staff"}, "pairs"),
    ],
)
def test_incomplete_configuration_is_refused_at_start(monkeypatch, variables, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        settings_from_environment(
            monkeypatch, PORTAL_OIDC_SERVER_URL="https://login.example.com", **variables
        )


def test_group_names_with_commas_are_mapped_with_semicolons(monkeypatch):
    configured = settings_from_environment(
        monkeypatch,
        PORTAL_OIDC_AUDIENCE_MAP="CN=Staff,OU=Groups,DC=example=employees; CN=Ext,DC=example=partners",
    )

    assert configured["PORTAL_OIDC_AUDIENCE_MAP"] == {
        "cn=staff,ou=groups,dc=example": "employees",
        "cn=ext,dc=example": "partners",
    }


def test_audiences_match_slugs_and_names_case_insensitively(db, settings):
    settings.PORTAL_OIDC_AUDIENCE_CLAIM = "groups"
    settings.PORTAL_OIDC_AUDIENCE_MAP = {"vendors": "third-parties"}
    claims = {"groups": ["Employees", "PARTNERS", "contractors", "Vendors", "Domain Users", 7]}

    found = audiences_from_claims(claims)

    assert [a.slug for a in found] == ["contractors", "employees", "partners", "third-parties"]
    assert audiences_from_claims({"groups": "Clients"})[0].slug == "clients"
    assert audiences_from_claims({"groups": []}) == []
    assert audiences_from_claims({}) is None


def test_a_nested_claim_can_be_named_with_a_dotted_path(db, settings):
    settings.PORTAL_OIDC_AUDIENCE_CLAIM = "realm_access.roles"
    settings.PORTAL_OIDC_AUDIENCE_MAP = {}

    found = audiences_from_claims({"realm_access": {"roles": ["employees", "offline_access"]}})

    assert [a.slug for a in found] == ["employees"]


# --- Sign-in creates the person ----------------------------------------------------------------


def test_first_sso_sign_in_creates_the_person_with_mapped_audiences(sso, client):
    authorize = urlsplit(start_sign_in(client))
    query = parse_qs(authorize.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [CALLBACK.format("sso")]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email"}
    assert query["state"] and query["code_challenge_method"] == ["S256"]  # PKCE

    response = sso_sign_in(client, sso, groups=["Employees", "Partners", "Domain Users"])

    assert response.status_code == 302 and response["Location"] == "/"
    person = User.objects.get()
    assert signed_in_as(client) == person
    assert person.email == "ada@example.com"
    assert person.full_name == "Ada Lovelace"
    assert not person.has_usable_password()
    assert slugs(person) == ["employees", "partners"]  # "Domain Users" ignored
    account = SocialAccount.objects.get(user=person)
    assert (account.provider, account.uid) == ("sso", "idp-ada-0001")
    assert EmailAddress.objects.get(user=person).verified
    [change] = audience_changes()
    assert change["actor"] is None
    assert change["details"]["person"]["email"] == "ada@example.com"
    assert (change["details"]["before"], change["details"]["after"]) == (
        [],
        ["employees", "partners"],
    )
    # The IdP was really used: discovery, code exchange and userinfo over HTTP.
    paths = [path for _, path in sso.requests]
    assert "/.well-known/openid-configuration" in paths
    assert "/token" in paths and "/userinfo" in paths


def test_audience_map_translates_the_idps_group_names(sso, client):
    sso_sign_in(client, sso, groups=["EXT-VENDORS", "cn=staff,ou=groups"])

    assert slugs(User.objects.get()) == ["employees", "third-parties"]


def test_full_name_falls_back_to_given_and_family_names(sso, client):
    sso_sign_in(client, sso, name=None, given_name="Ada", family_name="Lovelace", groups=[])

    person = User.objects.get()
    assert person.full_name == "Ada Lovelace"
    assert slugs(person) == []


def test_without_the_claim_a_new_person_has_no_audience(sso, client):
    sso_sign_in(client, sso)

    assert slugs(User.objects.get()) == []
    assert audience_changes() == []


def test_signature_after_sso_records_the_method_in_the_evidence(sso, client, make_policy, publish):
    policy = make_policy(audience_slugs=("employees",))
    revision = publish(policy, "1.0")
    sso_sign_in(client, sso, groups=["Employees"])

    assert client.get(f"/policies/{policy.slug}/").status_code == 200
    response = client.post(f"/policies/{policy.slug}/v/{revision.version}/sign/", SIGNATURE)

    assert response.status_code == 302
    acknowledgement = Acknowledgement.objects.get(revision=revision)
    assert acknowledgement.person.email == "ada@example.com"
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.SIGNED)
    authentication = json.loads(bytes(entry.payload))["authentication"]
    assert authentication["method"] == "SSO via sso"
    assert authentication["authenticated_at"] is not None
    assert authentication["mfa"] is False


# --- Later sign-ins ----------------------------------------------------------------------------


def test_each_sso_sign_in_replaces_audiences_with_the_claims_and_audits_it(sso, client):
    sso_sign_in(client, sso, groups=["Employees"])
    client.post("/accounts/logout/")
    assert signed_in_as(client) is None

    response = sso_sign_in(client, sso, groups=["Contractors", "partners"])

    assert response.status_code == 302
    person = User.objects.get()
    assert signed_in_as(client) == person
    assert slugs(person) == ["contractors", "partners"]
    assert [(c["details"]["before"], c["details"]["after"]) for c in audience_changes()] == [
        ([], ["employees"]),
        (["employees"], ["contractors", "partners"]),
    ]

    client.post("/accounts/logout/")
    sso_sign_in(client, sso, groups=["Partners", "Contractors"])  # same audiences
    assert len(audience_changes()) == 2


def test_sso_sign_in_without_the_claim_leaves_audiences_alone(sso, client):
    sso_sign_in(client, sso, groups=["Employees"])
    client.post("/accounts/logout/")

    sso_sign_in(client, sso)

    assert slugs(User.objects.get()) == ["employees"]
    assert len(audience_changes()) == 1


def test_verified_email_of_an_existing_person_connects_to_them(sso, client, make_person):
    person = make_person("Ada Lovelace", email="ada@example.com", audience="clients")

    response = sso_sign_in(client, sso, groups=["Employees"])

    assert response.status_code == 302
    assert User.objects.count() == 1
    assert signed_in_as(client) == person
    assert SocialAccount.objects.get(provider="sso").user == person
    assert slugs(person) == ["employees"]
    # allauth's protection against an account registered in advance with someone else's
    # address: the password of an account whose address was never verified is wiped.
    person.refresh_from_db()
    assert not person.has_usable_password()


def test_the_connected_identity_signs_in_again_by_its_subject(sso, client, make_person):
    person = make_person(email="ada@example.com")
    sso_sign_in(client, sso)
    client.post("/accounts/logout/")

    sso_sign_in(client, sso, email="ada.lovelace@example.com")  # address changed at the IdP

    assert signed_in_as(client) == person
    assert User.objects.count() == 1


def test_sso_does_not_skip_a_second_factor(sso, client, make_person, make_policy, publish):
    person = make_person("Ada Lovelace", email="ada@example.com")
    secret = generate_totp_secret()
    TOTP.activate(person, secret)
    policy = make_policy(audience_slugs=("employees",))
    revision = publish(policy, "1.0")

    response = sso_sign_in(client, sso, groups=["Employees"])

    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert signed_in_as(client) is None
    code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    assert signed_in_as(client) == person
    client.post(f"/policies/{policy.slug}/v/{revision.version}/sign/", SIGNATURE)
    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.SIGNED)
    authentication = json.loads(bytes(entry.payload))["authentication"]
    assert (authentication["method"], authentication["mfa"]) == ("SSO via sso + TOTP", True)


# --- Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("email_verified", [False, "false", None])
def test_unverified_email_is_refused_and_creates_nobody(sso, client, email_verified):
    response = sso_sign_in(client, sso, email_verified=email_verified, groups=["Employees"])

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert signed_in_as(client) is None
    assert not User.objects.exists()
    assert not SocialAccount.objects.exists()
    assert audience_changes() == []
    page = html_of(client.get("/accounts/login/"))
    assert "Company SSO did not confirm your email address" in page


def test_unverified_email_does_not_take_over_an_existing_account(sso, client, make_person):
    person = make_person(email="ada@example.com", audience="clients")

    sso_sign_in(client, sso, email_verified=False, groups=["Employees"])

    assert signed_in_as(client) is None
    assert not SocialAccount.objects.exists()
    person.refresh_from_db()
    assert person.has_usable_password() and person.check_password(PASSWORD)
    assert slugs(person) == ["clients"]


def test_a_deactivated_person_cannot_sign_in_by_sso(sso, client, make_person):
    person = make_person(email="ada@example.com", audience="clients")
    person.is_active = False
    person.save()

    response = sso_sign_in(client, sso, groups=["Employees"])

    assert response.status_code == 302 and response["Location"] == "/accounts/inactive/"
    assert signed_in_as(client) is None
    assert slugs(person) == ["clients"]
    assert User.objects.count() == 1


def test_an_address_stored_with_other_capitals_is_not_duplicated(sso, client, make_person):
    make_person(email="placeholder@example.com")
    User.objects.filter(email="placeholder@example.com").update(email="ADA@example.com")

    sso_sign_in(client, sso, groups=["Employees"])

    assert signed_in_as(client) is None
    assert User.objects.count() == 1
    assert "exists but could not be signed in" in html_of(client.get("/accounts/login/"))


def test_sign_in_without_an_email_is_refused(sso, client):
    sso_sign_in(client, sso, email=None)

    assert signed_in_as(client) is None
    assert not User.objects.exists()


def test_an_id_token_for_another_client_is_refused(sso, client):
    sso.id_token_overrides = {"aud": "someone-else"}

    response = sso_sign_in(client, sso, groups=["Employees"])

    assert signed_in_as(client) is None
    assert not User.objects.exists()
    assert "Third-Party Login Failure" in html_of(response)


def test_a_callback_with_a_forged_state_is_refused(sso, client):
    sso.sign_in_as(**ADA)
    callback = urlsplit(sso.authorize(start_sign_in(client)))
    code = parse_qs(callback.query)["code"][0]

    response = client.get(callback.path, {"code": code, "state": "forged-state"})

    assert signed_in_as(client) is None
    assert not User.objects.exists()
    assert "Third-Party Login Failure" in html_of(response)


def test_starting_sso_needs_a_post(sso, client):
    response = client.get("/accounts/oidc/sso/login/")

    assert response.status_code == 200  # a confirmation page, not a redirect to the IdP
    assert "Company SSO" in html_of(response)
    assert 'method="post"' in html_of(response)
    # Only the discovery document was read (for the page's Content-Security-Policy).
    assert [path for _, path in sso.requests] == ["/.well-known/openid-configuration"]


def test_password_sign_up_stays_closed_while_sso_creates_accounts(sso, client):
    closed = client.get("/accounts/signup/")
    assert "Sign Up Closed" in html_of(closed)
    client.post(
        "/accounts/signup/",
        {"email": "eve@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert not User.objects.exists()

    sso_sign_in(client, sso, groups=["Employees"])

    assert User.objects.get().email == "ada@example.com"


# --- Configured in the admin instead -----------------------------------------------------------


def test_an_app_configured_in_the_admin_works_the_same(db, settings, idp, client):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    settings.PORTAL_OIDC_AUDIENCE_CLAIM = "groups"
    settings.PORTAL_OIDC_AUDIENCE_MAP = {}
    SocialApp.objects.create(
        provider="openid_connect",
        provider_id="corp",
        name="Corp IdP",
        client_id=CLIENT_ID,
        secret=CLIENT_SECRET,
        settings={"server_url": idp.issuer},
    )

    sso_sign_in(client, idp, provider_id="corp", groups=["Clients"])

    person = signed_in_as(client)
    assert person is not None and slugs(person) == ["clients"]
    assert SocialAccount.objects.get(user=person).provider == "corp"


def test_without_any_app_the_sso_urls_are_not_found(db, settings, client):
    settings.SOCIALACCOUNT_PROVIDERS = {}

    assert client.post("/accounts/oidc/sso/login/").status_code == 404


# --- Pages -------------------------------------------------------------------------------------


def test_sign_in_page_renders_with_sso_configured(sso, client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert "sign up" not in html_of(response).lower()


def test_the_provider_button_snippet_links_to_the_sso_login(sso, client):
    request = RequestFactory().get("/accounts/login/")
    request.user = AnonymousUser()

    html = render_to_string("socialaccount/snippets/login.html", request=request)

    assert "Company SSO" in html
    assert 'href="/accounts/oidc/sso/login/?process=login"' in html


def test_the_sign_in_page_offers_a_one_click_sso_button(sso, client):
    page = html_of(client.get("/accounts/login/"))
    assert 'action="/accounts/oidc/sso/login/?process=login"' in page
    assert "Sign in with Company SSO" in page


def test_an_sso_only_person_confirms_it_is_them_at_the_identity_provider(
    sso, client, settings, make_policy, publish
):
    policy = make_policy(audience_slugs=("employees",))
    publish(policy, "1.0")
    sso_sign_in(client, sso, groups=["Employees"])
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 0

    response = client.get(f"/policies/{policy.slug}/")

    assert response.status_code == 302
    assert response["Location"] == (
        "/accounts/oidc/sso/login/?process=login&next=%2Fpolicies%2Ftest-policy%2F"
        "&auth_params=prompt%3Dlogin"
    )


# --- Content-Security-Policy of the pages with SSO forms --------------------------------------
#
# form-action also governs where the browser may be redirected after a form's POST, so the
# pages whose forms start a sign-in must name the identity provider's origin, or a real browser
# stops at the portal's redirect (the test client ignores the header; the browser test does not).


class SplitIdentityProvider(FakeIdentityProvider):
    """An identity provider whose sign-in page is served from another origin."""

    authorization_endpoint = "https://login.example.net/authorize"

    def discovery(self) -> dict:
        return super().discovery() | {"authorization_endpoint": self.authorization_endpoint}


def form_action(response) -> list[str]:
    """The sources the response's Content-Security-Policy allows forms to be sent to."""
    for directive in response["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        if name == "form-action":
            return sources
    raise AssertionError("the policy has no form-action")


def site_policy_with_form_action(*sources: str) -> str:
    """The site's policy, every directive as configured, with these form-action sources."""
    return build_policy(settings.SECURE_CSP | {"form-action": list(sources)})


def discovery_reads(idp) -> int:
    return [path for _, path in idp.requests].count("/.well-known/openid-configuration")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def admin_configured_app(db, settings):
    """A social application configured in the admin: `admin_configured_app(server_url, ...)`."""
    settings.SOCIALACCOUNT_PROVIDERS = {}

    def create(server_url: str, **extra_settings) -> SocialApp:
        return SocialApp.objects.create(
            provider="openid_connect",
            provider_id="corp",
            name="Corp IdP",
            client_id=CLIENT_ID,
            secret=CLIENT_SECRET,
            settings={"server_url": server_url, **extra_settings},
        )

    return create


def test_sign_in_page_lets_forms_go_to_a_provider_configured_by_environment(sso, client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert form_action(response) == ["'self'", sso.issuer]
    assert response["Content-Security-Policy"] == site_policy_with_form_action("'self'", sso.issuer)


def test_sign_in_page_lets_forms_go_to_a_provider_configured_in_the_admin(
    admin_configured_app, idp, client
):
    admin_configured_app(idp.issuer)

    response = client.get("/accounts/login/")

    assert "Sign in with Corp IdP" in html_of(response)
    assert response["Content-Security-Policy"] == site_policy_with_form_action("'self'", idp.issuer)


def test_the_other_account_pages_with_sso_forms_allow_the_provider(
    sso, client, make_person, logged_in
):
    confirmation = client.get("/accounts/oidc/sso/login/?process=login")
    assert 'method="post"' in html_of(confirmation)
    assert form_action(confirmation) == ["'self'", sso.issuer]

    logged_in(make_person(email="grace@example.com"))
    reauthentication = client.get("/accounts/reauthenticate/")
    assert reauthentication.status_code == 200
    assert form_action(reauthentication) == ["'self'", sso.issuer]


def test_a_sign_in_page_on_another_origin_is_read_from_discovery_and_cached(db, settings, client):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    with SplitIdentityProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as idp:
        SocialApp.objects.create(
            provider="openid_connect",
            provider_id="corp",
            name="Corp IdP",
            client_id=CLIENT_ID,
            secret=CLIENT_SECRET,
            settings={"server_url": idp.issuer + "/"},
        )

        first = client.get("/accounts/login/")
        again = client.get("/accounts/login/")

        assert form_action(first) == ["'self'", idp.issuer, "https://login.example.net"]
        assert form_action(again) == form_action(first)
        assert discovery_reads(idp) == 1
        # The portal really sends the browser there.
        authorize = client.post("/accounts/oidc/corp/login/")["Location"]
        assert authorize.startswith("https://login.example.net/authorize?")


def test_an_authorization_endpoint_set_in_the_overrides_is_allowed(admin_configured_app, client):
    admin_configured_app(
        "https://idp.example.com/realms/staff",
        openid_configuration_overrides={"authorization_endpoint": "https://sso.example.org/auth"},
    )

    response = client.get("/accounts/login/")

    assert form_action(response) == ["'self'", "https://idp.example.com", "https://sso.example.org"]


def test_a_provider_whose_discovery_fails_still_gets_a_working_sign_in_page(
    admin_configured_app, client, caplog
):
    server_url = f"http://127.0.0.1:{closed_port()}/realms/staff"
    admin_configured_app(server_url)

    response = client.get("/accounts/login/")

    assert response.status_code == 200
    assert "Sign in with Corp IdP" in html_of(response)
    assert 'name="password"' in html_of(response)
    assert form_action(response) == ["'self'", server_url.removesuffix("/realms/staff")]
    assert "SSO discovery document unavailable" in caplog.text


def test_a_discovered_endpoint_is_never_copied_into_the_policy_as_is(db, settings, client):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    hostile = SplitIdentityProvider(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    hostile.authorization_endpoint = "https://login.example.net; script-src *"
    with hostile as idp:
        SocialApp.objects.create(
            provider="openid_connect",
            provider_id="corp",
            name="Corp IdP",
            client_id=CLIENT_ID,
            secret=CLIENT_SECRET,
            settings={"server_url": idp.issuer},
        )

        response = client.get("/accounts/login/")
        issuer = idp.issuer

    assert response.status_code == 200
    assert form_action(response) == ["'self'", issuer]
    assert "script-src 'self';" in response["Content-Security-Policy"]


def test_other_pages_keep_the_site_policy_and_contact_no_provider(
    sso, client, make_person, logged_in, make_policy, publish
):
    policy = make_policy()
    publish(policy, "1.0")
    site_policy = build_policy(settings.SECURE_CSP)
    assert form_action(client.get("/accounts/login/")) == ["'self'", sso.issuer]
    sso.requests.clear()
    cache.clear()

    pages = [client.get("/verify/")]
    logged_in(make_person(email="grace@example.com"))
    pages += [client.get("/"), client.get(f"/policies/{policy.slug}/")]

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert all(page["Content-Security-Policy"] == site_policy for page in pages)
    assert "form-action 'self';" in site_policy
    assert sso.requests == []
