"""Importing people from an HR export: a plan per row, applied in audited batches, idempotent."""

import io
import re

import pytest
from allauth.account.models import EmailAddress
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from acknowledgements.evidence import ledger
from acknowledgements.models import AudienceSpan, LedgerEntry, User
from acknowledgements.people import import_apply, import_plan
from acknowledgements.people.import_plan import Outcome
from acknowledgements.roles import POLICY_ADMINISTRATORS
from tests.pages import field_error, text_of

AP = "\u2019"  # typographic apostrophe
HEADER = "email,full_name,audiences,joined_at,manager_email,external_id,employee_number,active\n"


def csv_of(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(row + "\n" for row in rows)).encode()


def imported_batches() -> list[dict]:
    payloads = (
        ledger.decode(e)
        for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    )
    return [p for p in payloads if p["action"] == "people_imported"]


def outcomes(plan) -> dict[int, str]:
    return {row.line: row.outcome.value for row in plan.rows}


@pytest.fixture
def hr_file(audiences) -> bytes:
    return csv_of(
        "boss@example.com,Bea Boss,employees,2024-01-15,,hr-1,E-1,yes",
        "worker@example.com,Will Worker,Employees;contractors,2025-03-01,boss@example.com,hr-2,,yes",
    )


def test_a_new_file_creates_people_with_audiences_managers_and_one_audit_row(
    db, hr_file, admin_user
):
    plan = import_apply.apply_import(hr_file, actor=admin_user, filename="hr.csv")

    assert outcomes(plan) == {2: "create", 3: "create"}
    worker = User.objects.get(email="worker@example.com")
    assert sorted(a.slug for a in worker.audiences.all()) == ["contractors", "employees"]
    assert worker.manager.email == "boss@example.com"
    assert worker.external_id == "hr-2"
    assert worker.date_joined.date().isoformat() == "2025-03-01"
    assert not worker.has_usable_password()
    # The census counts them by audiences at once, from the membership history begun now.
    assert AudienceSpan.objects.filter(person=worker, end__isnull=True).exists()
    assert {m.begun_by for m in worker.memberships.all()} == {"import:hr.csv"}
    assert EmailAddress.objects.filter(user=worker, verified=False).exists()
    (batch,) = imported_batches()
    assert batch["actor"]["email"] == admin_user.email
    assert batch["details"]["file"] == "hr.csv"
    assert [r["outcome"] for r in batch["details"]["rows"]] == ["create", "create"]


def test_importing_the_same_file_again_changes_nothing(db, hr_file):
    import_apply.apply_import(hr_file, actor=None, filename="hr.csv")
    before = list(User.objects.order_by("pk").values())

    plan = import_apply.apply_import(hr_file, actor=None, filename="hr.csv")

    assert set(outcomes(plan).values()) == {"unchanged"}
    assert list(User.objects.order_by("pk").values()) == before
    assert len(imported_batches()) == 1


def test_movers_and_leavers_are_changed_and_audited_before_and_after(db, hr_file):
    import_apply.apply_import(hr_file, actor=None, filename="hr.csv")
    moved = csv_of(
        # Keyed by external id: the address changes with the name.
        "bea.boss@example.com,Bea Boss-Smith,employees,2024-01-15,,hr-1,E-1,yes",
        "worker@example.com,Will Worker,partners,2025-03-01,boss@example.com,hr-2,,no",
    )

    plan = import_apply.apply_import(moved, actor=None, filename="moves.csv")

    assert outcomes(plan) == {2: "change", 3: "deactivate"}
    boss = User.objects.get(external_id="hr-1")
    assert (boss.email, boss.full_name) == ("bea.boss@example.com", "Bea Boss-Smith")
    worker = User.objects.get(external_id="hr-2")
    assert (worker.is_active, worker.left_at is not None) == (False, True)
    assert [a.slug for a in worker.audiences.all()] == ["partners"]
    assert worker.manager == boss  # still the same person after her address changed
    rows = imported_batches()[-1]["details"]["rows"]
    assert rows[0]["changes"]["email"] == {
        "before": "boss@example.com",
        "after": "bea.boss@example.com",
    }
    assert rows[1]["changes"]["audiences"] == {
        "before": ["contractors", "employees"],
        "after": ["partners"],
    }


def test_bad_rows_are_refused_with_their_reasons_and_change_nothing(db, audiences, make_person):
    taken = make_person("Taken", email="taken@example.com")
    taken.external_id = "hr-taken"
    taken.save()
    data = csv_of(
        "not-an-address,Somebody,employees,,,,,yes",
        "a@example.com,A Person,astronauts,,,,,yes",
        "b@example.com,B Person,employees,,nobody@example.com,,,yes",
        "c@example.com,C Person,employees,yesterday,,,,yes",
        "d@example.com,D Person,employees,,,,,maybe",
        "e@example.com,E Person,employees,,,,,yes",
        "e@example.com,E Again,employees,,,,,yes",
        "taken@example.com,Taken,employees,,,hr-other,,yes",
        "f@example.com,F Person,employees,,f@example.com,,,yes",
    )

    plan = import_plan.plan_import(data)

    reasons = {row.line: row.reasons for row in plan.rows if row.outcome == Outcome.REFUSED}
    assert reasons == {
        2: ["not an email address: 'not-an-address'"],
        3: ["unknown audience astronauts"],
        4: ["manager nobody@example.com not found"],
        5: ["joined_at is not a date: 'yesterday'"],
        6: ["active must be yes or no, not 'maybe'"],
        8: ["the same person as line 7"],
        9: ["taken@example.com already has the external id hr-taken, not hr-other"],
        10: ["a person cannot be their own manager"],
    }
    assert outcomes(plan)[7] == "create"
    import_apply.apply_import(data, actor=None, filename="bad.csv")
    assert set(User.objects.values_list("email", flat=True)) >= {"e@example.com"}
    assert not User.objects.filter(email__in=["a@example.com", "b@example.com"]).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,mail\nx,y\n", "The file has no column email, full_name (its first line)."),
        (b"email,full_name,shoe_size\n", "Unknown column shoe_size"),
        ("email,full_name\nzoë@example.com,Zoë\n".encode("latin-1"), "The file is not UTF-8"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(db, data, message):
    with pytest.raises(import_plan.ImportRefused, match=re.escape(message)):
        import_plan.plan_import(data)


def test_the_command_previews_with_dry_run_and_imports_without(db, hr_file, tmp_path):
    path = tmp_path / "hr.csv"
    path.write_bytes(hr_file)
    out = io.StringIO()

    call_command("import_people", str(path), "--dry-run", stdout=out)
    assert "Would import 2 rows of hr.csv: 2 create" in out.getvalue()
    assert not User.objects.filter(email="boss@example.com").exists()

    call_command("import_people", str(path), "--invite", stdout=out)
    assert "Imported 2 rows of hr.csv: 2 create" in out.getvalue()
    assert "Invitations queued: 2." in out.getvalue()
    assert User.objects.filter(email="boss@example.com", invited_at__isnull=False).exists()

    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_people", str(tmp_path / "missing.csv"))


# --- On the people page ------------------------------------------------------------------------


@pytest.fixture
def admin(logged_in, admin_user):
    return logged_in(admin_user)


def test_an_upload_is_checked_shown_and_applied_only_when_confirmed(
    admin, hr_file, django_capture_on_commit_callbacks
):
    empty = admin.post("/manage/people/import/", {})
    assert empty.status_code == 400
    assert "Choose the CSV file to import." in field_error(empty, "file")

    bad_row = hr_file + b"nobody,Nobody,employees,,,,,yes\n"
    with django_capture_on_commit_callbacks(execute=True):
        asked = admin.post(
            "/manage/people/import/", {"file": SimpleUploadedFile("hr.csv", bad_row)}
        )
    assert asked.status_code == 302
    checked = admin.get(asked["Location"])
    text = text_of(checked)
    assert "Checked: waiting for your confirmation" in text
    assert "People to add 2" in text
    assert "Rows refused 1" in text
    assert "not an email address: 'nobody'" in text
    assert not User.objects.filter(email="boss@example.com").exists()  # nothing yet

    with django_capture_on_commit_callbacks(execute=True):
        admin.post(f"{asked['Location']}apply/")
    assert "Applied on" in text_of(admin.get(asked["Location"]))
    assert User.objects.filter(email="boss@example.com").exists()
    (batch,) = imported_batches()
    assert batch["details"]["file"] == "hr.csv"

    again = admin.post(f"{asked['Location']}apply/", follow=True)
    assert "Only an import that was checked and not applied can be applied." in text_of(again)


def test_a_file_that_is_not_csv_is_reported_and_changes_nothing(
    admin, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        asked = admin.post(
            "/manage/people/import/",
            {"file": SimpleUploadedFile("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00")},
        )
    page = text_of(admin.get(asked["Location"]))
    assert "The file could not be imported; nothing changed." in page
    assert "The file is not UTF-8 text" in page


def test_the_reasons_are_shown_in_the_language_of_whoever_reads_the_page(
    client, logged_in, admin_user, make_person, hr_file, django_capture_on_commit_callbacks
):
    """The plan is made by a task that does not know who will read it; each reader sees the
    reasons, and the fields a row changes, in their own language."""
    french = make_person("Hélène Martin", email="helene@example.com", role=POLICY_ADMINISTRATORS)
    french.preferred_language = "fr"
    french.save()
    make_person("Carl Clerk", email="carl@example.com")
    data = hr_file + csv_of(
        "nobody,Nobody,employees,,,,,yes",
        "x@example.com,X Person,astronauts;cosmonauts,,,,,maybe",
        "carl@example.com,Carl Clerk-Smith,employees,,,,,yes",
        header="",
    )
    page = logged_in(french)
    with django_capture_on_commit_callbacks(execute=True):
        asked = page.post("/manage/people/import/", {"file": SimpleUploadedFile("hr.csv", data)})

    seen_in_french = text_of(page.get(asked["Location"]))
    assert "pas une adresse e-mail : 'nobody'" in seen_in_french
    assert (
        "populations inconnues : astronauts, cosmonauts; active doit valoir yes ou no, pas 'maybe'"
        in seen_in_french
    )
    assert "nom complet" in seen_in_french  # what the row of an existing person changes
    assert "not an email address" not in seen_in_french

    page.post("/accounts/logout/")
    seen_in_english = text_of(logged_in(admin_user).get(asked["Location"]))
    assert "not an email address: 'nobody'" in seen_in_english
    assert (
        "unknown audiences astronauts, cosmonauts; active must be yes or no, not 'maybe'"
        in seen_in_english
    )
    assert "full name" in seen_in_english


def test_a_file_refused_whole_is_explained_in_the_language_of_who_uploaded_it(
    logged_in, admin_user, django_capture_on_commit_callbacks
):
    admin_user.preferred_language = "fr"
    admin_user.save()
    page = logged_in(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        asked = page.post(
            "/manage/people/import/",
            {"file": SimpleUploadedFile("hr.csv", b"name,mail\nx,y\n")},
        )

    seen = text_of(page.get(asked["Location"]))
    assert f"Le fichier n{AP}a pas de colonne email, full_name (sur sa première ligne)." in seen
