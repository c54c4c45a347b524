"""The interface in French: pages, form errors and emails follow the person's language.

French typography is kept in the catalogue: a no-break space (U+00A0) before ":", "?", "!" and
";", and the typographic apostrophe (U+2019). They are written as escapes below.
"""

import datetime as dt
import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from acknowledgements.models import PolicyRevision
from acknowledgements.policies import actions as policy_actions
from tests.pages import text_of

NB = "\u00a0"  # no-break space
AP = "\u2019"  # typographic apostrophe
SIGN_URL = "/policies/test-policy/v/1.0/sign/"
SIGNATURE = {
    "agree": "on",
    "typed_name": "Ada Lovelace",
    "consent": "on",
    "browser_time_zone": "Europe/Paris",
    "language": "en",  # the text shown (the authoritative English; no translation exists)
}
FRENCH_MONTHS = (
    "janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"
)
LOCALE_DIR = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES"
DAY = dt.timedelta(days=1)


@pytest.fixture
def french_signer(signer):
    signer.preferred_language = "fr"
    signer.save()
    return signer


def text(response) -> str:
    return response.content.decode()


# --- Pages ---------------------------------------------------------------------------------------


def test_choosing_french_in_the_preferences_translates_the_home_page(signer, revision, logged_in):
    client = logged_in(signer)
    assert client.post("/preferences/", {"language": "fr"}).status_code == 302

    page = client.get("/")
    html = text(page)
    assert page["Content-Language"] == "fr"
    assert "<h1>Mes politiques</h1>" in html
    assert f"Bonjour Ada Lovelace. Voici les politiques qui s{AP}appliquent à vous." in html
    assert "Lire et signer" in html
    assert "Pas encore signée" in html
    assert "Portail des politiques" in html
    assert "Se déconnecter" in html
    assert "My policies" not in html


def test_the_preferences_confirmation_is_in_french(signer, logged_in):
    client = logged_in(signer)
    response = client.post("/preferences/", {"language": "fr"}, follow=True)
    html = text(response)
    assert "Vos préférences sont enregistrées." in html
    assert "<h1>Préférences</h1>" in html
    assert "Authentification à deux facteurs" in html


def test_the_signing_page_is_in_french(french_signer, revision, logged_in):
    html = text(logged_in(french_signer).get("/policies/test-policy/"))
    assert "Signer la version 1.0" in html
    assert ">Signer</button>" in html
    assert '<label for="id_typed_name">Nom complet</label>' in html
    assert f"Saisissez votre nom complet tel qu{AP}il figure sur votre compte" in html
    assert f"Je ne suis pas d{AP}accord" in html
    assert "Refuser cette version" in html
    assert f"SHA-256 de ce texte{NB}:" in html
    assert f"Action requise{NB}:" in html  # the banner of signatures due


def test_a_form_error_is_in_french(french_signer, revision, logged_in):
    response = logged_in(french_signer).post(
        SIGN_URL, SIGNATURE | {"typed_name": "Ada Lovelac", "agree": ""}
    )
    html = text(response)
    assert response.status_code == 400
    assert "Ce nom ne correspond pas à celui de votre compte (Ada Lovelace)." in html
    assert "Cochez la case pour confirmer votre accord." in html
    assert "This does not match the name on your account" not in html


def test_the_verify_page_is_in_french(french_signer, logged_in):
    client = logged_in(french_signer)
    html = text(client.get("/verify/"))
    assert "<h1>Vérifier un accusé de réception</h1>" in html
    assert "Accusé de réception (PDF)" in html
    assert f"Vérifier l{AP}accusé de réception</button>" in html
    assert "Vérifier sans ce portail" in html

    not_a_pdf = SimpleUploadedFile("receipt.pdf", b"hello", content_type="application/pdf")
    verdict = text(client.post("/verify/", {"receipt": not_a_pdf}))
    assert f"Ce n{AP}est pas un accusé de réception" in verdict
    assert "Sceau du portail présent</strong>\u00a0: " in verdict  # French colon spacing
    assert "✗ Échec" in verdict

    missing = client.post("/verify/", {})
    assert missing.status_code == 400
    assert "Ce champ est obligatoire." in text(missing)


def test_a_person_who_prefers_english_still_sees_english(make_person, revision, logged_in):
    person = make_person("Grace Hopper", email="grace@example.com")
    client = logged_in(person)
    home = client.get("/")
    assert home["Content-Language"] == "en"
    assert "<h1>My policies</h1>" in text(home)
    signing = text(client.get("/policies/test-policy/"))
    assert ">Sign</button>" in signing
    assert "Full name" in signing
    assert "Mes politiques" not in signing
    assert "<h1>Verify a receipt</h1>" in text(client.get("/verify/"))


# --- Emails --------------------------------------------------------------------------------------


def test_the_receipt_email_to_a_french_person_is_in_french(
    french_signer, revision, sign, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(french_signer, revision)

    (message,) = mailoutbox
    number = acknowledgement.receipt_number
    # Subjects are whitespace-normalised when sent: the no-break space becomes a plain one.
    assert message.subject == f"Votre accusé de réception {number} : Test Policy 1.0"
    assert message.body.startswith("Bonjour Ada Lovelace,")
    assert "Vous avez signé Test Policy, version 1.0, le " in message.body
    assert f"Numéro d{AP}accusé de réception{NB}: {number}" in message.body
    assert "Votre accusé de réception scellé est joint à cet e-mail." in message.body
    ((html, _mimetype),) = message.alternatives
    assert "Vous avez signé <strong>Test Policy</strong>, version 1.0, le " in html
    assert "Toutes vos attestations" in html


def test_announcements_follow_each_persons_language(
    french_signer,
    make_person,
    policy,
    publish,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    english = make_person("Grace Hopper", email="grace@example.com")
    publish(policy, "1.0")

    with django_capture_on_commit_callbacks(execute=True):
        publish(policy, "2.0", change=PolicyRevision.Change.MATERIAL)

    french = next(m for m in mailoutbox if m.to == [french_signer.email])
    assert re.fullmatch(
        rf"Action requise : signez Test Policy 2\.0 au plus tard le \d{{1,2}} "
        rf"({FRENCH_MONTHS}) \d{{4}}",
        french.subject,
    ), french.subject
    assert french.body.startswith("Bonjour Ada Lovelace,")
    assert "Une nouvelle version de Test Policy, la version 2.0, entre en vigueur le " in (
        french.body
    )
    assert f"Il s{AP}agit d{AP}une modification substantielle" in french.body
    assert f"Ce qui a changé{NB}:" in french.body
    assert "Veuillez signer au plus tard le " in french.body
    ((html, _mimetype),) = french.alternatives
    assert "Lire et signer" in html

    other = next(m for m in mailoutbox if m.to == [english.email])
    assert other.subject.startswith("Action required: sign Test Policy 2.0 by ")
    assert other.body.startswith("Hello Grace Hopper,")


# --- The catalogue -------------------------------------------------------------------------------

_LINE = re.compile(r'^(msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$')
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")
_TAG = re.compile(r"</?[a-z]+>")


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), value)


def read_po(path: Path) -> list[dict]:
    """Entries of a .po file: flags, msgid, msgid_plural and msgstr(s) (a small parser)."""
    entries, entry, key = [], None, None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry and "msgid" in entry:
                entries.append(entry)
            entry, key = None, None
            continue
        entry = entry if entry is not None else {"flags": set(), "msgstr": {}}
        if line.startswith("#,"):
            entry["flags"].update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#~"):
            entry["obsolete"] = True
        elif line.startswith("#"):
            continue
        elif match := _LINE.match(line):
            key = match.group(1)
            value = _unquote(match.group(2))
            if key.startswith("msgstr"):
                index = int(key[7:-1]) if "[" in key else 0
                key = ("msgstr", index)
                entry["msgstr"][index] = value
            else:
                entry[key] = value
        elif line.startswith('"') and key is not None:
            value = _unquote(line[1:-1])
            if isinstance(key, tuple):
                entry["msgstr"][key[1]] += value
            else:
                entry[key] += value
    return entries


@pytest.fixture(scope="module")
def catalogue() -> list[dict]:
    return read_po(LOCALE_DIR / "django.po")


def test_every_entry_of_the_french_catalogue_is_translated(catalogue):
    header, *entries = catalogue
    assert header["msgid"] == ""
    assert "Language: fr\n" in header["msgstr"][0]
    plurals = int(re.search(r"nplurals=(\d+)", header["msgstr"][0]).group(1))
    assert len(entries) > 500
    assert not any(entry.get("obsolete") for entry in entries)
    fuzzy = [entry["msgid"] for entry in catalogue if "fuzzy" in entry["flags"]]
    assert fuzzy == []
    untranslated = [
        entry["msgid"]
        for entry in entries
        if not all(entry["msgstr"].values())
        or len(entry["msgstr"]) != (plurals if "msgid_plural" in entry else 1)
    ]
    assert untranslated == []


def test_translations_keep_placeholders_and_markup(catalogue):
    for entry in catalogue[1:]:
        sources = [entry["msgid"], entry.get("msgid_plural", entry["msgid"])]
        for index, translated in entry["msgstr"].items():
            source = sources[min(index, 1)]
            expected = set(_PLACEHOLDER.findall(source))
            found = set(_PLACEHOLDER.findall(translated))
            if index == 0 and "msgid_plural" in entry:
                # The singular may leave out the count ("Show the failed email").
                assert found <= set(_PLACEHOLDER.findall(sources[1])), entry["msgid"]
                assert expected <= found, entry["msgid"]
            else:
                assert found == expected, entry["msgid"]
            assert sorted(_TAG.findall(translated)) == sorted(_TAG.findall(source)), entry["msgid"]


def test_the_compiled_catalogue_matches_the_po_file(catalogue):
    """django.mo is committed next to the .po: a fresh machine needs no gettext tools."""
    with (LOCALE_DIR / "django.mo").open("rb") as compiled:
        mo = gettext.GNUTranslations(compiled)
    for entry in catalogue[1:]:
        if "msgid_plural" in entry:
            assert mo.ngettext(entry["msgid"], entry["msgid_plural"], 1) == entry["msgstr"][0]
            assert mo.ngettext(entry["msgid"], entry["msgid_plural"], 5) == entry["msgstr"][2]
        else:
            assert mo.gettext(entry["msgid"]) == entry["msgstr"][0], entry["msgid"]


# --- Dates in reports and the PDF summary, policy names in messages ------------------------------

FRENCH_NAME = "Politique d\u2019essai"
FRENCH_BODY = "# Politique d\u2019essai\n\n## 1. Objet\n\nSoyez excellents.\n"
# Version 1.0 takes effect on the first of December, due by the fifteenth; seen on the fourth.
IN_EFFECT = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
SEEN = dt.datetime(2026, 12, 4, 10, tzinfo=dt.UTC)


@pytest.fixture
def december(policy, publish, signer, sign):
    with time_machine.travel(SEEN, tick=False):
        revision = publish(policy, "1.0", effective_at=IN_EFFECT, due_days=14)
        sign(signer, revision)
    return revision


def read_by(auditor, language: str):
    auditor.preferred_language = language
    auditor.save()
    return auditor


def pdf_text(data: bytes, tmp_path) -> str:
    path = tmp_path / "summary.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return " ".join(result.stdout.split())


def test_a_reports_page_writes_its_dates_as_french_does(december, auditor, logged_in):
    with time_machine.travel(SEEN, tick=False):
        page = text_of(logged_in(read_by(auditor, "fr")).get("/reports/"))

    assert "1er déc. 2026, 09:00" in page  # in effect since: lower case, a period, "1er"
    assert "15 déc. 2026, 09:00" in page  # due
    assert "4 décembre 2026, 10:00:00" in page  # the moment shown
    assert "Déc" not in page


def test_a_reports_page_in_english_writes_its_dates_as_before(december, auditor, logged_in):
    with time_machine.travel(SEEN, tick=False):
        page = text_of(logged_in(read_by(auditor, "en")).get("/reports/"))

    assert "1 Dec 2026, 09:00" in page
    assert "15 Dec 2026, 09:00" in page
    assert "4 December 2026, 10:00:00" in page
    assert "1er" not in page and "déc." not in page


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs pdftotext (poppler-utils)")
@pytest.mark.parametrize(
    "language,written",
    [
        ("fr", ["1er décembre 2026, 09:00", "15 décembre 2026, 09:00", "4 décembre 2026"]),
        ("en", ["1 December 2026, 09:00", "15 December 2026, 09:00", "4 December 2026"]),
    ],
)
def test_the_pdf_summary_writes_its_dates_in_the_readers_language(
    december, auditor, logged_in, tmp_path, language, written
):
    with time_machine.travel(SEEN, tick=False):
        response = logged_in(read_by(auditor, language)).post(
            "/reports/policies/test-policy/export/summary.pdf"
        )
    assert response.status_code == 200

    text = pdf_text(b"".join(response.streaming_content), tmp_path)
    for date in written:
        assert date in text
    assert ("1er" in text) == (language == "fr")


@pytest.fixture
def in_french(revision):
    return policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body=FRENCH_BODY, title=FRENCH_NAME
    )


DECLINE_URL = "/policies/test-policy/v/1.0/decline/"


def test_a_decline_is_confirmed_under_the_policys_french_name(french_signer, in_french, logged_in):
    client = logged_in(french_signer)
    first = text_of(client.post(DECLINE_URL, {"reason": "Pas encore."}, follow=True))
    again = text_of(client.post(DECLINE_URL, {"reason": "Toujours pas."}, follow=True))

    assert f"Vous avez refusé {FRENCH_NAME} 1.0." in first
    assert f"Votre refus de {FRENCH_NAME} 1.0 est déjà enregistré" in again
    assert "Test Policy" not in first + again


def test_a_decline_in_english_keeps_the_policys_own_name(signer, in_french, logged_in):
    client = logged_in(signer)
    first = text_of(client.post(DECLINE_URL, {"reason": "Not yet."}, follow=True))
    again = text_of(client.post(DECLINE_URL, {"reason": "Still not."}, follow=True))

    assert "You declined Test Policy 1.0." in first
    assert "Your decline of Test Policy 1.0 is already recorded" in again
    assert FRENCH_NAME not in first + again


@pytest.mark.parametrize(
    "language,message",
    [
        ("fr", f"Votre signature de la politique {FRENCH_NAME} est en retard."),
        ("en", "Your signature of Test Policy is overdue. Please sign it to continue."),
    ],
)
def test_an_overdue_person_is_sent_to_sign_under_the_name_they_read(
    signer, policy, publish, logged_in, language, message
):
    overdue = publish(policy, "1.0", due_days=3, effective_at=timezone.now() - 4 * DAY)
    policy_actions.save_translation(
        actor=None, revision=overdue, language="fr", body=FRENCH_BODY, title=FRENCH_NAME
    )
    signer.preferred_language = language
    signer.save()

    page = logged_in(signer).get("/", follow=True)

    assert page.redirect_chain[-1][0] == "/policies/test-policy/"
    assert message in text_of(page)
