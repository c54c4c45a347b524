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
