"""The development outbox: emails kept as files with DEBUG on and no SMTP, read at /dev/outbox/."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from acknowledgements.notifications import outbox
from acknowledgements.notifications.outbox import OutboxBackend

ROOT = Path(__file__).resolve().parents[1]
HTML = (
    "<!DOCTYPE html><html><head><title>Receipt</title></head>"
    '<body><p style="color:#1f4e79">You signed.</p><script>alert(1)</script></body></html>'
)


def an_email(to: str = "ada@example.com", subject: str = "Your receipt") -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject=subject, body="You signed.\n", to=[to])
    message.attach_alternative(HTML, "text/html")
    message.attach("receipt-VK-1.pdf", b"%PDF-1.7\nsealed\n", "application/pdf")
    return message


@pytest.fixture
def directory(tmp_path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def debug_outbox(settings, directory):
    """DEBUG on and the outbox as the default mailer, as `make run` has them."""
    settings.DEBUG = True
    settings.MAILERS = {
        "default": {"BACKEND": outbox.BACKEND, "OPTIONS": {"directory": str(directory)}}
    }
    return directory


# --- The backend and the store --------------------------------------------------------------------


def test_each_email_is_kept_whole_and_printed_as_one_line(directory):
    console = io.StringIO()
    backend = OutboxBackend(directory=directory, stream=console, alias="default")

    sent = backend.send_messages([an_email(), an_email("grace@example.com", "Invitation")])

    assert sent == 2
    assert console.getvalue().splitlines() == [
        "Email to ada@example.com: Your receipt",
        "Email to grace@example.com: Invitation",
    ]
    names = outbox.message_names(directory)
    assert len(names) == 2
    newest = outbox.read_message(directory, names[0])
    oldest = outbox.read_message(directory, names[1])
    assert (newest.to, newest.subject) == ("grace@example.com", "Invitation")
    assert (oldest.to, oldest.subject) == ("ada@example.com", "Your receipt")
    assert oldest.sent_at <= newest.sent_at
    assert oldest.text == "You signed.\n"
    assert oldest.html == f"{HTML}\n"  # MIME ends a text part with a line break
    [attachment] = oldest.attachments
    assert (attachment.number, attachment.filename, attachment.content_type) == (
        1,
        "receipt-VK-1.pdf",
        "application/pdf",
    )
    assert attachment.content == b"%PDF-1.7\nsealed\n"
    assert not [p for p in directory.iterdir() if p.suffix != ".eml"], "no partial file is left"


def test_the_default_mailer_sends_to_the_outbox(debug_outbox, capsys):
    with mail.mailers.default as mailer:
        mailer.send_messages([an_email(subject="Action required: sign the policy")])

    assert capsys.readouterr().out == "Email to ada@example.com: Action required: sign the policy\n"
    [name] = outbox.message_names(debug_outbox)
    assert outbox.read_message(debug_outbox, name).subject == "Action required: sign the policy"


def test_the_oldest_emails_go_once_the_outbox_is_full(directory, monkeypatch):
    monkeypatch.setattr(outbox, "MESSAGES_KEPT", 3)
    backend = OutboxBackend(directory=directory, stream=io.StringIO(), alias="default")

    for number in range(5):
        backend.send_messages([an_email(subject=f"Email {number}")])

    names = outbox.message_names(directory)
    subjects = [outbox.read_message(directory, name).subject for name in names]
    assert subjects == ["Email 4", "Email 3", "Email 2"]


@pytest.mark.parametrize("name", ["../secret", "20260101T000000000000Z-0000000g", "", "x.eml"])
def test_only_a_kept_messages_name_is_read(directory, name):
    directory.mkdir()
    (directory.parent / "secret.eml").write_bytes(b"Subject: not yours\n\n")

    assert outbox.read_message(directory, name) is None


def test_an_empty_or_missing_outbox_has_no_message(directory):
    assert outbox.message_names(directory) == []


def _mailer_chosen(**variables: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_DEBUG", "EMAIL_HOST"}}
    code = "import aup_portal.settings as s; print(s.MAILERS['default']['BACKEND'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment | variables,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_the_outbox_is_chosen_only_with_debug_on_and_no_smtp_server():
    assert _mailer_chosen(DJANGO_DEBUG="1") == outbox.BACKEND
    assert _mailer_chosen() == "django.core.mail.backends.console.EmailBackend"
    assert (
        _mailer_chosen(DJANGO_DEBUG="1", EMAIL_HOST="smtp.example.com")
        == "acknowledgements.notifications.mail.SMTPBackend"
    )


# --- The pages ------------------------------------------------------------------------------------


def _kept_email(directory: Path) -> str:
    OutboxBackend(directory=directory, stream=io.StringIO(), alias="default").send_messages(
        [an_email()]
    )
    [name] = outbox.message_names(directory)
    return name


def _outbox_urls(name: str) -> list[str]:
    return [
        reverse("acknowledgements:dev_outbox"),
        reverse("acknowledgements:dev_outbox_message", args=[name]),
        reverse("acknowledgements:dev_outbox_html", args=[name]),
        reverse("acknowledgements:dev_outbox_text", args=[name]),
        reverse("acknowledgements:dev_outbox_attachment", args=[name, 1]),
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_without_debug_every_outbox_page_is_a_404(
    debug_outbox, settings, signer, logged_in, method
):
    name = _kept_email(debug_outbox)
    settings.DEBUG = False
    client = logged_in(signer)

    for url in _outbox_urls(name):
        assert getattr(client, method)(url).status_code == 404, url


def test_with_debug_but_another_mailer_every_outbox_page_is_a_404(
    debug_outbox, settings, signer, logged_in
):
    name = _kept_email(debug_outbox)
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
    client = logged_in(signer)

    for url in _outbox_urls(name):
        assert client.get(url).status_code == 404, url


def test_the_outbox_asks_a_visitor_to_sign_in(debug_outbox, client):
    name = _kept_email(debug_outbox)

    for url in _outbox_urls(name):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")


def test_the_outbox_lists_the_emails_newest_first(debug_outbox, signer, logged_in):
    backend = OutboxBackend(directory=debug_outbox, stream=io.StringIO(), alias="default")
    backend.send_messages([an_email("first@example.com", "The first email")])
    backend.send_messages([an_email("second@example.com", "The second email")])

    response = logged_in(signer).get(reverse("acknowledgements:dev_outbox"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "2 emails." in page
    assert page.index("second@example.com") < page.index("first@example.com")
    assert page.index("The second email") < page.index("The first email")


def test_an_email_page_frames_its_html_in_a_sandbox(debug_outbox, signer, logged_in):
    name = _kept_email(debug_outbox)
    client = logged_in(signer)

    page = client.get(reverse("acknowledgements:dev_outbox_message", args=[name]))

    assert page.status_code == 200
    html_url = reverse("acknowledgements:dev_outbox_html", args=[name])
    body = page.content.decode()
    assert f'<iframe src="{html_url}"' in body
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in body
    assert "receipt-VK-1.pdf" in body
    assert "You signed." in body  # the text part, shown as text

    framed = client.get(html_url)

    assert framed.status_code == 200
    assert framed["Content-Type"] == "text/html; charset=utf-8"
    policy = framed["Content-Security-Policy"]
    assert "sandbox allow-popups allow-popups-to-escape-sandbox" in policy
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'self'" in policy
    assert framed["X-Frame-Options"] == "SAMEORIGIN"
    # The email as it was sent, its links opening in a new tab.
    assert framed.content.decode() == HTML.replace("<head>", '<head><base target="_blank">') + "\n"


def test_an_emails_text_and_attachment_download(debug_outbox, signer, logged_in):
    name = _kept_email(debug_outbox)
    client = logged_in(signer)

    text = client.get(reverse("acknowledgements:dev_outbox_text", args=[name]))
    pdf = client.get(reverse("acknowledgements:dev_outbox_attachment", args=[name, 1]))
    missing = client.get(reverse("acknowledgements:dev_outbox_attachment", args=[name, 2]))

    assert text.content == b"You signed.\n"
    assert text["Content-Disposition"] == f'attachment; filename="{name}.txt"'
    assert pdf.content == b"%PDF-1.7\nsealed\n"
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"] == 'attachment; filename="receipt-VK-1.pdf"'
    assert missing.status_code == 404


def test_an_email_that_is_not_kept_is_a_404(debug_outbox, signer, logged_in):
    _kept_email(debug_outbox)
    client = logged_in(signer)

    for name in ["20260101T000000000000Z-00000000", "..%2F..%2Fsettings"]:
        url = reverse("acknowledgements:dev_outbox_message", args=[name])
        assert client.get(url).status_code == 404


def test_the_outbox_finds_the_emails_to_someone_or_about_something(debug_outbox, signer, logged_in):
    backend = OutboxBackend(directory=debug_outbox, stream=io.StringIO(), alias="default")
    for number in range(60):
        backend.send_messages([an_email(f"signer{number:03d}@example.com", "Announcement")])
    backend.send_messages([an_email("employee@example.com", "Your receipt VK-1234")])
    client = logged_in(signer)

    by_address = client.get(reverse("acknowledgements:dev_outbox"), {"q": "EMPLOYEE@"})
    by_subject = client.get(reverse("acknowledgements:dev_outbox"), {"q": "receipt vk"})
    everything = client.get(reverse("acknowledgements:dev_outbox"))
    nothing = client.get(reverse("acknowledgements:dev_outbox"), {"q": "nobody"})

    for found in (by_address, by_subject):
        page = found.content.decode()
        assert "1 email." in page
        assert "Your receipt VK-1234" in page and "signer000@" not in page
    assert "61 emails." in everything.content.decode()
    assert 'href="/dev/outbox/?page=2"' in everything.content.decode()
    assert "No email matches." in nothing.content.decode()
