"""A person signs the text in the language they read; English stays authoritative."""

import datetime as dt
import json

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from acknowledgements.evidence import ledger
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import Acknowledgement, LedgerEntry
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies import text as policy_text
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import seal as receipt_seal
from tests.pages import field_error, html_of, text_of

FRENCH = "# Politique de test\n\n## 1. Objet\n\nSoyez excellents.\n"
FRENCH_NAME = "Politique d\u2019essai"


@pytest.fixture
def translated(revision):
    return policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body=FRENCH, title=FRENCH_NAME
    )


@pytest.fixture
def french_signer(signer):
    signer.preferred_language = "fr"
    signer.save()
    return signer


def test_a_published_revision_gets_a_frozen_translation(translated, revision):
    assert translated.text_sha256 == policy_text.text_sha256(FRENCH)
    assert "Soyez excellents" in translated.body_html
    assert translated.title == FRENCH_NAME
    saved = LedgerEntry.objects.filter(kind="admin_action").order_by("id").last()
    assert ledger.decode(saved)["details"]["name"] == FRENCH_NAME
    with pytest.raises(ActionRefused):
        policy_actions.save_translation(actor=None, revision=revision, language="fr", body="autre")
    with pytest.raises(ActionRefused):
        policy_actions.save_translation(actor=None, revision=revision, language="en", body="x")


def test_a_draft_translation_changes_until_publication(policy, publish):
    draft = policy_actions.create_draft(
        actor=None, policy=policy, version="3.0", body="# New\n", change="material"
    )
    for title, body in [("Premier nom", "# Premier\n"), ("  Nouveau   nom ", "# Nouveau\n")]:
        policy_actions.save_translation(
            actor=None, revision=draft, language="fr", body=body, title=title
        )
    assert draft.translations.get().text_sha256 == ""  # not frozen yet
    policy_actions.publish_revision(actor=None, revision=draft)
    translation = draft.translations.get()
    assert translation.text_sha256 == policy_text.text_sha256("# Nouveau\n")
    assert translation.title == "Nouveau nom"


def test_a_french_reader_sees_and_signs_the_french_text(
    french_signer,
    translated,
    revision,
    policy,
    logged_in,
    django_capture_on_commit_callbacks,
    mailoutbox,
):
    client = logged_in(french_signer)
    page = client.get(f"/policies/{policy.slug}/").content.decode()
    assert "Soyez excellents" in page and translated.text_sha256 in page
    assert revision.text_sha256 in page  # the authoritative text's hash is shown beside it
    assert '<article class="policy-text" lang="fr"' in page
    assert f"<h1>{FRENCH_NAME}</h1>" in page
    assert f"<title>{FRENCH_NAME} 1.0 · " in page

    with django_capture_on_commit_callbacks(execute=True):
        signed = client.post(
            f"/policies/{policy.slug}/v/{revision.version}/sign/",
            {
                "agree": "on",
                "typed_name": french_signer.full_name,
                "consent": "on",
                "language": "fr",
            },
        )
    entry = Acknowledgement.objects.get(person=french_signer).ledger_entry
    text = ledger.decode(entry)["text"]
    assert text["language"] == "fr"
    assert text["title"] == FRENCH_NAME  # the name shown above the text
    assert text["sha256"] == translated.text_sha256
    assert text["authoritative_language"] == "en"
    assert text["authoritative_sha256"] == revision.text_sha256
    assert ledger.decode(entry)["policy"]["name"] == "Test Policy"  # the policy's own, as before
    with Acknowledgement.objects.get().receipt.pdf.open("rb") as pdf:
        report = receipt_seal.inspect_receipt(
            pdf.read(), trust_roots_pem=[receipt_authority.load_sealing_identity().root_pem]
        )
    assert report.policy_source == FRENCH  # the text attached is the one signed
    assert json.loads(report.evidence_json)["text"]["language"] == "fr"

    confirmation = text_of(client.get(signed["Location"]))
    assert f"{FRENCH_NAME}, version 1.0" in confirmation
    history = html_of(client.get("/acknowledgements/"))
    assert f'/policies/{policy.slug}/v/1.0/">{FRENCH_NAME}</a>' in history
    (receipt_email,) = mailoutbox
    assert receipt_email.subject.endswith(f" : {FRENCH_NAME} 1.0")
    assert f"Vous avez signé {FRENCH_NAME}, version 1.0, le " in receipt_email.body
    ((html, _mimetype),) = receipt_email.alternatives
    assert f"Vous avez signé <strong>{FRENCH_NAME}</strong>, version 1.0, le " in html


def test_the_english_text_is_one_click_away(french_signer, translated, policy, logged_in):
    page = logged_in(french_signer).get(f"/policies/{policy.slug}/?lang=en").content.decode()
    assert "Be excellent." in page and "Soyez excellents" not in page
    assert '<h1 lang="en">Test Policy</h1>' in page  # the English name, on a French page


def test_a_translation_saved_without_a_name_shows_the_english_one(
    french_signer, revision, policy, logged_in, sign, django_capture_on_commit_callbacks
):
    # As translations were saved before they had a name: the English name is shown with them.
    untitled = policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body=FRENCH
    )
    assert untitled.title == ""
    client = logged_in(french_signer)
    page = html_of(client.get(f"/policies/{policy.slug}/"))
    assert "Soyez excellents" in page
    assert "<h1>Test Policy</h1>" in page

    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(french_signer, revision, language="fr")
    assert ledger.decode(acknowledgement.ledger_entry)["text"]["title"] == "Test Policy"
    assert "Test Policy, version 1.0" in text_of(
        client.get(f"/acknowledgements/{acknowledgement.receipt_number}/")
    )


def test_without_a_translation_everyone_reads_english(signer, revision, policy, logged_in):
    signer.preferred_language = "fr"
    signer.save()
    page = logged_in(signer).get(f"/policies/{policy.slug}/").content.decode()
    assert "Be excellent." in page


@pytest.mark.postgres
def test_the_database_refuses_to_change_a_published_translation(translated, enforced_triggers):
    for statement in [
        "UPDATE acknowledgements_revisiontranslation SET body = 'x'",
        "UPDATE acknowledgements_revisiontranslation SET title = 'x'",
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
    assert "Policy name in this language" in html_of(form)
    unnamed = client.post(f"/manage/revisions/{revision.pk}/translations/fr/", {"body": FRENCH})
    assert unnamed.status_code == 400
    assert field_error(unnamed, "title") == "This field is required."
    assert not revision.translations.exists()
    response = client.post(
        f"/manage/revisions/{revision.pk}/translations/fr/",
        {"title": FRENCH_NAME, "body": FRENCH},
    )
    assert response.status_code == 302
    assert revision.translations.get().text_sha256 == policy_text.text_sha256(FRENCH)
    assert revision.translations.get().title == FRENCH_NAME
    assert FRENCH_NAME in html_of(client.get(f"/manage/revisions/{revision.pk}/"))
    again = client.post(
        f"/manage/revisions/{revision.pk}/translations/fr/", {"title": "Autre", "body": "autre"}
    )
    assert again.status_code == 400
    assert "cannot change" in again.content.decode()
    assert client.get(f"/manage/revisions/{revision.pk}/translations/en/").status_code == 404


def test_signers_cannot_translate(signer, revision, logged_in):
    response = logged_in(signer).post(
        f"/manage/revisions/{revision.pk}/translations/fr/", {"body": FRENCH}
    )
    assert response.status_code == 403
    assert not revision.translations.exists()


def test_a_french_reader_sees_dates_written_in_french(french_signer, policy, publish, logged_in):
    # Month names and their abbreviations in lower case, the first of the month "1er".
    with time_machine.travel(dt.datetime(2026, 12, 2, 10, tzinfo=dt.UTC), tick=False):
        publish(policy, "1.0", effective_at=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC))
        client = logged_in(french_signer)
        home = text_of(client.get("/"))
        reading = text_of(client.get(f"/policies/{policy.slug}/"))

    assert "Version 1.0, en vigueur depuis le 1er décembre 2026" in home
    assert "Pas encore signée : date limite le 15 déc. 2026" in home
    assert "En vigueur depuis le 1er décembre 2026" in reading
    assert "veuillez signer Test Policy 1.0 au plus tard le 15 décembre 2026." in reading
    for page in (home, reading):
        assert "Déc" not in page and "December" not in page
