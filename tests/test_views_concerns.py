"""Reporting a concern: the form, its attachment checks, anonymity and the compliance email."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from acknowledgements.models import ConcernReport
from tests.pages import text_of

URL = "/concerns/new/"
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


def report(**overrides) -> dict:
    return {
        "category": "security",
        "description": "Someone asked for my password by phone, claiming to be IT.",
    } | overrides


def attachment_error(response) -> str:
    found = re.search(r'id="id_attachment_error"[^>]*>(.*?)</div>', response.content.decode(), re.S)
    assert found, "no error next to the attachment"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


@pytest.fixture
def reporter(logged_in, signer):
    return logged_in(signer)


@pytest.fixture
def admin_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_form_is_for_signed_in_people(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_reporting_a_concern_without_an_attachment(
    reporter, signer, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_COMPLIANCE_EMAIL = "officer@example.com"
    form = reporter.get(URL)
    assert "Hide my name from the policy administrators" in text_of(form)

    with django_capture_on_commit_callbacks(execute=True):
        response = reporter.post(URL, report())

    assert response.status_code == 302
    assert response["Location"] == "/concerns/thanks/"
    concern = ConcernReport.objects.get()
    assert (concern.reporter, concern.anonymous, concern.category) == (signer, False, "security")
    assert not concern.attachment
    (email,) = mailoutbox
    assert email.to == ["officer@example.com"]
    assert f"Concern #{concern.pk} reported: Security incident or breach" == email.subject
    assert "Someone asked for my password by phone" in email.body
    assert "Ada Lovelace <ada@example.com>" in email.body
    thanks = text_of(reporter.get(response["Location"]))
    assert "It was sent to the compliance officer (officer@example.com)" in thanks


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("scan.pdf", PDF),
        ("screen.PNG", PNG),
        ("photo.jpeg", JPEG),
        ("notes.txt", "Café ☕\n".encode()),
    ],
)
def test_accepted_attachments_reach_the_compliance_officer(
    reporter, mailoutbox, django_capture_on_commit_callbacks, name, content
):
    with django_capture_on_commit_callbacks(execute=True):
        response = reporter.post(URL, report(attachment=SimpleUploadedFile(name, content)))

    assert response.status_code == 302
    concern = ConcernReport.objects.get()
    with concern.attachment.open("rb") as stored:
        assert stored.read() == content
    ((filename, attached, _mimetype),) = mailoutbox[0].attachments
    assert attached in (content, content.decode("utf-8", "replace"))
    assert filename.rsplit(".", 1)[-1].lower() == name.rsplit(".", 1)[-1].lower()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("invoice.pdf", b"MZ\x90\x00 this is a program", "invoice.pdf is not a real PDF file"),
        ("photo.png", JPEG, "photo.png is not a real PNG file"),
        ("photo.jpg", PNG, "photo.jpg is not a real JPEG file"),
        ("notes.txt", b"\xff\xfe\x00binary", "notes.txt is not a real text file"),
        ("setup.exe", b"MZ\x90\x00", "Attach a PDF, PNG, JPEG or plain text (.txt) file"),
        ("page.html", b"<script>alert(1)</script>", "Attach a PDF, PNG, JPEG or plain text"),
        ("no-extension", PDF, "Attach a PDF, PNG, JPEG or plain text"),
    ],
)
def test_other_files_are_refused_and_nothing_is_stored(
    reporter, mailoutbox, django_capture_on_commit_callbacks, name, content, message
):
    with django_capture_on_commit_callbacks(execute=True):
        response = reporter.post(URL, report(attachment=SimpleUploadedFile(name, content)))

    assert response.status_code == 400
    assert message in attachment_error(response)
    assert not ConcernReport.objects.exists()
    assert mailoutbox == []


def test_an_attachment_over_5_mb_is_refused(reporter):
    big = SimpleUploadedFile("scan.pdf", PDF + b"0" * (5 * 1024 * 1024))

    response = reporter.post(URL, report(attachment=big))

    assert response.status_code == 400
    assert "The attachment is too large: 5.0 MB at most." in attachment_error(response)
    assert not ConcernReport.objects.exists()


def test_exactly_5_mb_is_accepted(reporter):
    exact = SimpleUploadedFile("scan.pdf", PDF + b"0" * (5 * 1024 * 1024 - len(PDF)))

    assert reporter.post(URL, report(attachment=exact)).status_code == 302


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"description": ""}, "Describe what happened."),
        ({"description": "x" * 5001}, "at most 5000 characters"),
        ({"category": ""}, "Choose what the concern is about."),
        ({"category": "gossip"}, "Select a valid choice"),
    ],
)
def test_a_report_with_a_mistake_changes_nothing(reporter, overrides, message):
    response = reporter.post(URL, report(**overrides))

    assert response.status_code == 400
    assert message in text_of(response)
    assert not ConcernReport.objects.exists()


def test_an_anonymous_report_hides_the_reporter_from_administrators_and_the_email(
    reporter, admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        reporter.post(URL, report(anonymous="on"))

    concern = ConcernReport.objects.get()
    assert concern.anonymous
    listing = admin_client.get("/manage/concerns/").content.decode()
    assert "Someone asked for my password by phone" in listing
    assert "Anonymous" in listing
    email = mailoutbox[0]
    html = email.alternatives[0].content
    for shown in (listing, email.body, email.subject, html):
        assert "Ada Lovelace" not in shown
        assert "ada@example.com" not in shown


def test_a_named_report_shows_the_reporter_to_administrators(reporter, admin_client):
    reporter.post(URL, report())

    listing = text_of(admin_client.get("/manage/concerns/"))

    assert "Ada Lovelace ada@example.com" in listing


def test_the_attachment_downloads_for_administrators_only(reporter, admin_client, logged_in):
    reporter.post(URL, report(attachment=SimpleUploadedFile("scan.pdf", PDF)))
    concern = ConcernReport.objects.get()
    url = f"/manage/concerns/{concern.pk}/attachment/"

    response = admin_client.get(url)
    body = b"".join(response.streaming_content)  # reading it all closes the file

    assert response.status_code == 200
    assert body == PDF
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert reporter.get(url).status_code == 403  # the reporter is no administrator


def test_a_concern_without_an_attachment_has_nothing_to_download(reporter, admin_client):
    reporter.post(URL, report())
    concern = ConcernReport.objects.get()

    assert admin_client.get(f"/manage/concerns/{concern.pk}/attachment/").status_code == 404


def test_the_thank_you_page_gives_the_report_s_reference_number(reporter, admin_client):
    response = reporter.post(URL, report(anonymous="on"))
    concern = ConcernReport.objects.get()

    thanks = text_of(reporter.get(response["Location"]))

    assert f"Its reference number is #{concern.pk}." in thanks
    # The number is the one the compliance team works with.
    assert f"#{concern.pk}" in text_of(admin_client.get("/manage/concerns/"))
    # Nobody else is shown it: the page names only the reports its reader sent.
    assert "reference number" not in text_of(admin_client.get(response["Location"]))


def test_the_policy_pages_lead_to_the_concern_form(reporter, signer, revision):
    for url in ("/policies/test-policy/", "/policies/test-policy/v/1.0/"):
        page = reporter.get(url).content.decode()

        assert re.search(
            r'<aside class="reader__report"[^>]*>.*<a class="button" href="/concerns/new/">'
            r"Report a concern</a>",
            page,
            re.S,
        ), url
