"""Error pages as a person meets them with DEBUG off: the portal's header, a way back home and
the compliance contact, for a missing page, a refused one, a refused form and a server error."""

import pytest
from django.test import Client

from tests.pages import html_of, text_of


@pytest.fixture(autouse=True)
def _production(settings):
    settings.DEBUG = False
    settings.PORTAL_COMPLIANCE_EMAIL = "ethics@example.org"


def assert_branded(response, status: int, heading: str) -> None:
    assert response.status_code == status
    html, text = html_of(response), text_of(response)
    assert '<header class="site-header">' in html
    assert "Voipkonnec Policy Portal" in text
    assert f"<h1>{heading}</h1>" in html
    assert '<a class="button button--primary" href="/">Back to my policies</a>' in html
    assert 'href="mailto:ethics@example.org"' in html
    assert "Need help? Write to the compliance team at ethics@example.org." in text


def test_a_missing_page_is_a_branded_404(logged_in, signer, revision):
    response = logged_in(signer).get("/no-such-page/")

    assert_branded(response, 404, "Page not found")
    assert 'aria-label="Main"' in html_of(response)  # the signed-in person keeps their menu


def test_a_missing_page_is_branded_for_anonymous_visitors_too(client, db):
    assert_branded(client.get("/policies/no-such-policy/v/1.0/x/"), 404, "Page not found")


def test_a_refused_page_is_a_branded_403(logged_in, signer, revision):
    response = logged_in(signer).get("/manage/")

    assert_branded(response, 403, "You cannot open this page")
    assert "403 Forbidden" not in html_of(response)


def test_a_form_without_its_csrf_token_is_explained(signer, revision):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(signer)

    response = browser.post("/concerns/new/", {"category": "other", "description": "x"})

    assert_branded(response, 403, "The form was not sent")
    assert "the portal refused this form and recorded nothing" in text_of(response)


def test_a_server_error_is_a_branded_500(settings, client, db):
    settings.ROOT_URLCONF = "tests.error_urls"
    client.raise_request_exception = False

    response = client.get("/broken/")

    assert_branded(response, 500, "Something went wrong")
    assert "The error has been logged." in text_of(response)


def test_the_favicon_is_linked_and_served(client, db):
    page = html_of(client.get("/accounts/login/"))
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in page

    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 302
    assert redirect["Location"] == "/static/img/favicon.svg"
    icon = client.get(redirect["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)
