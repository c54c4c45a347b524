"""Publishing revisions and the emails that follow: version rules, freezing, the fan-out in
batches, failures and retries, reminders, the gate exemption and concern reports (services)."""

import datetime as dt
import json
import smtplib
from collections import Counter
from io import StringIO

import pytest
import time_machine
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from acknowledgements import concerns as concern_actions
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Announcement,
    Audience,
    ConcernReport,
    LedgerEntry,
    Notification,
    PolicyRevision,
)
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending as notifications
from acknowledgements.notifications import sending as notifications_sending
from acknowledgements.people import actions as people_actions
from acknowledgements.policies import actions as policy_actions
from acknowledgements.policies import text as policy_text
from acknowledgements.policies import versions
from acknowledgements.standings import coverage
from tests.conftest import POLICY_BODY

MATERIAL = PolicyRevision.Change.MATERIAL
MINOR = PolicyRevision.Change.MINOR


class FailingBackend(EmailBackend):
    """The test outbox, except that the addresses in `refused` make the server say no."""

    refused: set[str] = set()

    def send_messages(self, messages):
        for message in messages:
            bad = self.refused.intersection(message.to)
            if bad:
                raise smtplib.SMTPRecipientsRefused(dict.fromkeys(bad, (550, b"No such user")))
        return super().send_messages(messages)


@pytest.fixture
def failing_mailer(settings):
    settings.MAILERS = {"default": {"BACKEND": "tests.test_publishing.FailingBackend"}}
    FailingBackend.refused = set()
    yield FailingBackend
    FailingBackend.refused = set()


def audit_entries(action: str | None = None) -> list[dict]:
    payloads = [
        json.loads(bytes(entry.payload))
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
    ]
    return [p for p in payloads if action is None or p["action"] == action]


def draft_of(policy, version: str, **fields) -> PolicyRevision:
    values = {"body": POLICY_BODY + f"\nVersion {version}.\n", "change": MATERIAL} | fields
    return policy_actions.create_draft(actor=None, policy=policy, version=version, **values)


def recipients(mailoutbox) -> Counter:
    return Counter(address for message in mailoutbox for address in message.to)


@pytest.fixture
def employees(make_person):
    """Five employees (plus anyone else a test makes) and a contractor the policy ignores."""
    people = [make_person(f"Employee {n}", email=f"employee{n}@example.com") for n in range(5)]
    make_person("Carla Contractor", email="carla@example.com", audience="contractors")
    return people


# --- Version labels --------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["2", "2.0", "2.1.1", "10.0.0.1", "0.9"])
def test_version_labels_are_numbers_separated_by_dots(policy, label):
    versions.check_version_label(policy=policy, version=label)


@pytest.mark.parametrize("label", ["", "v2", "2.", ".2", "2..0", "2.0-beta", "1.2.3.4.5", "12345"])
def test_other_version_labels_are_refused(policy, label):
    with pytest.raises(ActionRefused, match="Write the version as numbers separated by dots"):
        versions.check_version_label(policy=policy, version=label)


def test_a_version_label_is_used_once_per_policy(policy, make_policy):
    draft_of(policy, "2.0")

    with pytest.raises(
        ActionRefused, match=r"Version 2\.0 of this policy already exists; choose another label\."
    ):
        draft_of(policy, "2.0")
    draft_of(make_policy("other"), "2.0")  # another policy may use it


def test_versions_must_increase_past_the_latest_published(policy, publish):
    publish(policy, "1.9")

    with pytest.raises(
        ActionRefused,
        match=r"Versions increase: this one must come after the latest published version, 1\.9\.",
    ):
        draft_of(policy, "1.8")
    assert draft_of(policy, "1.10").version == "1.10"  # numbers, not text: 10 comes after 9


def test_a_draft_overtaken_by_a_higher_published_version_cannot_be_published(policy, publish):
    low = draft_of(policy, "1.5")
    publish(policy, "2.0")

    with pytest.raises(ActionRefused, match=r"after the latest published version, 2\.0"):
        policy_actions.publish_revision(actor=None, revision=low)
    low.refresh_from_db()
    assert not low.is_published


# --- Publishing --------------------------------------------------------------------------------------


def test_publishing_freezes_the_text_html_and_hash(policy, admin_user):
    draft = draft_of(policy, "1.0", body="# Rules\r\n\r\nBe kind.   \r\n")
    assert (draft.body_html, draft.text_sha256) == ("", "")

    published = policy_actions.publish_revision(actor=admin_user, revision=draft)

    published.refresh_from_db()
    assert published.status == PolicyRevision.Status.PUBLISHED
    assert published.body == "# Rules\n\nBe kind.\n"
    assert published.text_sha256 == policy_text.text_sha256(published.body)
    assert published.body_html == policy_text.render_html(published.body)
    assert (published.published_by, published.published_at is not None) == (admin_user, True)
    with pytest.raises(ActionRefused, match="A published revision cannot be edited"):
        policy_actions.update_draft(actor=None, revision=published, audiences=[], body="Changed.")
    with pytest.raises(ActionRefused, match="A published revision cannot be deleted"):
        policy_actions.delete_draft(actor=None, revision=published)
    with pytest.raises(ActionRefused, match="already published"):
        policy_actions.publish_revision(actor=None, revision=published)


def test_a_past_effective_date_becomes_the_moment_of_publication(policy):
    draft = draft_of(policy, "1.0", effective_at=timezone.now() - dt.timedelta(days=3))
    moment = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=5)

    with time_machine.travel(moment, tick=False):
        published = policy_actions.publish_revision(actor=None, revision=draft)

    assert published.effective_at == moment == published.published_at


def test_a_future_effective_date_is_kept(policy):
    later = timezone.now() + dt.timedelta(days=7)
    published = policy_actions.publish_revision(
        actor=None, revision=draft_of(policy, "1.0", effective_at=later)
    )

    assert published.effective_at == later
    assert coverage.timeline_for(policy).upcoming == published


def test_publishing_needs_an_audience(policy):
    draft = draft_of(policy, "1.0", audiences=[])

    with pytest.raises(ActionRefused, match="Choose at least one audience before publishing"):
        policy_actions.publish_revision(actor=None, revision=draft)


def test_each_step_is_audited_with_its_action_name(policy, admin_user, audiences):
    draft = policy_actions.create_draft(
        actor=admin_user, policy=policy, version="1.0", body=POLICY_BODY, change=MATERIAL
    )
    policy_actions.update_draft(
        actor=admin_user, revision=draft, audiences=[audiences["partners"]], due_days=30
    )
    policy_actions.publish_revision(actor=admin_user, revision=draft)
    throwaway = draft_of(policy, "2.0")
    policy_actions.delete_draft(actor=admin_user, revision=throwaway)

    actions = [entry["action"] for entry in audit_entries()]
    assert actions == [
        "policy_created",
        "draft_created",
        "draft_edited",
        "revision_published",
        "draft_created",
        "draft_deleted",
    ]
    edited = audit_entries("draft_edited")[0]
    assert edited["details"]["changed"] == ["due_days", "audiences"]
    assert edited["actor"]["email"] == admin_user.email
    published = audit_entries("revision_published")[0]["details"]
    assert published["text_sha256"] == PolicyRevision.objects.get(version="1.0").text_sha256
    assert published["audiences"] == ["partners"]


def test_a_material_revision_supersedes_the_previous_one_in_the_ledger(policy, publish):
    first = publish(policy, "1.0")
    publish(policy, "1.1", change=MINOR)
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.SUPERSEDED).exists()

    second = publish(policy, "2.0")

    entry = LedgerEntry.objects.get(kind=LedgerEntry.Kind.SUPERSEDED)
    payload = json.loads(bytes(entry.payload))
    assert entry.revision.version == "1.1"  # the one in effect until then
    assert payload["superseded_version"] == "1.1"
    assert (payload["by_version"], payload["by_revision_id"]) == ("2.0", second.pk)
    assert first.pk != entry.revision_id


# --- Announcements -------------------------------------------------------------------------------------


def test_a_material_revision_emails_everyone_in_its_audiences_once(
    policy, publish, employees, mailoutbox, django_capture_on_commit_callbacks
):
    publish(policy, "1.0")
    draft = draft_of(policy, "2.0", change_summary="Section 3 on generative AI tools.", due_days=21)

    with django_capture_on_commit_callbacks(execute=True):
        published = policy_actions.publish_revision(actor=None, revision=draft)

    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees})
    message = next(m for m in mailoutbox if m.to == [employees[0].email])
    due = (published.effective_at + dt.timedelta(days=21)).strftime("%-d %B %Y")
    assert message.subject == f"Action required: sign Test Policy 2.0 by {due}"
    assert "Test Policy has a new version, 2.0" in message.body
    assert "Section 3 on generative AI tools." in message.body
    assert f"Please sign by {due}." in message.body
    assert "http://testserver/policies/test-policy/" in message.body
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    assert "Section 3 on generative AI tools." in html
    assert 'href="http://testserver/policies/test-policy/"' in html
    assert notifications.progress(published) == notifications.Progress(0, 0, 5, 0)


def test_a_first_version_asks_people_to_sign_it_not_to_sign_it_again(
    policy, employees, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    first = mailoutbox[0]
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=draft_of(policy, "2.0"))
    second = mailoutbox[0]

    assert "Test Policy applies to you from" in first.body
    assert "Please read it and sign it." in first.body
    assert "again" not in first.body + first.alternatives[0].content
    assert "Test Policy has a new version, 2.0" in second.body
    assert "please read it and sign it again" in second.body
    assert "sign it again" in second.alternatives[0].content


def test_announcing_again_sends_nobody_a_second_email(
    policy, employees, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        published = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))

    notification_actions.announce_revision.enqueue(published.pk)  # a retried task

    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees})


def test_an_announcement_whose_task_was_lost_is_queued_again_by_recover_work(
    policy, employees, mailoutbox, django_capture_on_commit_callbacks
):
    # The announcing task is lost (its worker stopped before it committed anything).
    with django_capture_on_commit_callbacks(execute=False):
        published = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    assert not Notification.objects.exists()
    assert notifications_sending.progress(published).preparing

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("recover_work", stdout=out)
    call_command("recover_work", stdout=out)

    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees})
    assert Announcement.objects.get().revision == published
    assert not notifications_sending.progress(published).preparing
    first, second = out.getvalue().splitlines()
    assert "announcements queued again: 1;" in first
    assert "announcements queued again: 0;" in second


def test_a_stopped_announcement_leaves_no_email_queued_and_no_record(
    policy, employees, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        published = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    monkeypatch.setattr(notifications_sending, "QUEUE_BLOCK", 2)  # several blocks of emails
    written = []

    def stop_once_the_emails_are_written(rows, **options):
        written.append(Notification.objects.count())
        raise SystemExit("the worker stops")  # what db_worker's SIGTERM handler raises

    monkeypatch.setattr(Announcement.objects, "bulk_create", stop_once_the_emails_are_written)
    with pytest.raises(SystemExit):
        notification_actions.announce_revision.call(published.pk)

    assert written == [len(employees)]  # every email of the announcement, in several blocks

    # Nothing half done: recover_work starts the announcement again from nothing.
    assert not Notification.objects.exists()
    assert not Announcement.objects.exists()
    assert notification_actions.resume_announcements() == 1


def test_recovery_queues_no_announcement_for_a_minor_revision_published_quietly(
    policy, publish, employees, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
        policy_actions.publish_revision(
            actor=None, revision=draft_of(policy, "1.1", change=MINOR, announce=False)
        )
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert notification_actions.resume_announcements() == 0
    assert mailoutbox == []
    assert Announcement.objects.count() == 1  # 1.0's


def test_a_minor_revision_emails_nobody_and_earlier_signatures_still_count(
    policy, publish, employees, sign, mailoutbox, django_capture_on_commit_callbacks
):
    first = publish(policy, "1.0")
    sign(employees[0], first)

    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(
            actor=None, revision=draft_of(policy, "1.1", change=MINOR, announce=False)
        )

    assert mailoutbox == []
    (standing,) = coverage.standings_for(employees[0])
    assert standing.current.version == "1.1"
    assert standing.status == coverage.Status.SIGNED
    assert standing.last_signed.revision == first


def test_each_person_gets_their_own_name_escaped_in_the_html(
    policy, make_person, mailoutbox, django_capture_on_commit_callbacks
):
    people = [
        make_person("Ada <b>Lovelace</b>", email="ada@example.com"),
        make_person("Tom & Jerry O'Neil", email="tom@example.com"),
        make_person("Zoë Français", email="zoe@example.com"),
    ]
    people[2].preferred_language = "fr"
    people[2].save(update_fields=["preferred_language"])

    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))

    messages = {message.to[0]: message for message in mailoutbox}
    assert set(messages) == {person.email for person in people}
    ada, tom, zoe = (messages[person.email] for person in people)
    assert "Hello Ada <b>Lovelace</b>," in ada.body
    assert "Hello Ada &lt;b&gt;Lovelace&lt;/b&gt;," in ada.alternatives[0].content
    assert "Tom & Jerry O'Neil" in tom.body and "Ada" not in tom.body
    assert "Tom &amp; Jerry O&#x27;Neil" in tom.alternatives[0].content
    assert "Bonjour Zoë Français" in zoe.body
    for message in mailoutbox:
        assert notifications.NAME_STAND_IN not in message.body + message.alternatives[0].content


def test_an_announced_minor_revision_says_no_action_is_needed(
    policy, publish, employees, mailoutbox, django_capture_on_commit_callbacks
):
    publish(policy, "1.0")

    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(
            actor=None,
            revision=draft_of(
                policy, "1.1", change=MINOR, announce=True, change_summary="Typo in section 2."
            ),
        )

    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees})
    message = mailoutbox[0]
    assert message.subject == "Test Policy 1.1: a minor update, no action needed"
    assert "you do not need to sign again" in message.body
    assert "Typo in section 2." in message.body
    assert message.alternatives[0].mimetype == "text/html"


# --- The fan-out in batches ------------------------------------------------------------------------


def test_a_fan_out_cut_off_halfway_finishes_without_sending_anyone_twice(
    settings, policy, make_person, mailoutbox
):
    settings.PORTAL_EMAIL_BATCH_SIZE = 3
    people = [make_person(f"Person {n}", email=f"p{n}@example.com") for n in range(10)]
    revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    assert notification_actions.queue_announcements(revision=revision) == 10

    # The worker sends one batch, then dies before the next.
    assert notifications.send_batch() == 3
    assert len(mailoutbox) == 3
    assert notifications.progress(revision) == notifications.Progress(7, 0, 3, 0)

    # Queuing again (a retried announce task) adds nobody; the next worker sends the rest.
    notification_actions.queue_announcements(revision=revision)
    notifications_sending.send_notifications.enqueue()

    assert recipients(mailoutbox) == Counter({p.email: 1 for p in people})
    assert notifications.progress(revision) == notifications.Progress(0, 0, 10, 0)
    assert notifications.progress(revision).done


@pytest.mark.parametrize("connections", [1, 3])
def test_a_batch_is_sent_over_parallel_connections_each_person_once(
    settings, failing_mailer, policy, employees, mailoutbox, connections
):
    settings.PORTAL_EMAIL_CONNECTIONS = connections
    failing_mailer.refused = {employees[2].email}
    opened = []
    original_open = failing_mailer.open

    def count_open(backend):
        opened.append(backend)
        return original_open(backend)

    failing_mailer.open = count_open
    try:
        revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
        notification_actions.queue_announcements(revision=revision)
        assert notifications.send_batch() == 5
    finally:
        failing_mailer.open = original_open

    assert len({id(backend) for backend in opened}) == connections
    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees if p != employees[2]})
    assert notifications.progress(revision) == notifications.Progress(1, 0, 4, 0)
    refused = Notification.objects.get(person=employees[2])
    assert "SMTPRecipientsRefused" in refused.last_error


def test_each_batch_costs_a_fixed_number_of_queries_and_one_per_email_and_connection(
    make_policy, make_person, mailoutbox, django_assert_num_queries, settings
):
    settings.PORTAL_EMAIL_CONNECTIONS = 4
    small = make_policy("small", audience_slugs=("partners",))
    large = make_policy("large", audience_slugs=("clients",))
    for n in range(3):
        make_person(f"Partner {n}", audience="partners")
    for n in range(6):
        make_person(f"Client {n}", audience="clients")
    for policy in (small, large):
        revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
        notification_actions.queue_announcements(revision=revision)
    Notification.objects.filter(revision__policy=large).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=1)
    )

    with CaptureQueriesContext(connection) as three:
        assert notifications.send_batch(size=3) == 3
    Notification.objects.filter(revision__policy=large).update(next_attempt_at=timezone.now())
    # Each email's hand-over to the server is recorded as it happens, with the acceptance of
    # the connection's previous one; each connection's last acceptance on its own. Three more
    # emails, and one more connection (3 emails take 3 of the 4, 6 take all 4).
    with django_assert_num_queries(len(three.captured_queries) + 3 + 1):
        assert notifications.send_batch(size=6) == 6

    assert len(mailoutbox) == 9


def test_a_refused_email_is_retried_with_backoff_then_marked_failed(
    settings, failing_mailer, policy, employees, mailoutbox
):
    settings.PORTAL_EMAIL_MAX_ATTEMPTS = 3
    failing_mailer.refused = {employees[0].email}
    revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    notification_actions.queue_announcements(revision=revision)
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        notifications.send_batch()
    bad = Notification.objects.get(person=employees[0])
    assert (bad.status, bad.attempts) == (Notification.Status.QUEUED, 1)
    assert bad.next_attempt_at == start + dt.timedelta(minutes=1)
    assert "SMTPRecipientsRefused" in bad.last_error
    assert notifications.progress(revision) == notifications.Progress(1, 0, 4, 0)

    with time_machine.travel(start + dt.timedelta(seconds=30), tick=False):
        assert notifications.send_batch() == 0  # not due yet
    with time_machine.travel(start + dt.timedelta(minutes=2), tick=False):
        notifications.send_batch()
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (Notification.Status.QUEUED, 2)
    assert bad.next_attempt_at == start + dt.timedelta(minutes=2 + 4)

    with time_machine.travel(start + dt.timedelta(minutes=7), tick=False):
        notifications.send_batch()
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (Notification.Status.FAILED, 3)
    assert notifications.progress(revision) == notifications.Progress(0, 0, 4, 1)
    assert notifications.progress(revision).done
    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees[1:]})


def test_retrying_failed_emails_requeues_them_and_is_audited(
    settings,
    failing_mailer,
    policy,
    employees,
    admin_user,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    settings.PORTAL_EMAIL_MAX_ATTEMPTS = 1
    failing_mailer.refused = {employees[0].email, employees[1].email}
    with django_capture_on_commit_callbacks(execute=True):
        revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    assert notifications.progress(revision).failed == 2

    failing_mailer.refused = set()  # the mail server is fixed
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            notification_actions.retry_failed_notifications(actor=admin_user, revision=revision)
            == 2
        )

    everyone = [*employees, admin_user]  # the administrator is an employee too
    assert recipients(mailoutbox) == Counter({p.email: 1 for p in everyone})
    assert notifications.progress(revision) == notifications.Progress(0, 0, 6, 0)
    (audit,) = audit_entries("notifications_retried")
    assert audit["details"]["count"] == 2
    assert audit["actor"]["email"] == admin_user.email
    assert notification_actions.retry_failed_notifications(actor=admin_user, revision=revision) == 0
    assert len(audit_entries("notifications_retried")) == 1  # nothing to retry: no entry


def test_a_batch_left_by_a_dead_worker_is_taken_back_once_its_claim_runs_out(
    settings, policy, employees, mailoutbox
):
    settings.PORTAL_EMAIL_CONNECTIONS = 1
    revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    notification_actions.queue_announcements(revision=revision)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _claim, claimed = notifications._claim_batch(3)  # the worker dies right after...
        handed = Notification.objects.get(pk=claimed[0])
        # ...handing one email to the server, before hearing back.
        Notification.objects.filter(pk=handed.pk).update(message_id="<m1@portal>", sent_at=start)

    lease = dt.timedelta(seconds=settings.PORTAL_EMAIL_LEASE_SECONDS)
    with time_machine.travel(start + lease - dt.timedelta(seconds=1), tick=False):
        assert notifications.reclaim_expired_claims() == notifications.Reclaimed(0, 0)
    with time_machine.travel(start + lease + dt.timedelta(seconds=1), tick=False):
        while notifications.send_batch():
            pass

    # The two never handed over were sent by the next worker; the one handed over is listed
    # as uncertain, not sent again behind the administrator's back.
    uncertain = Notification.objects.get(pk=handed.pk)
    assert uncertain.status == Notification.Status.FAILED
    assert "may or may not have been delivered" in uncertain.last_error
    assert recipients(mailoutbox) == Counter(
        {p.email: 1 for p in employees if p.pk != uncertain.person_id}
    )
    assert notifications.progress(revision) == notifications.Progress(0, 0, 4, 1)

    # A retry sends it with the Message-ID of the first attempt, so a copy can be recognised.
    mailoutbox.clear()
    notification_actions.retry_failed_notifications(actor=None, revision=revision)
    notifications.send_batch()
    (copy,) = mailoutbox
    assert copy.to == [uncertain.person.email]
    assert copy.extra_headers["Message-ID"] == "<m1@portal>"
    assert notifications.progress(revision).done


def test_a_worker_that_lost_its_claim_does_not_send(settings, policy, employees, mailoutbox):
    settings.PORTAL_EMAIL_CONNECTIONS = 1
    revision = policy_actions.publish_revision(actor=None, revision=draft_of(policy, "1.0"))
    notification_actions.queue_announcements(revision=revision)
    claim, claimed = notifications._claim_batch(5)
    # Its claim ran out and another worker took the emails back before it got to them.
    Notification.objects.filter(pk__in=claimed).update(claim="another-worker")
    rows = list(Notification.objects.filter(pk__in=claimed).select_related("person"))
    outcome = notifications._send_in_lanes([(n, timezone.now()) for n in rows], claim=claim)
    assert outcome.sent == [] and mailoutbox == []


# --- Reminders and overdue notices -----------------------------------------------------------------


@pytest.fixture
def due_in_ten_days(settings, policy, publish, employees, sign):
    """1.0 due ten days from now; employee 0 has signed it."""
    settings.PORTAL_REMINDER_DAYS = [7, 1]
    revision = publish(policy, "1.0", due_days=10)
    sign(employees[0], revision)
    return revision


def reminders() -> Counter:
    return Counter(
        (n.person.email, n.kind, n.days_before_due)
        for n in Notification.objects.select_related("person")
    )


def test_reminders_go_out_once_per_offset_and_overdue_once(due_in_ten_days, employees):
    revision = due_in_ten_days
    pending = [p.email for p in employees[1:]]

    notification_actions.queue_reminders(moment=revision.effective_at + dt.timedelta(days=2))
    assert reminders() == Counter()  # eight days left: too early

    for _ in range(2):
        notification_actions.queue_reminders(moment=revision.effective_at + dt.timedelta(days=4))
    assert reminders() == Counter({(email, "reminder", 7): 1 for email in pending})

    for _ in range(2):
        notification_actions.queue_reminders(
            moment=revision.effective_at + dt.timedelta(days=9, hours=12)
        )
    assert reminders() == Counter(
        {(email, "reminder", days): 1 for email in pending for days in (7, 1)}
    )

    for _ in range(2):
        notification_actions.queue_reminders(moment=revision.effective_at + dt.timedelta(days=11))
    assert reminders() == Counter(
        {(email, "reminder", days): 1 for email in pending for days in (7, 1)}
        | {(email, "overdue", 0): 1 for email in pending}
    )
    assert not Notification.objects.filter(person=employees[0]).exists()  # they signed


def test_the_send_reminders_command(due_in_ten_days, employees, mailoutbox):
    revision = due_in_ten_days
    out = StringIO()

    with time_machine.travel(revision.effective_at + dt.timedelta(days=4), tick=False):
        call_command("send_reminders", stdout=out)

    assert out.getvalue() == (
        "Queued 4 reminder(s); processed 4 email(s); 0 interrupted send(s) marked failed.\n"
    )
    due = revision.due_at.strftime("%-d %B %Y")
    assert recipients(mailoutbox) == Counter({p.email: 1 for p in employees[1:]})
    assert {m.subject for m in mailoutbox} == {f"Reminder: sign Test Policy 1.0 by {due}"}

    with time_machine.travel(revision.effective_at + dt.timedelta(days=11), tick=False):
        call_command("send_reminders", stdout=StringIO())
    overdue = [m for m in mailoutbox if m.subject.startswith("Overdue")]
    assert recipients(overdue) == Counter({p.email: 1 for p in employees[1:]})
    assert f"was due on {due}" in overdue[0].body


def test_running_the_reminders_again_reports_nothing_new(due_in_ten_days):
    moment = due_in_ten_days.effective_at + dt.timedelta(days=4)
    assert notification_actions.queue_reminders(moment=moment) == 4

    assert notification_actions.queue_reminders(moment=moment) == 0


def test_a_reminder_about_a_minor_revision_gives_the_real_due_date(
    settings, policy, publish, employees, mailoutbox
):
    settings.PORTAL_REMINDER_DAYS = [7]
    baseline = publish(
        policy, "1.0", due_days=30, effective_at=timezone.now() - dt.timedelta(days=20)
    )
    publish(policy, "1.1", change=MINOR, due_days=14)
    (standing,) = coverage.standings_for(employees[1])
    assert standing.due_at == baseline.effective_at + dt.timedelta(days=30)

    with time_machine.travel(timezone.now() + dt.timedelta(days=4), tick=False):
        call_command("send_reminders", stdout=StringIO())

    message = next(m for m in mailoutbox if m.to == [employees[1].email])
    assert standing.due_at.strftime("%-d %B %Y") in message.subject


# --- The signing gate's exemption --------------------------------------------------------------------


def test_granting_and_lifting_a_gate_exemption_is_audited(make_person, admin_user):
    robot = make_person("Backup Robot")

    people_actions.set_gate_exemption(actor=admin_user, person=robot, reason="  Nightly backups ")
    people_actions.set_gate_exemption(actor=admin_user, person=robot, reason="Nightly backups")
    robot.refresh_from_db()
    assert robot.gate_exemption == "Nightly backups" and robot.is_gate_exempt

    people_actions.set_gate_exemption(actor=admin_user, person=robot, reason="")
    robot.refresh_from_db()
    assert not robot.is_gate_exempt

    granted, lifted = (
        audit_entries("gate_exemption_granted"),
        audit_entries("gate_exemption_lifted"),
    )
    assert len(granted) == len(lifted) == 1  # the repeated grant changed nothing
    assert granted[0]["details"]["reason"] == "Nightly backups"
    assert granted[0]["details"]["person"]["email"] == robot.email
    assert lifted[0]["details"]["previous_reason"] == "Nightly backups"
    assert lifted[0]["actor"]["email"] == admin_user.email


def test_changing_a_person_s_audiences_is_audited(make_person, admin_user):
    person = make_person("Moving Person")
    partners = Audience.objects.get(slug="partners")

    people_actions.set_person_audiences(actor=admin_user, person=person, audiences=[partners])

    assert [a.slug for a in person.audiences.all()] == ["partners"]
    (audit,) = audit_entries("person_audiences_changed")
    assert audit["details"]["before"] == ["employees"]
    assert audit["details"]["after"] == ["partners"]


# --- Concern reports ---------------------------------------------------------------------------------


def test_a_concern_is_stored_and_emailed_to_compliance_after_commit(
    signer, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.PORTAL_COMPLIANCE_EMAIL = "officer@example.com"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = concern_actions.report_concern(
            reporter=signer,
            category="violation",
            description="  Shared password.  ",
            anonymous=True,
        )
    assert mailoutbox == []
    for callback in callbacks:
        callback()

    assert report.description == "Shared password."
    assert report.status == ConcernReport.Status.NEW
    (message,) = mailoutbox
    assert message.to == ["officer@example.com"]
    assert "anonymous" in message.body
    assert signer.email not in message.body


def test_moving_a_concern_is_audited_once_per_change(signer, admin_user):
    report = concern_actions.report_concern(
        reporter=signer, category="other", description="Odd emails.", anonymous=False
    )

    concern_actions.set_concern_status(actor=admin_user, report=report, status="in_review")
    concern_actions.set_concern_status(actor=admin_user, report=report, status="in_review")
    concern_actions.set_concern_status(actor=admin_user, report=report, status="closed")

    report.refresh_from_db()
    assert report.status == "closed"
    moves = [
        (a["details"]["from"], a["details"]["to"]) for a in audit_entries("concern_status_changed")
    ]
    assert moves == [("new", "in_review"), ("in_review", "closed")]


def test_email_subjects_are_plain_text_not_html(
    make_policy, publish, employees, mailoutbox, django_capture_on_commit_callbacks
):
    policy = make_policy("r-and-d", name="R&D <lab> rules")
    publish(policy, "1.0")
    draft = draft_of(policy, "2.0")

    with django_capture_on_commit_callbacks(execute=True):
        policy_actions.publish_revision(actor=None, revision=draft)

    subjects = {m.subject for m in mailoutbox}
    assert subjects and all("R&D <lab> rules 2.0" in subject for subject in subjects)
    assert not any("&amp;" in subject or "&lt;" in subject for subject in subjects)
