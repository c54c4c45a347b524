"""Signing, viewing, declining and publishing through the services, as an auditor checks them."""

import datetime as dt
import hashlib
import json
import re
import unicodedata

import pytest
from django.utils import timezone

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.evidence.statements import CURRENT_ATTESTATION, CURRENT_ESIGN_CONSENT
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import Acknowledgement, ClientDetails, LedgerEntry, PolicyRevision
from acknowledgements.policies import actions as policy_actions
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings.coverage import Status, standing_for
from tests.conftest import client_evidence

RECEIPT_NUMBER = re.compile(
    r"^VK-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$"
)


def payload_of(entry: LedgerEntry) -> dict:
    return json.loads(bytes(entry.payload))


def evidence_rows() -> tuple[int, int]:
    return LedgerEntry.objects.count(), Acknowledgement.objects.count()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- What a signature records -----------------------------------------------------------------


def test_signing_records_an_acknowledgement_and_its_signed_event(signer, revision, sign):
    before = LedgerEntry.objects.count()

    acknowledgement = sign(signer, revision)

    entry = acknowledgement.ledger_entry
    assert entry.kind == LedgerEntry.Kind.SIGNED
    assert (entry.person, entry.revision) == (signer, revision)
    assert (acknowledgement.person, acknowledgement.revision) == (signer, revision)
    # First signature: one consent event, then the signature itself.
    assert LedgerEntry.objects.count() == before + 2
    assert chain_check.verify_chain().intact


def test_signed_payload_holds_the_evidence(signer, revision, sign):
    signing_actions.record_view(person=signer, revision=revision, client=client_evidence())
    viewed = LedgerEntry.objects.get(kind=LedgerEntry.Kind.VIEWED)

    acknowledgement = sign(signer, revision, typed_name="Ada Lovelace")

    consented = LedgerEntry.objects.get(kind=LedgerEntry.Kind.CONSENTED, person=signer)
    payload = payload_of(acknowledgement.ledger_entry)
    assert payload["event"] == "signed"
    assert payload["receipt_number"] == acknowledgement.receipt_number
    assert payload["person"] == {
        "id": signer.pk,
        "email": "ada@example.com",
        "name": "Ada Lovelace",
    }
    assert payload["policy"]["slug"] == "test-policy"
    assert payload["policy"]["version"] == "1.0"
    assert payload["policy"]["revision_id"] == revision.pk
    assert payload["policy"]["effective_at"] == ledger.utc_iso(revision.effective_at)
    assert payload["text"]["sha256"] == revision.text_sha256 == sha256(revision.body)
    assert payload["attestation"] == {
        "version": CURRENT_ATTESTATION.version,
        "language": "en",
        "text": CURRENT_ATTESTATION.text,
        "sha256": sha256(CURRENT_ATTESTATION.text),
        "authoritative_language": "en",
        "authoritative_sha256": sha256(CURRENT_ATTESTATION.text),
    }
    assert payload["consent"] == {
        "version": CURRENT_ESIGN_CONSENT.version,
        "language": "en",
        "text": CURRENT_ESIGN_CONSENT.text,
        "sha256": sha256(CURRENT_ESIGN_CONSENT.text),
        "accepted_at": ledger.utc_iso(consented.recorded_at),
    }
    assert payload["typed_name"] == "Ada Lovelace"
    assert payload["checkbox_ticked"] is True
    assert payload["first_viewed_at"] == ledger.utc_iso(viewed.recorded_at)
    assert payload["signed_at"].endswith("Z")
    # The raw IP address and user agent stay out of the append-only ledger: the payload holds
    # salted commitments, opened by the values and salts kept beside it.
    details = ClientDetails.objects.get(ledger_entry=acknowledgement.ledger_entry)
    assert (details.ip, details.user_agent) == (
        "192.0.2.10",
        "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0",
    )
    assert payload["client"] == {
        "ip_sha256": sha256(details.ip_salt + "192.0.2.10"),
        "user_agent_sha256": sha256(
            details.user_agent_salt + "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0"
        ),
        "commitment": "SHA-256 of UTF-8 (salt as 64 hex digits, then the value)",
        "request_id": "test-request-0001",
    }
    assert len({details.ip_salt, details.user_agent_salt}) == 2
    assert b"192.0.2.10" not in bytes(acknowledgement.ledger_entry.payload)
    assert b"TestBrowser" not in bytes(acknowledgement.ledger_entry.payload)
    assert payload["authentication"]["method"] == "password"
    assert payload["authentication"]["mfa"] is False
    assert payload["session_key_sha256"] == "a" * 64
    assert payload["browser_time_zone"] == "Europe/Paris"


def test_first_viewed_at_is_null_when_the_text_was_never_opened(signer, revision, sign):
    acknowledgement = sign(signer, revision)

    payload = payload_of(acknowledgement.ledger_entry)
    assert "first_viewed_at" in payload
    assert payload["first_viewed_at"] is None


def test_acknowledgement_signed_at_is_the_time_in_the_evidence(signer, revision, sign):
    acknowledgement = sign(signer, revision)

    payload = payload_of(acknowledgement.ledger_entry)
    assert payload["signed_at"] == ledger.utc_iso(acknowledgement.signed_at)


def test_signing_queues_the_receipt_after_commit(
    signer, revision, sign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sign(signer, revision)

    assert len(callbacks) == 1


# --- Consent to sign electronically -------------------------------------------------------------


def test_first_signature_records_one_consent_and_the_next_adds_none(
    signer, make_policy, publish, sign
):
    first = publish(make_policy("first-policy", name="First Policy"), "1.0")
    second = publish(make_policy("second-policy", name="Second Policy"), "1.0")

    sign(signer, first)
    consents = LedgerEntry.objects.filter(person=signer, kind=LedgerEntry.Kind.CONSENTED)
    assert consents.count() == 1
    consent = payload_of(consents.get())
    assert consent["consent"]["text"] == CURRENT_ESIGN_CONSENT.text
    assert consent["consent"]["sha256"] == sha256(CURRENT_ESIGN_CONSENT.text)

    # Once consented, a later signature needs no new consent, even if the box is not ticked.
    second_ack = sign(signer, second, consent_accepted=False)
    assert consents.count() == 1
    assert payload_of(second_ack.ledger_entry)["consent"]["accepted_at"] == consent["recorded_at"]


def test_signing_twice_returns_the_first_acknowledgement(
    signer, revision, sign, django_capture_on_commit_callbacks
):
    first = sign(signer, revision)
    rows = evidence_rows()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = sign(signer, revision)

    assert again.pk == first.pk
    assert again.receipt_number == first.receipt_number
    assert evidence_rows() == rows
    assert callbacks == []


# --- Refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"consent_accepted": False}, "Accept electronic signing"),
        ({"checkbox_ticked": False}, "Tick the box"),
        ({"typed_name": "Grace Hopper"}, "Type your full name"),
        ({"typed_name": ""}, "Type your full name"),
    ],
    ids=["no-consent", "box-not-ticked", "someone-elses-name", "no-name"],
)
def test_incomplete_signature_is_refused_and_records_nothing(
    signer, revision, sign, overrides, message
):
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match=message):
        sign(signer, revision, **overrides)

    assert evidence_rows() == rows
    assert not LedgerEntry.objects.filter(person=signer).exists()


@pytest.mark.parametrize(
    "typed",
    [
        "  ADA   lovélace ",
        "ada lovelace",
        "Ada\u00a0Lovelace",
        "ÀDA LOVELACE",
        "A\u0300DA LOVELACE",
    ],
)
def test_typed_name_ignores_case_accents_and_spaces(signer, revision, sign, typed):
    acknowledgement = sign(signer, revision, typed_name=typed)

    # The name is kept as typed (in NFC): it is the signature.
    assert payload_of(acknowledgement.ledger_entry)["typed_name"] == unicodedata.normalize(
        "NFC", typed
    )


@pytest.mark.parametrize("typed", ["Ada Lovelac", "Ada", "Lovelace Ada", "Ada Lovelace Byron"])
def test_typed_name_must_be_the_whole_name(signer, revision, sign, typed):
    rows = evidence_rows()

    with pytest.raises(ActionRefused):
        sign(signer, revision, typed_name=typed)

    assert evidence_rows() == rows


def test_accented_account_name_matches_plain_typing(make_person, revision, sign):
    person = make_person("Zoë Ångström")

    acknowledgement = sign(person, revision, typed_name="zoe angstrom")

    assert acknowledgement.person == person


def test_a_draft_cannot_be_signed(signer, policy, sign):
    draft = policy_actions.create_draft(
        actor=None, policy=policy, version="1.0", body="# Draft\n", change="material"
    )
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="not published"):
        sign(signer, draft)

    assert evidence_rows() == rows


def test_a_superseded_revision_cannot_be_signed(signer, policy, publish, sign):
    old = publish(policy, "1.0", effective_at=timezone.now() - dt.timedelta(days=30))
    publish(policy, "2.0")
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="replaced"):
        sign(signer, old)

    assert evidence_rows() == rows


def test_a_revision_not_yet_in_effect_cannot_be_signed(signer, policy, publish, sign):
    publish(policy, "1.0", effective_at=timezone.now() - dt.timedelta(days=30))
    future = publish(policy, "2.0", effective_at=timezone.now() + dt.timedelta(days=7))
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="not in effect yet"):
        sign(signer, future)

    assert evidence_rows() == rows


def test_a_first_revision_not_yet_in_effect_says_so(signer, policy, publish, sign):
    future = publish(policy, "1.0", effective_at=timezone.now() + dt.timedelta(days=7))

    with pytest.raises(ActionRefused, match="not in effect yet"):
        sign(signer, future)


def test_a_policy_for_another_audience_cannot_be_signed(signer, make_policy, publish, sign):
    contractors_only = make_policy(
        "contractor-code", name="Contractor Code", audience_slugs=("contractors",)
    )
    revision = publish(contractors_only, "1.0")
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="does not apply to you"):
        sign(signer, revision)

    assert evidence_rows() == rows


# --- Viewing and declining ----------------------------------------------------------------------


def test_a_view_is_recorded_once_per_person_and_revision(signer, make_person, revision):
    other = make_person("Grace Hopper")

    for _ in range(3):
        signing_actions.record_view(person=signer, revision=revision, client=client_evidence())
    signing_actions.record_view(person=other, revision=revision, client=client_evidence())

    views = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.VIEWED)
    assert views.filter(person=signer).count() == 1
    assert views.filter(person=other).count() == 1
    payload = payload_of(views.get(person=signer))
    assert payload["text"]["sha256"] == revision.text_sha256
    kept = ClientDetails.objects.get(ledger_entry=views.get(person=signer))
    assert kept.ip == "192.0.2.10"
    assert payload["client"]["ip_sha256"] == sha256(kept.ip_salt + "192.0.2.10")


def test_decline_is_recorded_with_its_reason_and_leaves_the_person_unsigned(signer, revision):
    entry = signing_actions.record_decline(
        person=signer,
        revision=revision,
        reason="  I disagree with section 4.  ",
        client=client_evidence(),
    )

    assert entry.kind == LedgerEntry.Kind.DECLINED
    payload = payload_of(entry)
    assert payload["reason"] == "I disagree with section 4."
    assert payload["person"]["email"] == "ada@example.com"
    assert payload["text"]["sha256"] == revision.text_sha256
    assert not Acknowledgement.objects.filter(person=signer).exists()
    standing = standing_for(signer, revision.policy)
    assert standing.status == Status.DECLINED
    assert standing.must_sign


def test_decline_without_a_reason_records_none(signer, revision):
    entry = signing_actions.record_decline(
        person=signer, revision=revision, reason="   ", client=client_evidence()
    )

    assert payload_of(entry)["reason"] is None


def test_declining_after_signing_is_refused(signer, revision, sign):
    sign(signer, revision)
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="already signed"):
        signing_actions.record_decline(
            person=signer, revision=revision, reason="Changed my mind", client=client_evidence()
        )

    assert evidence_rows() == rows


# --- Publishing ---------------------------------------------------------------------------------


def test_publishing_freezes_the_text_and_is_audited(policy, admin_user):
    draft = policy_actions.create_draft(
        actor=admin_user,
        policy=policy,
        version="1.0",
        body="# Rules\r\n\r\n## 1. Purpose   \r\n\r\nBe kind.\r\n",
        change=PolicyRevision.Change.MATERIAL,
    )
    assert (draft.body_html, draft.text_sha256, draft.published_at) == ("", "", None)

    published = policy_actions.publish_revision(actor=admin_user, revision=draft)

    published.refresh_from_db()
    assert published.is_published
    assert published.body == "# Rules\n\n## 1. Purpose\n\nBe kind.\n"
    assert published.text_sha256 == sha256(published.body)
    assert '<h3 id="1-purpose">1. Purpose</h3>' in published.body_html
    assert "<p>Be kind.</p>" in published.body_html
    assert published.published_at is not None
    assert published.published_by == admin_user
    audit = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).last()
    assert audit.revision == published
    assert audit.actor == admin_user
    payload = payload_of(audit)
    assert payload["action"] == "revision_published"
    assert payload["actor"]["email"] == "grace@example.com"
    assert payload["details"]["version"] == "1.0"
    assert payload["details"]["text_sha256"] == published.text_sha256
    assert payload["details"]["audiences"] == ["employees"]


def test_publishing_twice_is_refused(revision):
    rows = evidence_rows()

    with pytest.raises(ActionRefused, match="already published"):
        policy_actions.publish_revision(actor=None, revision=revision)

    assert evidence_rows() == rows
    frozen = PolicyRevision.objects.get(pk=revision.pk)
    assert (frozen.text_sha256, frozen.published_at) == (
        revision.text_sha256,
        revision.published_at,
    )


# --- Receipt numbers ----------------------------------------------------------------------------


def test_receipt_numbers_are_well_formed_and_unique(make_person, revision, sign):
    people = [make_person(f"Person {n}") for n in range(12)]

    numbers = [
        sign(person, revision, typed_name=person.full_name).receipt_number for person in people
    ]

    assert all(RECEIPT_NUMBER.match(number) for number in numbers), numbers
    assert len(set(numbers)) == len(numbers)
