"""Signing and declining through the pages, and who may see which acknowledgement."""

import hashlib
import json

import pytest
from django.test import Client
from django.utils import timezone

from acknowledgements.evidence import client_evidence
from acknowledgements.models import Acknowledgement, LedgerEntry
from tests.conftest import PASSWORD
from tests.pages import html_of

SIGN_URL = "/policies/test-policy/v/1.0/sign/"
DECLINE_URL = "/policies/test-policy/v/1.0/decline/"
SIGNATURE = {
    "agree": "on",
    "typed_name": "Ada Lovelace",
    "consent": "on",
    "browser_time_zone": "Europe/Paris",
}


def evidence_rows() -> tuple[int, int]:
    return LedgerEntry.objects.count(), Acknowledgement.objects.count()


def signed_payload(person) -> dict:
    entry = LedgerEntry.objects.get(person=person, kind=LedgerEntry.Kind.SIGNED)
    return json.loads(bytes(entry.payload))


def recorded_client(person) -> dict:
    """The IP address and user agent kept for a signature, each opening its ledger commitment."""
    entry = LedgerEntry.objects.get(person=person, kind=LedgerEntry.Kind.SIGNED)
    facts = client_evidence.client_facts(json.loads(bytes(entry.payload)), entry.client_details)
    assert facts["ip"].state == "held", facts
    assert all(fact.matches for fact in facts.values() if fact.state == "held"), facts
    return {name: fact.value for name, fact in facts.items()}


# --- Signing ------------------------------------------------------------------------------------


def test_signing_leads_to_the_confirmation_page(
    logged_in, signer, revision, django_capture_on_commit_callbacks
):
    client = logged_in(signer)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(SIGN_URL, SIGNATURE)

    acknowledgement = Acknowledgement.objects.get(person=signer, revision=revision)
    assert response.status_code == 302
    assert response["Location"] == f"/acknowledgements/{acknowledgement.receipt_number}/"
    assert len(callbacks) == 1  # the receipt is issued once the signature is committed

    confirmation = client.get(response["Location"])
    html = html_of(confirmation)
    assert confirmation.status_code == 200
    assert "Thank you, your signature is recorded" in html
    assert acknowledgement.receipt_number in html
    assert revision.text_sha256 in html
    assert "Your receipt is being prepared." in html
    assert "Download receipt" not in html


def test_signed_evidence_describes_the_request(logged_in, signer, revision):
    client = logged_in(signer)

    client.post(SIGN_URL, SIGNATURE, HTTP_USER_AGENT="Mozilla/5.0 TestBrowser/2.0")

    payload = signed_payload(signer)
    assert payload["typed_name"] == "Ada Lovelace"
    assert payload["checkbox_ticked"] is True
    assert recorded_client(signer) == {
        "ip": "127.0.0.1",
        "user_agent": "Mozilla/5.0 TestBrowser/2.0",
    }
    assert payload["browser_time_zone"] == "Europe/Paris"
    session_key = client.session.session_key
    assert payload["session_key_sha256"] == hashlib.sha256(session_key.encode()).hexdigest()
    assert session_key not in json.dumps(payload)


def test_opening_the_policy_is_the_first_view_in_the_evidence(logged_in, signer, revision):
    client = logged_in(signer)

    client.get("/policies/test-policy/")
    client.get("/policies/test-policy/")
    client.post(SIGN_URL, SIGNATURE)

    views = LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.VIEWED)
    assert views.count() == 1
    viewed = json.loads(bytes(views.get().payload))
    assert signed_payload(signer)["first_viewed_at"] == viewed["recorded_at"]


def test_signature_after_a_password_sign_in_records_the_method(client, signer, revision):
    client.post("/accounts/login/", {"login": "ada@example.com", "password": PASSWORD})

    client.post(SIGN_URL, SIGNATURE)

    authentication = signed_payload(signer)["authentication"]
    assert authentication["method"] == "password"
    assert authentication["authenticated_at"] is not None


def test_the_request_id_in_the_evidence_is_the_one_returned(logged_in, signer, revision):
    response = logged_in(signer).post(SIGN_URL, SIGNATURE)

    assert response["X-Request-Id"]
    assert signed_payload(signer)["client"]["request_id"] == response["X-Request-Id"]


def test_forwarded_for_from_an_untrusted_address_is_ignored(logged_in, signer, revision, settings):
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]

    logged_in(signer).post(
        SIGN_URL, SIGNATURE, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )

    assert recorded_client(signer)["ip"] == "198.51.100.7"


def test_forwarded_for_from_a_trusted_proxy_is_believed(logged_in, signer, revision, settings):
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]

    logged_in(signer).post(
        SIGN_URL, SIGNATURE, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )

    assert recorded_client(signer)["ip"] == "203.0.113.9"


def test_a_forged_address_before_the_proxys_own_is_ignored(logged_in, signer, revision, settings):
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]

    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    logged_in(signer).post(
        SIGN_URL,
        SIGNATURE,
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9",
    )

    assert recorded_client(signer)["ip"] == "203.0.113.9"


def test_wrong_typed_name_is_shown_next_to_the_field(logged_in, signer, revision):
    rows = evidence_rows()

    response = logged_in(signer).post(SIGN_URL, SIGNATURE | {"typed_name": "Ada Lovelac"})

    html = html_of(response)
    assert response.status_code == 400
    assert "This does not match the name on your account (Ada Lovelace)." in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="id_typed_name_helptext id_typed_name_error"' in html
    assert '<div class="field__errors" id="id_typed_name_error" role="alert">' in html
    assert evidence_rows() == rows
    assert not LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.SIGNED).exists()
    assert not LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.CONSENTED).exists()


def test_unticked_box_is_refused(logged_in, signer, revision):
    signature = {key: value for key, value in SIGNATURE.items() if key != "agree"}

    response = logged_in(signer).post(SIGN_URL, signature)

    assert response.status_code == 400
    assert "Tick the box to confirm that you agree." in html_of(response)
    assert not Acknowledgement.objects.exists()


def test_consent_is_required_the_first_time(logged_in, signer, revision):
    signature = {key: value for key, value in SIGNATURE.items() if key != "consent"}
    rows = evidence_rows()

    response = logged_in(signer).post(SIGN_URL, signature)

    html = html_of(response)
    assert response.status_code == 400
    assert '<div class="field__errors" id="id_consent_error" role="alert">' in html
    assert "Accept electronic signing to sign." in html
    assert evidence_rows() == rows
    assert not Acknowledgement.objects.exists()


def test_a_missing_consent_is_shown_with_the_other_mistakes(logged_in, signer, revision):
    signature = {key: value for key, value in SIGNATURE.items() if key != "consent"}

    response = logged_in(signer).post(SIGN_URL, signature | {"typed_name": "Ada Lovelac"})

    html = html_of(response)
    assert response.status_code == 400
    assert 'id="id_typed_name_error"' in html
    assert 'id="id_consent_error"' in html
    assert not LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.CONSENTED).exists()


def test_someone_who_consented_before_signs_without_the_box(
    logged_in, signer, policy, revision, publish
):
    client = logged_in(signer)
    client.post(SIGN_URL, SIGNATURE)
    publish(policy, "2.0")
    next_version = "/policies/test-policy/v/2.0/sign/"
    signature = {key: value for key, value in SIGNATURE.items() if key != "consent"}

    mistaken = client.post(next_version, signature | {"typed_name": "Ada Lovelac"})
    signed = client.post(next_version, signature)

    assert mistaken.status_code == 400
    assert 'name="consent"' not in html_of(mistaken)
    assert signed.status_code == 302
    assert LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.CONSENTED).count() == 1
    assert Acknowledgement.objects.filter(person=signer, revision__version="2.0").exists()


def test_signing_a_version_that_does_not_exist_is_not_found(logged_in, signer, revision):
    rows = evidence_rows()

    response = logged_in(signer).post("/policies/test-policy/v/9.9/sign/", SIGNATURE)

    assert response.status_code == 404
    assert evidence_rows() == rows


def test_the_sign_address_takes_only_post(logged_in, signer, revision):
    response = logged_in(signer).get(SIGN_URL)

    assert response.status_code == 405
    assert not Acknowledgement.objects.exists()


def test_signing_requires_signing_in(client, signer, revision):
    response = client.post(SIGN_URL, SIGNATURE)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not Acknowledgement.objects.exists()


def test_signing_a_superseded_version_redirects_with_the_reason(logged_in, signer, policy, publish):
    publish(policy, "1.0", effective_at=timezone.now() - timezone.timedelta(days=30))
    publish(policy, "2.0")
    rows = evidence_rows()

    response = logged_in(signer).post(SIGN_URL, SIGNATURE, follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert "This version has been replaced; please read and sign the current version." in (
        html_of(response)
    )
    assert evidence_rows() == rows


def test_a_double_submit_leads_to_the_same_receipt(logged_in, signer, revision):
    client = logged_in(signer)

    first = client.post(SIGN_URL, SIGNATURE)
    rows = evidence_rows()
    second = client.post(SIGN_URL, SIGNATURE)

    assert second.status_code == 302
    assert second["Location"] == first["Location"]
    assert evidence_rows() == rows


def test_signing_without_the_csrf_token_is_forbidden(signer, revision):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(signer)

    response = browser.post(SIGN_URL, SIGNATURE)

    assert response.status_code == 403
    assert not Acknowledgement.objects.exists()


# --- Declining ----------------------------------------------------------------------------------


def test_declining_records_it_and_warns(logged_in, signer, revision):
    response = logged_in(signer).post(
        DECLINE_URL, {"reason": "Section 4 is too broad."}, follow=True
    )

    html = html_of(response)
    assert response.redirect_chain == [("/", 302)]
    assert '<p class="message message--warning">' in html
    assert "You declined Test Policy 1.0. It is still required" in html
    assert "Declined: still due" in html
    entry = LedgerEntry.objects.get(person=signer, kind=LedgerEntry.Kind.DECLINED)
    assert json.loads(bytes(entry.payload))["reason"] == "Section 4 is too broad."
    assert not Acknowledgement.objects.exists()


def test_declining_after_signing_is_refused_with_a_message(logged_in, signer, revision, sign):
    sign(signer, revision)

    response = logged_in(signer).post(DECLINE_URL, {"reason": ""}, follow=True)

    assert "You have already signed this version." in html_of(response)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DECLINED).exists()


def test_an_overlong_decline_reason_is_refused(logged_in, signer, revision):
    response = logged_in(signer).post(DECLINE_URL, {"reason": "x" * 2001}, follow=True)

    assert "The reason is too long (2,000 characters at most)." in html_of(response)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DECLINED).exists()


# --- Who sees which acknowledgement -------------------------------------------------------------


@pytest.fixture
def someone_elses(make_person, revision, sign) -> Acknowledgement:
    other = make_person("Katherine Johnson", email="katherine@example.com")
    return sign(other, revision)


def test_an_acknowledgement_needs_signing_in(client, someone_elses):
    response = client.get(f"/acknowledgements/{someone_elses.receipt_number}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_another_persons_acknowledgement_is_not_found_for_a_signer(
    logged_in, signer, someone_elses
):
    url = f"/acknowledgements/{someone_elses.receipt_number}/"

    assert logged_in(signer).get(url).status_code == 404


@pytest.mark.parametrize("viewer", ["auditor", "admin_user"])
def test_auditors_and_administrators_see_anyones_acknowledgement(
    request, logged_in, someone_elses, viewer
):
    response = logged_in(request.getfixturevalue(viewer)).get(
        f"/acknowledgements/{someone_elses.receipt_number}/"
    )

    html = html_of(response)
    assert response.status_code == 200
    assert "Acknowledgement by Katherine Johnson" in html
    assert someone_elses.receipt_number in html
    assert "katherine@example.com" in html


def test_my_acknowledgements_lists_only_my_signatures_and_declines(
    logged_in, signer, make_policy, publish, sign, someone_elses
):
    signed = someone_elses.revision
    mine = sign(signer, signed)
    other_policy = publish(make_policy("travel-policy", name="Travel Policy"), "3.1")
    logged_in(signer).post(
        "/policies/travel-policy/v/3.1/decline/", {"reason": "Not my department."}
    )

    response = logged_in(signer).get("/acknowledgements/")

    html = html_of(response)
    assert response.status_code == 200
    assert mine.receipt_number in html
    assert someone_elses.receipt_number not in html
    assert "Katherine" not in html
    assert html.count("<tr>") == 1 + 2  # the header row, one signature, one decline
    assert "✓ Signed" in html
    assert "✗ Declined" in html
    assert f'href="/policies/travel-policy/v/{other_policy.version}/"' in html
