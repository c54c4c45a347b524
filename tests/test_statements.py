"""The attestation and e-signing consent in the signer's language; the verify page in theirs.

The English statements are authoritative; a French reader is shown the French ones, and the
ledger and the receipt record exactly which text was shown.
"""

import hashlib
import json
import re

import pytest
from django.db import connection
from django.utils import translation

from acknowledgements.evidence import chain_check, ledger
from acknowledgements.evidence.statements import (
    CURRENT_ATTESTATION,
    CURRENT_ESIGN_CONSENT,
    Statement,
)
from acknowledgements.models import Acknowledgement, LedgerEntry, Receipt
from acknowledgements.policies import actions as policy_actions
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import seal as receipt_seal
from acknowledgements.receipts import verification
from tests.conftest import set_evidence_triggers
from tests.pages import text_of
from tests.test_tasks_receipts import pdf_text
from tests.test_verification import flip_a_signed_byte, upload

AP = "\u2019"  # typographic apostrophe
NB = "\u00a0"  # no-break space
FRENCH = "# Politique de test\n\n## 1. Objet\n\nSoyez excellents.\n"
FRENCH_ATTESTATION = CURRENT_ATTESTATION.texts["fr"]
FRENCH_CONSENT = CURRENT_ESIGN_CONSENT.texts["fr"]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def french_signer(signer):
    signer.preferred_language = "fr"
    signer.save()
    return signer


@pytest.fixture
def translated(revision):
    return policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body=FRENCH
    )


def sign_in_french(client, policy, revision, django_capture_on_commit_callbacks, **extra):
    page = client.get(f"/policies/{policy.slug}/").content.decode()
    statement_language = re.search(r'name="statement_language" value="([a-z]+)"', page).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/policies/{policy.slug}/v/{revision.version}/sign/",
            {
                "agree": "on",
                "typed_name": "Ada Lovelace",
                "consent": "on",
                "language": "fr",
                "statement_language": statement_language,
                **extra,
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    return page


def test_a_statement_has_one_authoritative_text_and_its_translations():
    assert CURRENT_ATTESTATION.language_for("fr") == "fr"
    assert CURRENT_ATTESTATION.language_for("fr-ca") == "fr"
    assert CURRENT_ATTESTATION.language_for("de") == "en"
    assert CURRENT_ATTESTATION.text_in("fr") == FRENCH_ATTESTATION
    assert CURRENT_ATTESTATION.sha256 == sha256(CURRENT_ATTESTATION.texts["en"])
    with pytest.raises(ValueError, match="no en text"):
        Statement(version="9", texts={"fr": "Seulement en français."})


def test_the_signing_page_shows_the_statements_in_french(
    french_signer, translated, policy, logged_in
):
    page = logged_in(french_signer).get(f"/policies/{policy.slug}/").content.decode()
    assert FRENCH_ATTESTATION in page.replace("&#x27;", "'")
    assert FRENCH_CONSENT in page.replace("&#x27;", "'")
    assert CURRENT_ATTESTATION.text not in page
    assert 'name="statement_language" value="fr"' in page


def test_signing_in_french_records_the_french_statements_and_the_english_ones_hashes(
    french_signer, translated, policy, revision, logged_in, django_capture_on_commit_callbacks
):
    sign_in_french(logged_in(french_signer), policy, revision, django_capture_on_commit_callbacks)

    signed = ledger.decode(Acknowledgement.objects.get(person=french_signer).ledger_entry)
    assert signed["attestation"] == {
        "version": "1",
        "language": "fr",
        "text": FRENCH_ATTESTATION,
        "sha256": sha256(FRENCH_ATTESTATION),
        "authoritative_language": "en",
        "authoritative_sha256": sha256(CURRENT_ATTESTATION.text),
    }
    assert signed["consent"]["language"] == "fr"
    assert signed["consent"]["sha256"] == sha256(FRENCH_CONSENT)
    consented = ledger.decode(LedgerEntry.objects.get(kind=LedgerEntry.Kind.CONSENTED))
    assert consented["consent"]["text"] == FRENCH_CONSENT
    assert consented["consent"]["authoritative_sha256"] == CURRENT_ESIGN_CONSENT.sha256
    assert chain_check.verify_chain().intact


def test_the_statements_follow_the_page_even_without_a_translated_policy_text(
    french_signer, policy, revision, logged_in, django_capture_on_commit_callbacks
):
    # No French text of the policy: it is read (and recorded) in English, the page is French.
    sign_in_french(
        logged_in(french_signer),
        policy,
        revision,
        django_capture_on_commit_callbacks,
        language="en",
    )
    signed = ledger.decode(Acknowledgement.objects.get().ledger_entry)
    assert signed["text"]["language"] == "en"
    assert signed["attestation"]["language"] == "fr"
    assert signed["attestation"]["sha256"] == sha256(FRENCH_ATTESTATION)


def test_an_english_reader_signs_the_english_statements(
    signer, revision, policy, logged_in, django_capture_on_commit_callbacks
):
    client = logged_in(signer)
    page = client.get(f"/policies/{policy.slug}/").content.decode()
    assert 'name="statement_language" value="en"' in page
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/policies/{policy.slug}/v/{revision.version}/sign/",
            {"agree": "on", "typed_name": "Ada Lovelace", "consent": "on", "language": "en"},
        )
    signed = ledger.decode(Acknowledgement.objects.get().ledger_entry)
    assert signed["attestation"]["language"] == "en"
    assert signed["attestation"]["sha256"] == CURRENT_ATTESTATION.sha256


def test_the_receipt_shows_the_attestation_in_the_language_signed(
    french_signer,
    translated,
    policy,
    revision,
    logged_in,
    django_capture_on_commit_callbacks,
    tmp_path,
):
    sign_in_french(logged_in(french_signer), policy, revision, django_capture_on_commit_callbacks)
    with Receipt.objects.get().pdf.open("rb") as stored:
        pdf = stored.read()

    text = pdf_text(pdf, tmp_path)
    compact = re.sub(r"\s+", "", text)
    assert " ".join(FRENCH_ATTESTATION.split()) in text
    assert CURRENT_ATTESTATION.text not in text
    # The receipt speaks the signer's language: its labels are French too.
    assert "Langue de la déclaration fr" in text
    assert "Langue du consentement à la signature électronique fr" in text
    assert sha256(FRENCH_ATTESTATION) in compact
    assert CURRENT_ATTESTATION.sha256 in compact  # the authoritative text's hash beside it
    report = receipt_seal.inspect_receipt(
        pdf, trust_roots_pem=[receipt_authority.load_sealing_identity().root_pem]
    )
    assert json.loads(report.evidence_json)["attestation"]["text"] == FRENCH_ATTESTATION


# --- The verify page in French ------------------------------------------------------------------


def test_the_verify_page_explains_a_non_pdf_in_french(french_signer, logged_in):
    text = text_of(upload(logged_in(french_signer), b"hello"))
    assert f"Sceau du portail présent : Le fichier n{AP}est pas un PDF." in text
    assert "The file is not a PDF" not in text


def test_the_verify_page_explains_a_changed_receipt_in_french(
    french_signer, revision, sign, logged_in, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign(french_signer, revision)
    with Receipt.objects.get().pdf.open("rb") as stored:
        tampered = flip_a_signed_byte(stored.read())

    text = text_of(upload(logged_in(french_signer), tampered))
    # page_text collapses whitespace, the no-break spaces of French typography included.
    assert (
        "Le sceau ne correspond plus au contenu du fichier : il a été modifié après le scellement."
    ) in text
    assert "changed after sealing" not in text


def test_the_size_limit_of_an_inspected_file_is_stated_in_french(db, settings):
    # The form refuses such a file first; the inspector's own message serves other callers.
    settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES = 12_000
    with translation.override("fr"):
        verdict = verification.verify_receipt(b"%PDF-1.7\n" + bytes(20_000))
    assert verdict.checks[0].detail == (
        f"Le fichier dépasse 12{NB}000 octets{NB}: ce n{AP}est pas un accusé de réception."
    )


def test_the_verify_page_explains_a_broken_chain_in_french(
    french_signer, revision, sign, logged_in, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign(french_signer, revision)
    with Receipt.objects.get().pdf.open("rb") as stored:
        pdf = stored.read()
    # The entry just before the signature's: verification recomputes it with the signature's.
    before = Receipt.objects.get().acknowledgement.ledger_entry.sequence - 1
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE acknowledgements_ledgerentry SET payload = %s WHERE sequence = %s",
            [ledger.canonical_bytes({"forged": True}), before],
        )
    set_evidence_triggers(True)

    text = text_of(upload(logged_in(french_signer), pdf))
    assert f"Le registre est endommagé : la séquence {before} échoue" in text
    assert "empreinte SHA-256 ne correspond plus" in text
    assert "payload changed" not in text
