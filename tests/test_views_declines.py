import pytest

from acknowledgements.evidence import ledger
from acknowledgements.signing import actions as signing_actions
from tests.conftest import client_evidence

URL = "/reports/declines/"


@pytest.fixture
def declined(signer, revision):
    entry = signing_actions.record_decline(
        person=signer,
        revision=revision,
        reason="<b>I need legal advice</b>",
        client=client_evidence(),
    )
    # The test's transaction never commits, so the link task is run here, as a commit would.
    return ledger.ensure_linked(entry)


@pytest.mark.parametrize("who", ["auditor", "admin_user"])
def test_auditors_and_administrators_see_declines(request, logged_in, declined, who):
    response = logged_in(request.getfixturevalue(who)).get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ada Lovelace" in page and "ada@example.com" in page
    assert "&lt;b&gt;I need legal advice&lt;/b&gt;" in page
    assert f"#{declined.sequence}" in page


def test_signers_cannot_see_declines(logged_in, signer, make_person, declined):
    other = make_person("Other Person")
    assert logged_in(other).get(URL).status_code == 403
    assert logged_in(signer).get(URL).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
