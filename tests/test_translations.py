"""A person signs the text in the language they read; English stays authoritative."""

import json

import pytest
from django.db import IntegrityError, connection, transaction

from acknowledgements.evidence import ledger
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import Acknowledgement, LedgerEntry
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies import text as policy_text
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import seal as receipt_seal

FRENCH = "# Politique de test\n\n## 1. Objet\n\nSoyez excellents.\n"


@pytest.fixture
def translated(revision):
    return policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body=FRENCH
    )


def test_a_published_revision_gets_a_frozen_translation(translated, revision):
    assert translated.text_sha256 == policy_text.text_sha256(FRENCH)
    assert "Soyez excellents" in translated.body_html
    with pytest.raises(ActionRefused):
        policy_actions.save_translation(actor=None, revision=revision, language="fr", body="autre")
    with pytest.raises(ActionRefused):
        policy_actions.save_translation(actor=None, revision=revision, language="en", body="x")


def test_a_draft_translation_changes_until_publication(policy, publish):
    draft = policy_actions.create_draft(
        actor=None, policy=policy, version="3.0", body="# New\n", change="material"
    )
    policy_actions.save_translation(actor=None, revision=draft, language="fr", body="# Premier\n")
    policy_actions.save_translation(actor=None, revision=draft, language="fr", body="# Nouveau\n")
    assert draft.translations.get().text_sha256 == ""  # not frozen yet
    policy_actions.publish_revision(actor=None, revision=draft)
    assert draft.translations.get().text_sha256 == policy_text.text_sha256("# Nouveau\n")


def test_a_french_reader_sees_and_signs_the_french_text(
    signer, translated, revision, policy, logged_in, django_capture_on_commit_callbacks
):
    signer.preferred_language = "fr"
    signer.save()
    client = logged_in(signer)
    page = client.get(f"/policies/{policy.slug}/").content.decode()
    assert "Soyez excellents" in page and translated.text_sha256 in page
    assert revision.text_sha256 in page  # the authoritative text's hash is shown beside it
    assert '<article class="policy-text" lang="fr"' in page

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/policies/{policy.slug}/v/{revision.version}/sign/",
            {"agree": "on", "typed_name": signer.full_name, "consent": "on", "language": "fr"},
        )
    entry = Acknowledgement.objects.get(person=signer).ledger_entry
    text = ledger.decode(entry)["text"]
    assert text["language"] == "fr"
    assert text["sha256"] == translated.text_sha256
    assert text["authoritative_language"] == "en"
    assert text["authoritative_sha256"] == revision.text_sha256
    with Acknowledgement.objects.get().receipt.pdf.open("rb") as pdf:
        report = receipt_seal.inspect_receipt(
            pdf.read(), trust_roots_pem=[receipt_authority.load_sealing_identity().root_pem]
        )
    assert report.policy_source == FRENCH  # the text attached is the one signed
    assert json.loads(report.evidence_json)["text"]["language"] == "fr"


def test_the_english_text_is_one_click_away(signer, translated, policy, logged_in):
    signer.preferred_language = "fr"
    signer.save()
    page = logged_in(signer).get(f"/policies/{policy.slug}/?lang=en").content.decode()
    assert "Be excellent." in page and "Soyez excellents" not in page


def test_without_a_translation_everyone_reads_english(signer, revision, policy, logged_in):
    signer.preferred_language = "fr"
    signer.save()
    page = logged_in(signer).get(f"/policies/{policy.slug}/").content.decode()
    assert "Be excellent." in page


@pytest.mark.postgres
def test_the_database_refuses_to_change_a_published_translation(translated, enforced_triggers):
    for statement in [
        "UPDATE acknowledgements_revisiontranslation SET body = 'x'",
        "DELETE FROM acknowledgements_revisiontranslation",
    ]:
        with (
            pytest.raises(Exception, match="not allowed"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert LedgerEntry.objects.filter(kind="admin_action").exists()


def test_one_translation_per_language(translated, revision):
    with pytest.raises(IntegrityError), transaction.atomic():
        revision.translations.create(language="fr", body="doublon")


def test_an_administrator_adds_a_translation_from_the_revision_page(
    admin_user, revision, logged_in
):
    client = logged_in(admin_user)
    page = client.get(f"/manage/revisions/{revision.pk}/").content.decode()
    assert f"/manage/revisions/{revision.pk}/translations/fr/" in page
    form = client.get(f"/manage/revisions/{revision.pk}/translations/fr/")
    assert form.status_code == 200
    response = client.post(f"/manage/revisions/{revision.pk}/translations/fr/", {"body": FRENCH})
    assert response.status_code == 302
    assert revision.translations.get().text_sha256 == policy_text.text_sha256(FRENCH)
    again = client.post(f"/manage/revisions/{revision.pk}/translations/fr/", {"body": "autre"})
    assert again.status_code == 400
    assert "cannot change" in again.content.decode()
    assert client.get(f"/manage/revisions/{revision.pk}/translations/en/").status_code == 404


def test_signers_cannot_translate(signer, revision, logged_in):
    response = logged_in(signer).post(
        f"/manage/revisions/{revision.pk}/translations/fr/", {"body": FRENCH}
    )
    assert response.status_code == 403
    assert not revision.translations.exists()
