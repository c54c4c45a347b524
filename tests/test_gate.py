"""The signing gate: an overdue signature sends a person to the policy; a pending one shows a banner."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from acknowledgements.people import actions as people_actions
from acknowledgements.signing import actions as signing_actions
from tests.conftest import client_evidence

POLICY_URL = "/policies/test-policy/"
SIGNATURE = {"agree": "on", "typed_name": "Ada Lovelace", "consent": "on"}


@pytest.fixture
def overdue(policy, publish):
    """1.0 was due yesterday (people joined a year ago)."""
    return publish(policy, "1.0", due_days=3, effective_at=timezone.now() - dt.timedelta(days=4))


@pytest.fixture
def pending(policy, publish):
    return publish(policy, "1.0", due_days=14)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize("url", ["/", "/manage/", "/manage/people/", "/reports/declines/"])
def test_an_overdue_person_is_sent_to_the_policy_from_other_pages(
    logged_in, signer, admin_user, overdue, url
):
    for person in (signer, admin_user):  # administrators are not above the policy
        response = logged_in(person).get(url)

        assert response.status_code == 302, url
        assert response["Location"] == POLICY_URL
        page = logged_in(person).get(POLICY_URL)
        assert "Your signature of Test Policy is overdue. Please sign it to continue." in (
            page.content.decode()
        )


@pytest.mark.parametrize(
    "url", [POLICY_URL, "/policies/test-policy/v/1.0/", "/acknowledgements/", "/verify/"]
)
def test_an_overdue_person_may_still_read_sign_and_see_their_records(
    logged_in, signer, overdue, url
):
    assert logged_in(signer).get(url).status_code == 200


def test_an_overdue_person_sees_the_overdue_banner(logged_in, signer, overdue):
    page = logged_in(signer).get("/acknowledgements/").content.decode()

    assert "banner--danger" in page
    assert "Overdue:" in page


def test_signing_lifts_the_gate(logged_in, signer, overdue):
    client = logged_in(signer)
    client.cookies["portal_tz"] = "UTC"

    signed = client.post("/policies/test-policy/v/1.0/sign/", SIGNATURE)

    assert signed.status_code == 302
    assert signed["Location"].startswith("/acknowledgements/VK-")
    home = client.get("/")
    assert home.status_code == 200
    assert "Overdue:" not in home.content.decode()
    assert "Action needed:" not in home.content.decode()


def test_an_exempt_account_is_not_gated(logged_in, make_person, admin_user, overdue):
    robot = make_person("Backup Robot")
    people_actions.set_gate_exemption(
        actor=admin_user, person=robot, reason="Backup service account"
    )

    response = logged_in(robot).get("/")

    assert response.status_code == 200
    assert "Overdue:" in response.content.decode()  # still told, just not stopped


def test_a_newcomer_is_not_overdue_before_their_own_due_date(logged_in, make_person, overdue):
    newcomer = make_person("New Starter", joined=timezone.now() - dt.timedelta(days=1))

    response = logged_in(newcomer).get("/")

    assert response.status_code == 200
    assert "Action needed:" in response.content.decode()


def test_a_person_becomes_gated_once_the_due_date_passes(logged_in, signer, pending):
    client = logged_in(signer)
    assert client.get("/").status_code == 200

    with time_machine.travel(pending.due_at + dt.timedelta(minutes=1)):
        assert client.get("/").status_code == 302


@pytest.mark.parametrize("url", ["/", "/acknowledgements/", "/verify/", POLICY_URL])
def test_a_pending_person_is_not_gated_but_sees_the_banner_everywhere(
    logged_in, signer, pending, url
):
    response = logged_in(signer).get(url)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Action needed:" in page
    due = timezone.localtime(pending.due_at).strftime("%-d %B %Y")
    assert f"please sign Test Policy 1.0 by {due}." in page
    assert "banner--danger" not in page


def test_the_banner_goes_once_the_person_signs(logged_in, signer, pending, sign):
    client = logged_in(signer)
    assert "Action needed:" in client.get("/verify/").content.decode()

    sign(signer, pending)

    for url in ("/", "/verify/", POLICY_URL):
        assert "Action needed:" not in client.get(url).content.decode(), url


def test_a_minor_revision_does_not_bring_the_banner_back(logged_in, signer, pending, sign, publish):
    sign(signer, pending)
    publish(pending.policy, "1.1", change="minor")

    assert "Action needed:" not in logged_in(signer).get("/").content.decode()


def test_a_material_revision_brings_the_banner_back(logged_in, signer, pending, sign, publish):
    sign(signer, pending)
    publish(pending.policy, "2.0")

    page = logged_in(signer).get("/").content.decode()
    assert "please sign Test Policy 2.0 by" in page


def test_a_decline_does_not_stop_the_clock(logged_in, signer, overdue):
    signing_actions.record_decline(
        person=signer, revision=overdue, reason="No.", client=client_evidence()
    )

    assert logged_in(signer).get("/").status_code == 302


def test_an_overdue_person_can_still_report_a_concern(logged_in, signer, overdue):
    client = logged_in(signer)

    assert client.get("/concerns/new/").status_code == 200
