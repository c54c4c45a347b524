"""The policy administrators' pages under /manage/: who may open them, and what each form does."""

import datetime as dt
import json
import re
import zoneinfo

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from acknowledgements import concerns as concern_actions
from acknowledgements.models import (
    Audience,
    ConcernReport,
    LedgerEntry,
    Notification,
    Policy,
    PolicyRevision,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import figures
from tests.conftest import POLICY_BODY
from tests.pages import field_error, text_of


def audit_actions() -> list[str]:
    return [
        json.loads(bytes(entry.payload))["action"]
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    ]


@pytest.fixture
def admin(logged_in, admin_user):
    return logged_in(admin_user)


@pytest.fixture
def draft(revision, admin_user):
    return policy_actions.create_draft(
        actor=admin_user,
        policy=revision.policy,
        version="2.0",
        body=POLICY_BODY.replace("Be excellent.", "Be excellent to each other."),
        change=PolicyRevision.Change.MATERIAL,
        change_summary="Section 1 now says to whom.",
    )


@pytest.fixture
def concern(signer):
    return concern_actions.report_concern(
        reporter=signer,
        category=ConcernReport.Category.SECURITY,
        description="A laptop was left unlocked.",
        anonymous=False,
        attachment=ContentFile(b"%PDF-1.7 evidence", name="photo.pdf"),
    )


def draft_data(**overrides) -> dict:
    employees = Audience.objects.get(slug="employees")
    later = timezone.localtime() + dt.timedelta(days=1)
    return {
        "version": "2.0",
        "body": POLICY_BODY + "\n## 3. New rules\n\nNew.\n",
        "change_summary": "Added section 3.",
        "change": "material",
        "effective_at": later.strftime("%Y-%m-%dT%H:%M"),
        "due_days": "14",
        "audiences": [str(employees.pk)],
    } | overrides


# --- Who may open them ----------------------------------------------------------------------------


def page_urls(revision, draft, concern, signer) -> list[str]:
    return [
        "/manage/",
        "/manage/policies/new/",
        f"/manage/policies/{revision.policy.slug}/",
        f"/manage/policies/{revision.policy.slug}/revisions/new/",
        f"/manage/revisions/{draft.pk}/",
        f"/manage/revisions/{draft.pk}/edit/",
        f"/manage/revisions/{draft.pk}/publish/",
        f"/manage/revisions/{revision.pk}/",
        "/manage/people/",
        f"/manage/people/{signer.pk}/",
        "/manage/concerns/",
        f"/manage/concerns/{concern.pk}/attachment/",
    ]


def post_urls(revision, draft, concern, signer) -> list[str]:
    return [
        "/manage/policies/new/",
        f"/manage/policies/{revision.policy.slug}/audiences/",
        f"/manage/policies/{revision.policy.slug}/revisions/new/",
        f"/manage/revisions/{draft.pk}/edit/",
        f"/manage/revisions/{draft.pk}/delete/",
        f"/manage/revisions/{draft.pk}/publish/",
        f"/manage/revisions/{revision.pk}/retry/",
        "/manage/preview/",
        f"/manage/people/{signer.pk}/audiences/",
        f"/manage/people/{signer.pk}/exemption/",
        f"/manage/concerns/{concern.pk}/status/",
    ]


@pytest.mark.parametrize("who", ["signer", "auditor"])
def test_signers_and_auditors_are_refused_everywhere(
    request, logged_in, revision, draft, concern, signer, who
):
    client = logged_in(request.getfixturevalue(who))
    before = LedgerEntry.objects.count(), PolicyRevision.objects.count()

    for url in page_urls(revision, draft, concern, signer):
        assert client.get(url).status_code == 403, url
    for url in post_urls(revision, draft, concern, signer):
        response = client.post(
            url,
            {
                "confirm": "yes",
                "reason": "x",
                "body": "x",
                f"concern-{concern.pk}-status": "closed",
            },
        )
        assert response.status_code == 403, url

    assert (LedgerEntry.objects.count(), PolicyRevision.objects.count()) == before
    assert ConcernReport.objects.get().status == ConcernReport.Status.NEW


def test_anonymous_visitors_are_sent_to_sign_in(client, revision, draft, concern, signer):
    for url in page_urls(revision, draft, concern, signer) + post_urls(
        revision, draft, concern, signer
    ):
        response = client.get(url) if url.endswith("/") else client.post(url)
        assert response.status_code in (302, 405), url
    for url in page_urls(revision, draft, concern, signer):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/manage/"), url


def test_administrators_open_every_page(admin, revision, draft, concern, signer):
    for url in page_urls(revision, draft, concern, signer):
        response = admin.get(url)
        assert response.status_code == 200, url
        if response.streaming:  # the attachment; reading it all closes the file
            b"".join(response.streaming_content)
        else:
            assert response.content.decode().count("<h1") == 1, url


def test_state_changes_are_post_only(admin, revision, draft, concern, signer):
    only_post = [
        f"/manage/policies/{revision.policy.slug}/audiences/",
        f"/manage/revisions/{draft.pk}/delete/",
        f"/manage/revisions/{revision.pk}/retry/",
        "/manage/preview/",
        f"/manage/people/{signer.pk}/audiences/",
        f"/manage/people/{signer.pk}/exemption/",
        f"/manage/concerns/{concern.pk}/status/",
    ]
    for url in only_post:
        assert admin.get(url).status_code == 405, url
    assert PolicyRevision.objects.filter(pk=draft.pk).exists()


def test_posting_without_the_csrf_token_is_refused(admin_user, revision, draft):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post("/manage/preview/", {"body": "# Hello"}).status_code == 403
    response = client.post(f"/manage/revisions/{draft.pk}/publish/")

    assert response.status_code == 403
    draft.refresh_from_db()
    assert not draft.is_published


def test_the_manage_link_is_shown_to_administrators_only(admin, auditor):
    auditor_client = Client()
    auditor_client.force_login(auditor)

    assert 'href="/manage/"' in admin.get("/verify/").content.decode()
    assert 'href="/manage/"' not in auditor_client.get("/verify/").content.decode()


# --- Overview and policies --------------------------------------------------------------------------


def test_the_overview_lists_each_policy_with_its_versions_and_emails(
    admin, revision, draft, make_person, django_capture_on_commit_callbacks
):
    make_person("Extra Person")
    scheduled = policy_actions.create_draft(
        actor=None,
        policy=revision.policy,
        version="1.1",
        body=POLICY_BODY + "Typo fixed.\n",
        change=PolicyRevision.Change.MINOR,
        effective_at=timezone.now() + dt.timedelta(days=3),
        announce=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=scheduled)

    page = text_of(admin.get("/manage/"))

    assert "Test Policy" in page
    assert "In effect Version 1.0" in page
    assert "Scheduled Version 1.1" in page
    assert "Draft 2.0" in page
    # 1.1 announced to the two people in Employees (the fixture's own 1.0 had no audience yet).
    sent = Notification.objects.filter(revision=scheduled, status="sent").count()
    assert sent == 2
    assert re.search(r"1\.1 \S.* 0 2 0", page)


def test_the_overview_shows_each_policy_s_completion_as_the_reports_count_it(
    admin, make_person, make_policy, publish, sign
):
    # For contractors: the administrator, overdue, would be sent to sign first.
    policy = make_policy("clean-desk", name="Clean Desk Policy", audience_slugs=("contractors",))
    current = publish(policy, "1.0", effective_at=timezone.now() - dt.timedelta(days=30))
    sign(make_person("Signed Person", audience="contractors"), current)
    for name in ("Late Person", "Later Person"):  # joined a year ago: overdue
        make_person(name, audience="contractors")
    recent = timezone.now() - dt.timedelta(days=2)
    make_person("New Person", audience="contractors", joined=recent)  # pending

    page = text_of(admin.get("/manage/"))

    (found,) = [f.completion for f in figures.dashboard(timezone.now()) if f.policy == policy]
    assert (found.signed, found.pending, found.overdue, found.total) == (1, 1, 2, 4)
    assert "Signatures 1 of 4 signed (25%) · 1 pending · 2 overdue" in page


def test_the_overview_costs_the_same_queries_however_many_policies(
    admin, signer, make_policy, publish, sign
):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin.get("/manage/").status_code == 200
        return len(captured)

    sign(signer, publish(make_policy("first"), "1.0"))
    queries()  # the first page of a process also reads the latest ledger check, then cached
    few = queries()
    for slug in ("second", "third", "fourth"):
        policy = make_policy(slug, name=slug.title())
        sign(signer, publish(policy, "1.0"))
        publish(policy, "2.0")
        policy_actions.create_draft(
            actor=None, policy=policy, version="3.0", body=POLICY_BODY, change="material"
        )

    assert queries() == few


def test_creating_a_policy(admin, admin_user, audiences):
    response = admin.post(
        "/manage/policies/new/",
        {
            "name": "Clean Desk Policy",
            "slug": "clean-desk",
            "owner": admin_user.pk,
            "audiences": [audiences["employees"].pk, audiences["contractors"].pk],
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/manage/policies/clean-desk/"
    policy = Policy.objects.get(slug="clean-desk")
    assert policy.owner == admin_user
    assert {a.slug for a in policy.audiences.all()} == {"employees", "contractors"}
    assert "policy_created" in audit_actions()
    assert "Clean Desk Policy was created" in text_of(admin.get(response["Location"]))


def test_a_policy_form_with_mistakes_changes_nothing(admin, admin_user, signer, policy):
    response = admin.post(
        "/manage/policies/new/",
        {"name": "Other", "slug": policy.slug, "owner": signer.pk},
    )

    assert response.status_code == 400
    assert "Another policy already uses this short name" in field_error(response, "slug")
    assert "Select a valid choice" in field_error(response, "owner")  # not an administrator
    assert "Choose at least one audience" in field_error(response, "audiences")
    assert Policy.objects.count() == 1


def test_the_policy_page_lists_revisions_with_signature_counts(
    admin, revision, draft, signer, sign
):
    sign(signer, revision)

    page = text_of(admin.get("/manage/policies/test-policy/"))

    assert re.search(r"2\.0 Draft Material When published — 14 —", page)
    assert re.search(r"1\.0 In effect Material .* 14 1", page)
    assert "Draft a new revision" in page


def test_changing_a_policy_s_audiences(admin, policy, audiences):
    url = f"/manage/policies/{policy.slug}/audiences/"

    refused = admin.post(url, {})
    assert refused.status_code == 400
    assert "Choose at least one audience" in field_error(refused, "audiences")
    assert [a.slug for a in policy.audiences.all()] == ["employees"]

    response = admin.post(url, {"audiences": [audiences["partners"].pk]})
    assert response.status_code == 302
    assert [a.slug for a in policy.audiences.all()] == ["partners"]
    assert audit_actions().count("policy_audiences_changed") == 1


# --- Drafts -----------------------------------------------------------------------------------------


def test_a_new_draft_starts_from_the_current_text_and_audiences(admin, revision):
    response = admin.get("/manage/policies/test-policy/revisions/new/")
    html = response.content.decode()

    assert "Be excellent." in html  # in the textarea and the preview
    assert '<h3 id="1-purpose">1. Purpose</h3>' in html  # the server-rendered preview
    employees = Audience.objects.get(slug="employees")
    assert re.search(rf'value="{employees.pk}"[^>]*checked', html)
    assert 'value="material"' in html and "must read and sign this version again" in html


def test_the_first_draft_of_a_new_policy_proposes_version_1_0(admin, make_policy, revision):
    make_policy("clean-desk", name="Clean Desk Policy")

    first = admin.get("/manage/policies/clean-desk/revisions/new/")
    later = admin.get("/manage/policies/test-policy/revisions/new/")

    assert first.context["form"]["version"].value() == "1.0"
    assert re.search(r'<input type="text" name="version" value="1\.0"', first.content.decode())
    assert not later.context["form"]["version"].value()  # the administrator chooses the next one
    saved = admin.post(
        "/manage/policies/clean-desk/revisions/new/", draft_data(version="1.0", body="# Rules\n")
    )
    assert saved.status_code == 302
    assert PolicyRevision.objects.get(policy__slug="clean-desk").version == "1.0"


def test_saving_a_draft_in_the_viewer_s_time_zone(admin, revision, admin_user):
    admin.cookies["portal_tz"] = "Europe/Paris"

    response = admin.post(
        "/manage/policies/test-policy/revisions/new/",
        draft_data(effective_at="2031-07-01T09:30", due_days="30"),
    )

    draft = PolicyRevision.objects.get(version="2.0")
    assert response.status_code == 302
    assert response["Location"] == f"/manage/revisions/{draft.pk}/"
    assert draft.effective_at == dt.datetime(2031, 7, 1, 7, 30, tzinfo=dt.UTC)  # CEST is UTC+2
    assert draft.due_days == 30
    assert draft.announce is True  # material changes are always announced
    assert draft.created_by == admin_user
    assert "## 3. New rules" in draft.body
    assert "draft_created" in audit_actions()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"version": "1.0"}, "version", "Version 1.0 of this policy already exists"),
        ({"version": "0.9"}, "version", "must come after the latest published version, 1.0"),
        ({"version": "v2"}, "version", "numbers separated by dots"),
        ({"version": ""}, "version", "This field is required"),
        (
            {"effective_at": "2020-01-01T10:00"},
            "effective_at",
            "cannot take effect before it is published",
        ),
        ({"effective_at": "tomorrow"}, "effective_at", "Enter a valid date/time"),
        ({"due_days": "0"}, "due_days", "greater than or equal to 1"),
        ({"due_days": "366"}, "due_days", "less than or equal to 365"),
        ({"body": ""}, "body", "This field is required"),
        ({"change": "huge"}, "change", "Select a valid choice"),
        ({"audiences": []}, "audiences", "Choose at least one audience"),
    ],
)
def test_a_draft_with_a_mistake_is_refused_next_to_the_field(
    admin, revision, overrides, field, message
):
    before = LedgerEntry.objects.count()

    response = admin.post("/manage/policies/test-policy/revisions/new/", draft_data(**overrides))

    assert response.status_code == 400
    assert message in field_error(response, field)
    assert PolicyRevision.objects.count() == 1
    assert LedgerEntry.objects.count() == before


def test_a_minor_draft_is_announced_only_when_asked(admin, revision):
    admin.post(
        "/manage/policies/test-policy/revisions/new/",
        draft_data(version="1.1", change="minor"),
    )
    admin.post(
        "/manage/policies/test-policy/revisions/new/",
        draft_data(version="1.2", change="minor", announce="on"),
    )

    assert PolicyRevision.objects.get(version="1.1").announce is False
    assert PolicyRevision.objects.get(version="1.2").announce is True


def test_editing_a_draft(admin, draft):
    url = f"/manage/revisions/{draft.pk}/edit/"
    form = admin.get(url)
    assert "Be excellent to each other." in form.content.decode()

    response = admin.post(url, draft_data(version="2.1", change_summary="Better words."))

    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.version, draft.change_summary) == ("2.1", "Better words.")
    assert "draft_edited" in audit_actions()


def test_editing_a_draft_keeps_its_own_label_and_refuses_another_s(admin, draft, revision):
    keep = admin.post(f"/manage/revisions/{draft.pk}/edit/", draft_data(version="2.0"))
    assert keep.status_code == 302

    clash = admin.post(f"/manage/revisions/{draft.pk}/edit/", draft_data(version="1.0"))
    assert clash.status_code == 400
    assert "already exists" in field_error(clash, "version")
    draft.refresh_from_db()
    assert draft.version == "2.0"


def test_a_past_effective_date_on_an_old_draft_starts_at_now_in_the_form(admin, revision):
    old = policy_actions.create_draft(
        actor=None,
        policy=revision.policy,
        version="3.0",
        body=POLICY_BODY,
        change="material",
        effective_at=timezone.now() - dt.timedelta(days=10),
    )
    html = admin.get(f"/manage/revisions/{old.pk}/edit/").content.decode()
    shown = re.search(r'name="effective_at" value="([^"]+)"', html).group(1)

    assert abs(
        dt.datetime.fromisoformat(shown).replace(tzinfo=dt.UTC) - timezone.now()
    ) < dt.timedelta(minutes=2)


def test_a_published_revision_cannot_be_edited(admin, revision):
    url = f"/manage/revisions/{revision.pk}/edit/"

    shown = admin.get(url, follow=True)
    posted = admin.post(url, draft_data(version="1.0", body="Changed."), follow=True)

    for response in (shown, posted):
        assert response.redirect_chain[-1][0] == f"/manage/revisions/{revision.pk}/"
        assert "A published revision cannot be edited" in text_of(response)
    revision.refresh_from_db()
    assert "Changed." not in revision.body
    assert "Edit draft" not in text_of(shown)


def test_deleting_a_draft_asks_first(admin, draft):
    url = f"/manage/revisions/{draft.pk}/delete/"

    asked = admin.post(url)
    assert asked.status_code == 200
    assert "Delete draft 2.0 of Test Policy?" in text_of(asked)
    assert PolicyRevision.objects.filter(pk=draft.pk).exists()

    done = admin.post(url, {"confirm": "yes"}, follow=True)
    assert done.redirect_chain[-1][0] == "/manage/policies/test-policy/"
    assert "Draft 2.0 of Test Policy was deleted" in text_of(done)
    assert not PolicyRevision.objects.filter(pk=draft.pk).exists()
    assert "draft_deleted" in audit_actions()


def test_a_published_revision_cannot_be_deleted(admin, revision):
    response = admin.post(
        f"/manage/revisions/{revision.pk}/delete/", {"confirm": "yes"}, follow=True
    )

    assert "A published revision cannot be deleted" in text_of(response)
    assert PolicyRevision.objects.filter(pk=revision.pk).exists()


# --- Preview ----------------------------------------------------------------------------------------


def test_the_preview_renders_sanitised_html(admin):
    response = admin.post(
        "/manage/preview/",
        {"body": "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "<strong>bold</strong>" in html
    assert "<script" not in html
    assert 'href="javascript:' not in html


def test_the_preview_refuses_a_huge_text(admin):
    response = admin.post("/manage/preview/", {"body": "a" * 200_001})

    assert response.status_code == 400
    assert "too long to preview" in response.content.decode()


# --- Diffs and publishing ------------------------------------------------------------------------


def test_the_revision_page_shows_the_demo_2_0_additions(admin_user, logged_in):
    call_command("seed_demo", force=True, verbosity=0)
    draft = PolicyRevision.objects.get(version="2.0")

    response = logged_in(admin_user).get(f"/manage/revisions/{draft.pk}/")
    html = response.content.decode()

    assert "Changes from version 1.1 to 2.0" in text_of(response)
    assert "<ins>### h. Misuse of Generative AI Tools</ins>" in html
    assert "New section 4h on the misuse of generative AI tools" in html


def test_the_revision_page_marks_removed_and_added_words(admin, draft):
    html = admin.get(f"/manage/revisions/{draft.pk}/").content.decode()

    assert "Be excellent<ins> to each other</ins>." in html
    assert "<del>Version 1.0.</del>" in html
    assert "Section 1 now says to whom." in html


def test_the_publish_page_states_the_effect_of_a_material_revision(admin, draft, make_person):
    make_person("Second Employee")
    make_person("A Contractor", audience="contractors")

    page = text_of(admin.get(f"/manage/revisions/{draft.pk}/publish/"))

    due = timezone.localtime(timezone.now() + dt.timedelta(days=14)).strftime("%-d %B %Y")
    assert "2 people in Employees will be emailed and asked to sign it again." in page
    assert f"Due by {due}: 14 days to sign from the day it takes effect" in page
    assert "It takes effect as soon as you publish it." in page
    assert "Signatures of version 1.0 stop counting from then." in page


def test_the_publish_page_of_a_first_version_asks_to_sign_it_by_a_date(admin, make_policy):
    policy = make_policy("clean-desk", name="Clean Desk Policy")
    first = policy_actions.create_draft(
        actor=None, policy=policy, version="1.0", body=POLICY_BODY, change="material", due_days=30
    )

    page = text_of(admin.get(f"/manage/revisions/{first.pk}/publish/"))

    due = timezone.localtime(timezone.now() + dt.timedelta(days=30)).strftime("%-d %B %Y")
    assert "1 person in Employees will be emailed and asked to sign it." in page
    assert f"Due by {due}: 30 days to sign from the day it takes effect" in page
    assert "someone who joins later has 30 days from the day they join" in page
    assert "again" not in page.split("What happens when you publish")[1]


def test_the_publish_page_states_the_effect_of_a_minor_revision(admin, revision, signer):
    quiet = policy_actions.create_draft(
        actor=None,
        policy=revision.policy,
        version="1.1",
        body=POLICY_BODY,
        change="minor",
        announce=False,
        effective_at=timezone.now() + dt.timedelta(days=2),
    )
    loud = policy_actions.create_draft(
        actor=None,
        policy=revision.policy,
        version="1.2",
        body=POLICY_BODY,
        change="minor",
        announce=True,
    )

    quiet_page = text_of(admin.get(f"/manage/revisions/{quiet.pk}/publish/"))
    loud_page = text_of(admin.get(f"/manage/revisions/{loud.pk}/publish/"))

    assert (
        "Nobody will be emailed (2 people in Employees): earlier signatures carry over; nobody is asked to sign again."
        in quiet_page
    )
    takes_effect = timezone.localtime(quiet.effective_at).strftime("%-d %B %Y")
    assert f"It takes effect on {takes_effect}" in quiet_page
    assert (
        "2 people in Employees will be emailed a notice: earlier signatures carry over; nobody is asked to sign again."
        in loud_page
    )


def test_publishing_from_the_confirmation_page(
    admin, draft, signer, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/manage/revisions/{draft.pk}/publish/")

    draft.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == f"/manage/revisions/{draft.pk}/"
    assert draft.is_published
    assert sorted(m.to[0] for m in mailoutbox) == ["ada@example.com", "grace@example.com"]

    page = admin.get(response["Location"])
    assert "Test Policy 2.0 is published." in text_of(page)
    assert "2 of 2 emails processed" in text_of(page)
    assert "data-refresh-seconds" not in page.content.decode()  # done: no more refreshing


def test_the_progress_refreshes_itself_while_emails_are_queued(admin, draft, signer, admin_user):
    policy_actions.publish_revision(
        actor=admin_user, revision=draft
    )  # no on-commit: nothing sent yet
    notification_actions.queue_announcements(revision=draft)

    page = admin.get(f"/manage/revisions/{draft.pk}/")

    assert 'data-refresh-seconds="3"' in page.content.decode()
    assert "0 of 2 emails processed" in text_of(page)


def test_the_page_says_the_emails_are_being_prepared_until_their_task_has_queued_them(
    admin, draft, signer, admin_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the announcing task not run yet
        policy_actions.publish_revision(actor=admin_user, revision=draft)

    preparing = admin.get(f"/manage/revisions/{draft.pk}/")
    assert "The emails are being prepared." in text_of(preparing)
    assert 'data-refresh-seconds="3"' in preparing.content.decode()

    notification_actions.announce_revision.call(draft.pk)
    queued = text_of(admin.get(f"/manage/revisions/{draft.pk}/"))
    assert "being prepared" not in queued
    assert "0 of 2 emails processed" in queued


def test_retrying_failed_emails(
    admin, draft, admin_user, signer, django_capture_on_commit_callbacks
):
    policy_actions.publish_revision(actor=admin_user, revision=draft)
    notification_actions.queue_announcements(revision=draft)
    Notification.objects.update(status=Notification.Status.FAILED, last_error="SMTPException: no")
    page = admin.get(f"/manage/revisions/{draft.pk}/")
    assert "Retry failed emails" in text_of(page)
    assert "SMTPException: no" in text_of(page)

    with django_capture_on_commit_callbacks(execute=False):
        response = admin.post(f"/manage/revisions/{draft.pk}/retry/", follow=True)

    assert "2 email(s) will be sent again." in text_of(response)
    assert not Notification.objects.filter(status=Notification.Status.FAILED).exists()
    assert "notifications_retried" in audit_actions()


def test_the_translations_panel_has_one_control_per_language(admin, revision, draft):
    def panel(revision) -> str:
        page = text_of(admin.get(f"/manage/revisions/{revision.pk}/"))
        return page.split("Translations", 1)[1].split("Show the full text", 1)[0]

    assert "Translate into Français" in panel(draft)
    policy_actions.save_translation(actor=None, revision=draft, language="fr", body="# Règles\n")
    drafted = panel(draft)
    assert "Français · Edit the Français translation" in drafted
    assert "Translate into" not in drafted

    assert "Translate into Français" in panel(revision)
    frozen = policy_actions.save_translation(
        actor=None, revision=revision, language="fr", body="# Règles\n"
    )
    published = panel(revision)
    assert "Translate into" not in published and "Edit" not in published
    assert f"Français · View the Français translation · SHA-256: {frozen.text_sha256}" in published
    html = admin.get(f"/manage/revisions/{revision.pk}/").content.decode()
    assert 'href="/policies/test-policy/v/1.0/?lang=fr"' in html


def test_a_published_revision_cannot_be_published_again(admin, revision):
    before = LedgerEntry.objects.count()

    response = admin.post(f"/manage/revisions/{revision.pk}/publish/", follow=True)

    assert "already published" in text_of(response)
    assert LedgerEntry.objects.count() == before


# --- People -----------------------------------------------------------------------------------------


def test_finding_people_by_name_email_and_audience(admin, make_person):
    make_person("Zora Neale", email="zora@example.com")
    make_person("Carl Contractor", email="carl@example.com", audience="contractors")

    by_name = text_of(admin.get("/manage/people/", {"q": "zora"}))
    by_email = text_of(admin.get("/manage/people/", {"q": "CARL@"}))
    by_audience = text_of(admin.get("/manage/people/", {"audience": "contractors"}))

    assert "Zora Neale" in by_name and "Carl Contractor" not in by_name
    assert "Carl Contractor" in by_email and "Zora Neale" not in by_email
    assert "1 person" in by_audience and "Carl Contractor" in by_audience


def test_the_people_list_is_paginated_and_keeps_the_search(admin, make_person):
    for number in range(55):
        make_person(f"Paged Person {number:02d}")

    first = admin.get("/manage/people/", {"q": "paged"})
    second = admin.get("/manage/people/", {"q": "paged", "page": 2})

    assert "Page 1 of 2" in text_of(first)
    assert 'href="?q=paged&amp;page=2"' in first.content.decode()
    assert "Paged Person 54" in text_of(second)


def test_granting_and_lifting_a_gate_exemption(admin, make_person):
    service_account = make_person("Backup Robot")
    url = f"/manage/people/{service_account.pk}/exemption/"

    refused = admin.post(url, {"reason": "  "})
    assert refused.status_code == 400
    assert "Give the reason for the exemption" in field_error(refused, "reason")
    service_account.refresh_from_db()
    assert not service_account.is_gate_exempt

    granted = admin.post(url, {"reason": "Nightly backup account"}, follow=True)
    service_account.refresh_from_db()
    assert service_account.gate_exemption == "Nightly backup account"
    assert "Backup Robot is exempt from the signing gate." in text_of(granted)
    assert "Exempt" in text_of(admin.get("/manage/people/", {"q": "robot"}))

    admin.post(url, {"lift": "1"})
    service_account.refresh_from_db()
    assert not service_account.is_gate_exempt
    assert audit_actions()[-2:] == ["gate_exemption_granted", "gate_exemption_lifted"]


def test_changing_a_person_s_audiences(admin, signer, audiences):
    url = f"/manage/people/{signer.pk}/audiences/"

    refused = admin.post(url, {"audiences": ["999999"]})
    assert refused.status_code == 400
    assert "Select a valid choice" in field_error(refused, "audiences")
    assert [a.slug for a in signer.audiences.all()] == ["employees"]

    saved = admin.post(
        url, {"audiences": [audiences["employees"].pk, audiences["partners"].pk]}, follow=True
    )
    assert "The audiences of Ada Lovelace are saved." in text_of(saved)
    assert sorted(a.slug for a in signer.audiences.all()) == ["employees", "partners"]
    assert "person_audiences_changed" in audit_actions()

    admin.post(url, {})  # no audience at all: no policy applies to them any more
    assert not signer.audiences.exists()


def test_a_person_s_page_shows_their_policies(admin, signer, revision):
    page = text_of(admin.get(f"/manage/people/{signer.pk}/"))

    assert "ada@example.com" in page
    assert "Test Policy 1.0 ○ Not signed yet: due" in page


# --- Concerns ---------------------------------------------------------------------------------------


def test_moving_a_concern_along(admin, concern):
    field = f"concern-{concern.pk}-status"

    response = admin.post(
        f"/manage/concerns/{concern.pk}/status/",
        {field: "in_review", "shown_status": "new"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/manage/concerns/?status=new"
    concern.refresh_from_db()
    assert concern.status == ConcernReport.Status.IN_REVIEW
    assert "concern_status_changed" in audit_actions()

    refused = admin.post(f"/manage/concerns/{concern.pk}/status/", {field: "solved"}, follow=True)
    assert "Choose one of the statuses listed" in text_of(refused)
    concern.refresh_from_db()
    assert concern.status == ConcernReport.Status.IN_REVIEW


def test_the_concern_list_filters_by_status(admin, concern, signer):
    closed = concern_actions.report_concern(
        reporter=signer, category="other", description="Closed one.", anonymous=False
    )
    concern_actions.set_concern_status(actor=None, report=closed, status="closed")

    all_page = text_of(admin.get("/manage/concerns/"))
    new_page = text_of(admin.get("/manage/concerns/", {"status": "new"}))

    assert "A laptop was left unlocked." in all_page and "Closed one." in all_page
    assert "A laptop was left unlocked." in new_page and "Closed one." not in new_page


def test_times_are_shown_in_the_viewer_s_zone(admin, revision):
    admin.cookies["portal_tz"] = "Asia/Tokyo"
    page = text_of(admin.get(f"/manage/revisions/{revision.pk}/"))
    tokyo = timezone.localtime(revision.effective_at, zoneinfo.ZoneInfo("Asia/Tokyo"))

    assert tokyo.strftime("%H:%M JST") in page
