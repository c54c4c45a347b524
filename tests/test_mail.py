"""Emails serialised once per group (mail.py): the bytes sent are the email Django would send."""

import datetime as dt
import email
import email.policy
import socketserver
import threading

import pytest
import time_machine
from django import conf as django_conf
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acknowledgements.models import Notification, PolicyRevision, User
from acknowledgements.notifications import actions as notification_actions
from acknowledgements.notifications import sending
from acknowledgements.notifications.mail import (
    NAME_STAND_IN,
    SMTP_LINE_LIMIT,
    GroupMessage,
    PreparedEmail,
)
from acknowledgements.policies import actions as policy_actions
from tests.conftest import POLICY_BODY

TEXT = f"Bonjour {NAME_STAND_IN},\n\nLa politique a changé : relisez-la.\n\n— Voipkonnec\n"
HTML = f"<p>Bonjour {NAME_STAND_IN},</p>\n<p>La <strong>politique</strong> a changé.</p>\n"
GROUP = GroupMessage(subject="Action requise : signer la politique 3.0", text=TEXT, html=HTML)


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def content(message: email.message.EmailMessage, subtype: str) -> str:
    return message.get_body((subtype,)).get_content().replace("\r\n", "\n")


def assert_same_email(sent: bytes, django_email) -> None:
    """The bytes read back give the headers and texts Django builds from the email's fields."""
    ours, django = parsed(sent), parsed(django_email.message().as_bytes())
    for header in ("Subject", "From", "To", "MIME-Version"):
        assert str(ours[header]) == str(django[header]), header
    assert ours.get_content_type() == django.get_content_type() == "multipart/alternative"
    assert content(ours, "plain") == content(django, "plain")
    assert content(ours, "html") == content(django, "html")
    assert ours["Message-ID"] and ours["Date"]
    assert max(len(line) for line in sent.split(b"\r\n")) <= SMTP_LINE_LIMIT


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=200))
def test_a_prepared_email_is_the_email_django_would_build(name):
    prepared = GROUP.email("zoe.obrien@example.com", name=name)
    # Every name a person can have goes the fast way, unless it holds a line break or another
    # character that is not printable.
    assert isinstance(prepared, PreparedEmail) == name.isprintable()
    if isinstance(prepared, PreparedEmail):
        assert_same_email(prepared.serialised, prepared)
    assert NAME_STAND_IN not in prepared.body
    assert name in prepared.body


def test_each_prepared_email_has_its_own_message_id():
    first, second = (GROUP.email(f"p{n}@example.com", name="Zoë") for n in range(2))
    assert parsed(first.serialised)["Message-ID"] != parsed(second.serialised)["Message-ID"]


def test_the_name_is_escaped_in_the_html_only():
    prepared = GROUP.email("p@example.com", name="Zoë <O'Brien> & Co")
    message = parsed(prepared.serialised)
    assert "Bonjour Zoë <O'Brien> & Co," in content(message, "plain")
    assert "Bonjour Zoë &lt;O&#x27;Brien&gt; &amp; Co," in content(message, "html")


def test_a_group_with_a_line_too_long_for_smtp_is_built_by_django():
    long_line = "word " * 250  # 1,250 bytes on one line: Django encodes it quoted-printable
    group = GroupMessage(subject="S", text=TEXT + long_line, html=HTML)
    message = group.email("p@example.com", name="Zoë")
    assert not isinstance(message, PreparedEmail)
    assert long_line in content(parsed(message.message().as_bytes()), "plain")


def test_a_name_longer_than_its_line_allows_is_built_by_django():
    # 900 bytes of text share the greeting's line: a 100-character name would pass 998 bytes.
    group = GroupMessage(subject="S", text=f"{'x' * 900} {NAME_STAND_IN}\n", html=HTML)
    assert isinstance(group.email("p@example.com", name="Zoë"), PreparedEmail)
    assert not isinstance(group.email("p@example.com", name="Z" * 100), PreparedEmail)


@pytest.mark.parametrize(
    "address",
    ["zoë@example.com", "zoe@exämple.com", "Zoe <zoe@example.com>", "a@b.com, c@d.com"],
)
def test_an_address_that_is_not_plain_ascii_is_built_by_django(address):
    assert not isinstance(GROUP.email(address, name="Zoë"), PreparedEmail)


def test_a_subject_holding_the_name_is_built_by_django():
    group = GroupMessage(subject=f"For {NAME_STAND_IN}", text=TEXT, html=HTML)
    message = group.email("p@example.com", name="Zoë")
    assert not isinstance(message, PreparedEmail)
    assert message.subject == "For Zoë"


# --- Through a real SMTP connection -------------------------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: every message's envelope and bytes go to server.received."""

    def handle(self):
        recipients = []
        self.wfile.write(b"220 test ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-test\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL":
                recipients = []
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"RCPT":
                recipients.append(line.split(b":", 1)[1].strip().strip(b"<>").decode())
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.received.append((recipients, data))
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server(settings):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    server.daemon_threads = True
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "acknowledgements.notifications.mail.SMTPBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": server.server_address[1], "use_tls": False},
        }
    }
    yield server
    server.shutdown()
    server.server_close()


def announce_material_revision(policy) -> PolicyRevision:
    """Publish version 1.0 of the policy as a material change and queue its announcements."""
    draft = policy_actions.create_draft(
        actor=None,
        policy=policy,
        version="1.0",
        body=POLICY_BODY,
        change=PolicyRevision.Change.MATERIAL,
        change_summary="Section 4 now covers personal devices.",
    )
    revision = policy_actions.publish_revision(actor=None, revision=draft)
    notification_actions.queue_announcements(revision=revision)
    return revision


def test_a_fan_out_over_smtp_sends_each_person_their_own_email(
    smtp_server, make_person, policy, monkeypatch
):
    def built_again(*args, **kwargs):
        raise AssertionError("a prepared email's MIME message was built again")

    monkeypatch.setattr(PreparedEmail, "message", built_again)
    names = ["Zoë O'Brien", "Ana <Admin>", "Ли Вэй", "Plain Name"]
    people = {
        person.email: person
        for n, name in enumerate(names)
        for person in [make_person(name, email=f"person{n}@example.com")]
    }
    revision = announce_material_revision(policy)

    assert sending.send_batch() == len(people)

    assert sorted(to for recipients, _data in smtp_server.received for to in recipients) == sorted(
        people
    )
    for (address,), data in smtp_server.received:
        message = parsed(data)
        person = people[address]
        assert message["To"] == address
        assert f"Hello {person.full_name}," in content(message, "plain")
        assert "Section 4 now covers personal devices." in content(message, "plain")
        assert revision.version in str(message["Subject"])
    assert len({parsed(data)["Message-ID"] for _to, data in smtp_server.received}) == len(people)


def test_the_smtp_backend_refuses_a_prepared_email_to_an_address_with_a_line_break(smtp_server):
    from django.core.mail import mailers

    prepared = GROUP.email("p@example.com", name="Zoë")
    prepared.to = ["p@example.com\r\nBcc: everyone@example.com"]
    with mailers.default as mailer, pytest.raises(ValueError):
        mailer.send_messages([prepared])
    assert smtp_server.received == []


# --- In each person's language ----------------------------------------------------------------

FRENCH_NAME = "Politique d\u2019essai"
FRENCH_BODY = "# Politique d\u2019essai\n\n## 1. Objet\n\nSoyez excellents.\n"


@pytest.fixture
def french_person(make_person):
    person = make_person("Ada Lovelace", email="ada@example.com")
    person.preferred_language = "fr"
    person.save()
    return person


def published_with_french(policy, *, title: str = FRENCH_NAME) -> PolicyRevision:
    """Version 1.0 taking effect on 17 November 2026, due by 1 December, translated into French."""
    draft = policy_actions.create_draft(
        actor=None,
        policy=policy,
        version="1.0",
        body=POLICY_BODY,
        change=PolicyRevision.Change.MATERIAL,
        effective_at=dt.datetime(2026, 11, 17, 9, tzinfo=dt.UTC),
        due_days=14,
    )
    policy_actions.save_translation(
        actor=None, revision=draft, language="fr", body=FRENCH_BODY, title=title
    )
    return policy_actions.publish_revision(actor=None, revision=draft)


def test_an_announcement_names_the_policy_and_its_dates_in_each_persons_language(
    french_person, make_person, policy, mailoutbox
):
    english = make_person("Grace Hopper", email="grace@example.com")
    with time_machine.travel(dt.datetime(2026, 11, 10, 9, tzinfo=dt.UTC), tick=False):
        revision = published_with_french(policy)
        notification_actions.queue_announcements(revision=revision)
        assert sending.send_batch() == 2

    french = next(m for m in mailoutbox if m.to == [french_person.email])
    assert french.subject == (
        f"Action requise : signez {FRENCH_NAME} 1.0 au plus tard le 1er décembre 2026"
    )
    assert f"{FRENCH_NAME} s\u2019applique à vous à partir du 17 novembre 2026" in french.body
    assert "Veuillez signer au plus tard le 1er décembre 2026." in french.body
    ((html, _mimetype),) = french.alternatives
    assert f"<title>{FRENCH_NAME} 1.0</title>" in html
    assert f"<strong>{FRENCH_NAME}</strong> s\u2019applique" in html
    assert "le <strong>1er décembre 2026</strong>" in html
    other = next(m for m in mailoutbox if m.to == [english.email])
    assert other.subject == "Action required: sign Test Policy 1.0 by 1 December 2026"
    assert "Test Policy applies to you from 17 November 2026" in other.body


def test_a_translation_without_a_name_is_announced_under_the_english_name(
    french_person, policy, mailoutbox
):
    with time_machine.travel(dt.datetime(2026, 11, 10, 9, tzinfo=dt.UTC), tick=False):
        revision = published_with_french(policy, title="")
        sending.queue_emails(
            revision=revision,
            kind=Notification.Kind.REMINDER,
            person_ids=User.objects.filter(pk=french_person.pk).values_list("pk", flat=True),
            days_before_due=3,
        )
        assert sending.send_batch() == 1

    (reminder,) = mailoutbox
    assert reminder.subject == "Rappel : signez Test Policy 1.0 au plus tard le 1er décembre 2026"


def test_the_receipt_email_names_the_policy_and_the_moment_in_french(
    french_person, policy, publish, sign, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 5, 7, tzinfo=dt.UTC), tick=False):
        revision = publish(policy, "1.0")
        policy_actions.save_translation(
            actor=None, revision=revision, language="fr", body=FRENCH_BODY, title=FRENCH_NAME
        )
        with django_capture_on_commit_callbacks(execute=True):
            acknowledgement = sign(french_person, revision, language="fr")

    (receipt,) = mailoutbox
    assert receipt.subject == (
        f"Votre accusé de réception {acknowledgement.receipt_number} : {FRENCH_NAME} 1.0"
    )
    assert (
        f"Vous avez signé {FRENCH_NAME}, version 1.0, le 1er décembre 2026 à 09:05:07 UTC."
        in receipt.body
    )
    ((html, _mimetype),) = receipt.alternatives
    assert f"Vous avez signé <strong>{FRENCH_NAME}</strong>, version 1.0, le 1er décembre" in html


def test_a_batch_costs_one_statement_per_email_and_one_per_connection(
    make_person, policy, smtp_server
):
    """Each email is recorded as handed to the server just before it goes, in the statement
    that records the connection's previous email as accepted; the connection's last one is
    recorded as accepted on its own (a worker that dies leaves at most one email per
    connection in doubt). Everything else is one set of statements per batch, whatever its
    size (bench figure 4b)."""
    for n in range(12):
        make_person(f"Person {n}", email=f"person{n}@example.com")
    announce_material_revision(policy)

    statements = {}
    for size in (4, 8):
        with CaptureQueriesContext(connection) as captured:
            assert sending.send_batch(size=size) == size
        statements[size] = [query["sql"] for query in captured.captured_queries]

    recording = [
        sql
        for sql in statements[8]
        if sql.startswith(
            (
                'UPDATE "acknowledgements_notification" SET "message_id"',
                'UPDATE "acknowledgements_notification" SET "status" = CASE',
                'UPDATE "acknowledgements_notification" SET "status" = \'sent\' WHERE',
            )
        )
    ]
    connections = django_conf.settings.PORTAL_EMAIL_CONNECTIONS
    assert connections == 4
    assert len(recording) == 8 + connections
    assert len(statements[8]) - len(statements[4]) == 8 - 4
    assert len(smtp_server.received) == 12
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 12


@pytest.fixture
def one_handed_over(make_person, policy):
    """A worker's recorder, the email it has handed to the server on a connection, and the
    next one it claimed for that connection."""
    for n in range(2):
        make_person(f"Person {n}", email=f"person{n}@example.com")
    announce_material_revision(policy)
    claim, (accepted, next_one) = sending._claim_batch(2)
    recorder = sending._Recorder(claim)
    assert recorder.handed(accepted, "<1@portal>")
    return recorder, accepted, next_one


def test_an_acceptance_is_recorded_even_when_the_next_email_was_taken_back(one_handed_over):
    recorder, accepted, next_one = one_handed_over
    Notification.objects.filter(pk=next_one).update(claim="another worker's")

    assert not recorder.handed(next_one, "<2@portal>", accepted=accepted)

    assert Notification.objects.get(pk=accepted).status == Notification.Status.SENT
    assert Notification.objects.get(pk=next_one).message_id == ""


def test_a_hand_over_is_recorded_even_when_the_accepted_email_was_taken_back(one_handed_over):
    recorder, accepted, next_one = one_handed_over
    # The lease ran out before the answer was recorded: listed as uncertain, not "sent".
    Notification.objects.filter(pk=accepted).update(status=Notification.Status.FAILED, claim="")

    assert recorder.handed(next_one, "<2@portal>", accepted=accepted)

    assert Notification.objects.get(pk=accepted).status == Notification.Status.FAILED
    handed = Notification.objects.get(pk=next_one)
    assert (handed.status, handed.message_id) == (Notification.Status.SENDING, "<2@portal>")
    assert handed.sent_at is not None
