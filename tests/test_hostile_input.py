"""Hostile input gets a clear answer and changes nothing."""

from hypothesis import given
from hypothesis import strategies as st

from acknowledgements.models import Acknowledgement, LedgerEntry, User
from acknowledgements.signing.names import comparable_name, typed_name_matches


@given(st.text(max_size=300), st.text(max_size=300))
def test_typed_name_check_accepts_any_text(typed, full_name):
    person = User(email="x@example.com", full_name=full_name)
    result = typed_name_matches(typed, person)
    assert isinstance(result, bool)
    if result:
        assert comparable_name(typed) == comparable_name(full_name) != ""


@given(st.text(max_size=100))
def test_case_accents_and_spacing_never_matter(name):
    person = User(email="x@example.com", full_name=name)
    variant = "  " + " ".join(name.upper().split()) + " "
    assert typed_name_matches(variant, person) == bool(comparable_name(name))


def test_an_oversized_body_is_refused_and_records_nothing(
    settings, signer, revision, policy, logged_in
):
    client = logged_in(signer)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = LedgerEntry.objects.count()
    client.raise_request_exception = False
    response = client.post(
        f"/policies/{policy.slug}/v/{revision.version}/sign/",
        {"agree": "on", "typed_name": "A" * 5000, "consent": "on"},
    )
    assert response.status_code == 400
    assert LedgerEntry.objects.count() == before


def test_invalid_utf8_is_a_form_error_not_a_crash(signer, revision, policy, logged_in):
    client = logged_in(signer)
    response = client.post(
        f"/policies/{policy.slug}/v/{revision.version}/sign/",
        data=b"agree=on&consent=on&typed_name=%FF%FE%FA",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert not Acknowledgement.objects.exists()


def test_a_script_as_typed_name_is_shown_inert(signer, revision, policy, logged_in):
    client = logged_in(signer)
    response = client.post(
        f"/policies/{policy.slug}/v/{revision.version}/sign/",
        {"agree": "on", "typed_name": "<script>alert(1)</script>", "consent": "on"},
    )
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert not Acknowledgement.objects.exists()


def test_unknown_receipt_and_policy_addresses_are_404(signer, logged_in):
    client = logged_in(signer)
    assert client.get("/acknowledgements/VK-NOPE-NOPE-NOPE/").status_code == 404
    assert client.get("/policies/no-such-policy/").status_code == 404
    assert client.get("/policies/no-such-policy/v/1.0/").status_code == 404
