"""Administrators manage people: add and invite, edit, retire and bring back, and download the
list. Each change is one audited action, whichever page it comes from."""

import csv
import io
import re

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from acknowledgements.evidence import ledger
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import LedgerEntry, User
from acknowledgements.people import actions as people_actions
from acknowledgements.people.directory import DIRECTORY_COLUMNS
from acknowledgements.standings import coverage
from tests.conftest import PASSWORD
from tests.pages import field_error, text_of

NEW_PASSWORD = "a-long-and-new-passphrase-2026"


def audit(action: str) -> list[dict]:
    payloads = (
        ledger.decode(entry)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    )
    return [p for p in payloads if p["action"] == action]


def link_in(message, path_start: str) -> str:
    """The first link in an email's text that goes to `path_start` on the portal."""
    found = re.search(rf"https?://[^\s]+{re.escape(path_start)}[^\s]*", message.body)
    assert found, f"no {path_start} link in {message.body!r}"
    return found.group(0).split("testserver", 1)[1]


@pytest.fixture
def admin(logged_in, admin_user):
    return logged_in(admin_user)


@pytest.fixture
def added(admin_user, audiences, revision, mailoutbox, django_capture_on_commit_callbacks):
    """A person added with the employees audience, whose invitation was sent."""
    with django_capture_on_commit_callbacks(execute=True):
        person = people_actions.add_person(
            actor=admin_user,
            email="New.Starter@Example.com",
            full_name="New Starter",
            audiences=[audiences["employees"]],
            employee_number="E-1001",
            external_id="hr-1001",
        )
    return person


# --- Adding and inviting -------------------------------------------------------------------------


def test_an_added_person_is_audited_and_invited_to_set_a_password(added, admin_user, mailoutbox):
    assert added.email == "new.starter@example.com"
    assert not added.has_usable_password()
    assert added.invited_at is not None
    (record,) = audit("person_added")
    assert record["actor"]["email"] == admin_user.email
    assert record["details"]["audiences"] == ["employees"]
    assert record["details"]["external_id"] == "hr-1001"
    assert len(audit("person_invited")) == 1

    (invitation,) = mailoutbox
    assert invitation.to == ["new.starter@example.com"]
    assert invitation.subject == "You are invited to the Voipkonnec policy portal"
    assert "Test Policy 1.0, by" in invitation.body  # what waits for their signature


def test_the_invitation_link_sets_a_password_once_and_the_person_signs_in(added, mailoutbox):
    link = link_in(mailoutbox[0], "/accounts/password/reset/key/")
    browser = Client()
    form_page = browser.get(link, follow=True)
    assert form_page.status_code == 200
    set_password = browser.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert set_password.status_code == 302
    added.refresh_from_db()
    assert added.check_password(NEW_PASSWORD)

    signed_in = Client().post("/accounts/login/", {"login": added.email, "password": NEW_PASSWORD})
    assert signed_in.status_code == 302
    # The link is used up: it does not set a password a second time.
    again = Client().get(link, follow=True)
    assert "The password reset link was invalid" in text_of(again)


def test_an_invitation_is_written_in_the_person_s_language(
    admin_user, audiences, revision, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.add_person(
            actor=admin_user,
            email="nouvelle@example.com",
            full_name="Nouvelle Recrue",
            audiences=[audiences["employees"]],
            language="fr",
        )
    (invitation,) = mailoutbox
    assert invitation.subject == "Vous êtes invité·e sur le portail des politiques de Voipkonnec"
    assert "Bonjour Nouvelle Recrue" in invitation.body


@pytest.mark.parametrize(
    ("email", "external_id", "refusal"),
    [
        ("ADA@example.com", "", "Someone else already has the address ada@example.com."),
        ("other@example.com", "taken-id", "Someone else already has the external id taken-id."),
    ],
)
def test_a_duplicate_address_or_external_id_is_refused_and_adds_nobody(
    make_person, admin_user, audiences, email, external_id, refusal
):
    existing = make_person("Ada Lovelace", email="ada@example.com")
    existing.external_id = "taken-id"
    existing.save()
    before = User.objects.count()
    with pytest.raises(ActionRefused, match=re.escape(refusal)):
        people_actions.add_person(
            actor=admin_user,
            email=email,
            full_name="Someone",
            audiences=[audiences["employees"]],
            external_id=external_id,
        )
    assert User.objects.count() == before
    assert audit("person_added") == []


def test_sending_the_invitation_again_is_audited_and_refused_for_a_leaver(
    added, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.invite_person(actor=admin_user, person=added)
    assert len(mailoutbox) == 2
    assert len(audit("person_invited")) == 2

    people_actions.deactivate_person(actor=admin_user, person=added)
    with pytest.raises(ActionRefused, match="has left: reactivate them first"):
        people_actions.invite_person(actor=admin_user, person=added)


# --- Editing -------------------------------------------------------------------------------------


def test_edits_are_audited_field_by_field(added, admin_user, make_person):
    boss = make_person("Katherine Johnson", email="katherine@example.com")
    people_actions.update_person(
        actor=admin_user, person=added, full_name="New Starter-Smith", manager=boss
    )
    (record,) = audit("person_changed")
    assert record["details"]["changed"] == {
        "full_name": {"before": "New Starter", "after": "New Starter-Smith"},
        "manager": {"before": None, "after": "katherine@example.com"},
    }
    # Saving the same values again records nothing.
    people_actions.update_person(
        actor=admin_user, person=added, full_name="New Starter-Smith", manager=boss
    )
    assert len(audit("person_changed")) == 1


def test_a_new_address_must_be_confirmed_by_its_owner(
    added, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        people_actions.update_person(actor=admin_user, person=added, email="moved@example.com")
    address = EmailAddress.objects.get(user=added)
    assert (address.email, address.verified) == ("moved@example.com", False)
    confirmation = mailoutbox[-1]
    assert confirmation.to == ["moved@example.com"]
    link = link_in(confirmation, "/accounts/confirm-email/")

    owner = Client()
    page = owner.get(link)
    assert page.status_code == 200
    owner.post(link)
    address.refresh_from_db()
    assert address.verified


def test_nobody_manages_their_own_manager(added, admin_user, make_person):
    boss = make_person("Katherine Johnson", email="katherine@example.com")
    people_actions.update_person(actor=admin_user, person=boss, manager=added)
    with pytest.raises(ActionRefused, match="cannot be their own manager"):
        people_actions.update_person(actor=admin_user, person=added, manager=boss)
    with pytest.raises(ActionRefused, match="cannot be their own manager"):
        people_actions.update_person(actor=admin_user, person=added, manager=added)


# --- Leaving and coming back ---------------------------------------------------------------------


def test_a_leaver_cannot_sign_in_and_no_longer_must_sign(make_person, admin_user, revision, client):
    person = make_person("Leaving Person", email="leaving@example.com")
    assert coverage.standings_for(person)[0].must_sign

    people_actions.deactivate_person(actor=admin_user, person=person)

    person.refresh_from_db()
    assert (person.is_active, person.left_at is not None) == (False, True)
    refused = client.post("/accounts/login/", {"login": person.email, "password": PASSWORD})
    assert refused["Location"] == "/accounts/inactive/"
    assert "_auth_user_id" not in client.session
    assert not coverage.uncovered_people(coverage.timeline_for(revision.policy)).filter(
        pk=person.pk
    )
    (record,) = audit("person_deactivated")
    assert record["details"]["left_at"] == ledger.utc_iso(person.left_at)

    people_actions.reactivate_person(actor=admin_user, person=person)
    person.refresh_from_db()
    assert (person.is_active, person.left_at) == (True, None)
    assert len(audit("person_reactivated")) == 1
    client.post("/accounts/login/", {"login": person.email, "password": PASSWORD})
    assert client.session["_auth_user_id"] == str(person.pk)


# --- The pages -----------------------------------------------------------------------------------


def test_adding_a_person_on_the_page(
    admin, audiences, mailoutbox, django_capture_on_commit_callbacks
):
    form = admin.get("/manage/people/new/")
    assert "Add a person" in text_of(form)

    refused = admin.post(
        "/manage/people/new/", {"email": "not an address", "full_name": "", "language": "en"}
    )
    assert refused.status_code == 400
    assert "Enter a valid email address." in field_error(refused, "email")
    assert not User.objects.filter(full_name="").exists()

    with django_capture_on_commit_callbacks(execute=True):
        added = admin.post(
            "/manage/people/new/",
            {
                "email": "page@example.com",
                "full_name": "  Page   Added ",
                "audiences": [audiences["contractors"].pk],
                "manager": "nobody@example.com",
                "language": "en",
            },
        )
    assert added.status_code == 400
    assert "Nobody active has this email address." in field_error(added, "manager")

    with django_capture_on_commit_callbacks(execute=True):
        added = admin.post(
            "/manage/people/new/",
            {
                "email": "page@example.com",
                "full_name": "  Page   Added ",
                "audiences": [audiences["contractors"].pk],
                "language": "en",
            },
            follow=True,
        )
    person = User.objects.get(email="page@example.com")
    assert person.full_name == "Page Added"
    assert [a.slug for a in person.audiences.all()] == ["contractors"]
    assert "Page Added is added, and an invitation is on its way" in text_of(added)
    assert mailoutbox[-1].to == ["page@example.com"]


def test_leaving_and_coming_back_on_the_page(admin, signer):
    future = admin.post(f"/manage/people/{signer.pk}/deactivate/", {"left_at": "2999-01-01"})
    assert future.status_code == 400
    assert "The leaving date is in the future." in field_error(future, "left_at")

    left = admin.post(f"/manage/people/{signer.pk}/deactivate/", {"left_at": ""}, follow=True)
    assert "is recorded as having left" in text_of(left)
    assert "Reactivate" in text_of(left)

    back = admin.post(f"/manage/people/{signer.pk}/reactivate/", follow=True)
    assert "is active again" in text_of(back)
    signer.refresh_from_db()
    assert signer.is_active


def test_the_people_list_downloads_as_the_import_s_columns(admin, added, make_person):
    boss = make_person("Katherine Johnson", email="katherine@example.com")
    added.manager = boss
    added.save()
    response = admin.post("/manage/people/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert list(rows[0]) == DIRECTORY_COLUMNS
    row = next(r for r in rows if r["email"] == "new.starter@example.com")
    assert row["audiences"] == "employees"
    assert row["manager_email"] == "katherine@example.com"
    assert (row["external_id"], row["employee_number"], row["active"]) == (
        "hr-1001",
        "E-1001",
        "yes",
    )
    (record,) = [p for p in audit("export") if p["details"]["what"] == "people-directory.csv"]
    assert record["details"]["rows"] == len(rows)
