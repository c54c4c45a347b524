import datetime as dt

from django.conf import settings
from django.utils import timezone

from tests.pages import html_of, text_of


def test_a_person_saves_their_language_and_the_portal_uses_it(signer, revision, logged_in):
    client = logged_in(signer)
    response = client.post("/preferences/", {"language": "fr"})
    assert response.status_code == 302
    signer.refresh_from_db()
    assert signer.preferred_language == "fr"
    page = client.get("/")
    assert page["Content-Language"] == "fr"
    assert '<html lang="fr">' in page.content.decode()


def test_an_unknown_language_is_refused_and_nothing_changes(signer, logged_in):
    client = logged_in(signer)
    response = client.post("/preferences/", {"language": "xx"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    signer.refresh_from_db()
    assert signer.preferred_language == "en"


# --- The language switch in the header and on the sign-in page (/accounts/language/) ----------


def test_the_switch_saves_a_signed_in_persons_language_and_returns_to_the_page(signer, logged_in):
    client = logged_in(signer)
    response = client.post("/accounts/language/", {"language": "fr", "next": "/acknowledgements/"})
    assert response.status_code == 302
    assert response["Location"] == "/acknowledgements/"
    signer.refresh_from_db()
    assert signer.preferred_language == "fr"
    # The cookie too, so the sign-in page speaks French after signing out.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    page = client.get("/acknowledgements/")
    assert page["Content-Language"] == "fr"
    assert "Mes attestations" in text_of(page)


def test_the_switch_sets_only_the_cookie_for_someone_signed_out(client, signer):
    response = client.post("/accounts/language/", {"language": "fr", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    page = client.get("/accounts/login/")
    assert '<html lang="fr">' in html_of(page)
    assert "Se connecter" in text_of(page)
    signer.refresh_from_db()
    assert signer.preferred_language == "en"


def test_an_unknown_language_changes_nothing(signer, logged_in):
    client = logged_in(signer)
    response = client.post("/accounts/language/", {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    signer.refresh_from_db()
    assert signer.preferred_language == "en"


def test_a_person_whose_signature_is_overdue_may_still_switch(signer, logged_in, policy, publish):
    publish(policy, "1.0", due_days=3, effective_at=timezone.now() - dt.timedelta(days=4))
    client = logged_in(signer)
    response = client.post(
        "/accounts/language/", {"language": "fr", "next": "/policies/test-policy/"}
    )
    assert response["Location"] == "/policies/test-policy/"
    signer.refresh_from_db()
    assert signer.preferred_language == "fr"


def test_the_switch_never_sends_a_person_to_another_site(client):
    response = client.post(
        "/accounts/language/", {"language": "fr", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_switch_changes_nothing_on_a_get(signer, logged_in):
    client = logged_in(signer)
    assert client.get("/accounts/language/", {"language": "fr"}).status_code == 405
    signer.refresh_from_db()
    assert signer.preferred_language == "en"


def test_every_page_offers_the_switch_back_to_itself(signer, revision, logged_in, client):
    signed_out = html_of(client.get("/accounts/login/?next=/acknowledgements/"))
    assert 'action="/accounts/language/"' in signed_out
    assert 'name="next" value="/accounts/login/?next=/acknowledgements/"' in signed_out
    assert 'name="language" value="fr" lang="fr">Français</button>' in signed_out
    signed_in = html_of(logged_in(signer).get("/acknowledgements/"))
    assert 'action="/accounts/language/"' in signed_in
    assert 'name="next" value="/acknowledgements/"' in signed_in
    assert (
        '<span class="language-switch__current" lang="en" aria-current="true">English</span>'
        in signed_in
    )


def test_on_an_error_page_the_switch_leads_home(signer, logged_in):
    page = html_of(logged_in(signer).get("/acknowledgements/VK-0000-0000-0000/"))
    assert 'name="next" value="/"' in page
    assert "VK-0000-0000-0000" not in page
