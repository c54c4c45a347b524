"""The reports pages as people use them: who may open them, filters, sorting, pages, "as of"."""

import datetime as dt
import re
import zoneinfo
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.models import ExportJob, LedgerEntry
from acknowledgements.people import actions as people_actions
from acknowledgements.roles import AUDITORS
from acknowledgements.signing import actions as signing_actions
from tests.conftest import client_evidence
from tests.pages import text_of, with_query

DAY = dt.timedelta(days=1)
PAGES = [
    ("reports_dashboard", []),
    ("reports_people", ["test-policy"]),
    ("reports_person", ["<signer>"]),
    ("reports_audit_log", []),
    ("declines", []),
]
# Served in the request, asked for with a POST as they are recorded / built by a task (a form
# page, then a POST, see test_export_jobs).
STREAMED = [
    ("reports_export_csv", ["test-policy"]),
    ("reports_export_people_csv", ["test-policy"]),
    ("reports_export_pdf", ["test-policy"]),
]
BACKGROUND = [
    ("reports_export_xlsx", ["test-policy"]),
    ("reports_export_package", ["test-policy"]),
]
EXPORTS = STREAMED + BACKGROUND


@pytest.fixture
def revision(policy, publish):
    return publish(policy, "1.0", effective_at=timezone.now() - 5 * DAY, due_days=14)


def url_of(name, args, signer) -> str:
    return reverse(
        f"acknowledgements:{name}", args=[signer.pk if a == "<signer>" else a for a in args]
    )


def exports_recorded() -> int:
    return sum(
        1
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
        if ledger.decode(entry)["action"] == "export"
    )


def ask(client, name, args, signer, params=None):
    """Open a report as its page does: a GET, or an export's POST (with the filters in the URL)."""
    url = url_of(name, args, signer)
    if (name, args) in STREAMED:
        return client.post(with_query(url, params))
    return client.get(url, params)


def drain(response) -> bytes:
    """The whole body of a response, streamed or not."""
    if response.streaming:
        # Consuming the stream closes the response (and its file) the way the test client
        # expects; closing it again would close the database connection.
        return b"".join(response.streaming_content)
    return response.content


# --- Who may open what ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,args", PAGES + EXPORTS)
def test_anonymous_visitors_are_sent_to_sign_in(client, signer, revision, name, args):
    response = ask(client, name, args, signer)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("name,args", PAGES + EXPORTS)
def test_signers_are_refused_and_nothing_is_exported(logged_in, signer, revision, name, args):
    assert ask(logged_in(signer), name, args, signer).status_code == 403
    assert exports_recorded() == 0


@pytest.mark.parametrize("name,args", BACKGROUND)
def test_signers_cannot_ask_for_a_background_export(logged_in, signer, revision, name, args):
    assert logged_in(signer).post(url_of(name, args, signer)).status_code == 403
    assert not ExportJob.objects.exists()
    assert exports_recorded() == 0


@pytest.mark.parametrize("who", ["auditor", "admin_user"])
@pytest.mark.parametrize("name,args", PAGES + EXPORTS)
def test_auditors_and_administrators_open_every_report(
    request, logged_in, signer, revision, who, name, args
):
    response = ask(logged_in(request.getfixturevalue(who)), name, args, signer)
    assert response.status_code == 200
    drain(response)


@pytest.mark.parametrize("name,args", PAGES)
def test_reports_answer_get_only(logged_in, auditor, signer, revision, name, args):
    response = logged_in(auditor).post(url_of(name, args, signer))
    assert response.status_code == 405


@pytest.mark.parametrize("name,args", STREAMED)
def test_exports_made_at_once_answer_post_only_and_a_get_records_nothing(
    logged_in, auditor, signer, revision, name, args
):
    # A link from another site opened in an auditor's browser is a GET: it exports nothing.
    response = logged_in(auditor).get(url_of(name, args, signer))
    assert response.status_code == 405
    assert exports_recorded() == 0
    assert exports_recorded() == 0


def test_the_reports_link_opens_the_dashboard(logged_in, auditor, signer, revision):
    page = logged_in(auditor).get("/reports/audit-log/").content.decode()
    assert '<a href="/reports/" aria-current="page">Reports</a>' in page
    other = Client()
    other.force_login(signer)
    assert "Reports</a>" not in other.get("/").content.decode()


def test_a_missing_policy_or_person_is_not_found(logged_in, auditor):
    client = logged_in(auditor)
    assert client.get("/reports/policies/nope/people/").status_code == 404
    assert client.get("/reports/people/999999/").status_code == 404
    assert client.post("/reports/policies/nope/export/acknowledgements.csv").status_code == 404


# --- The dashboard -------------------------------------------------------------------------------


@pytest.fixture
def population(make_person, revision, sign):
    """Sixty people: ten signed, two declined, the rest pending."""
    people = [make_person(f"Person {n:02d}", email=f"p{n:02d}@example.com") for n in range(60)]
    for person in people[:10]:
        sign(person, revision)
    for person in people[10:12]:
        signing_actions.record_decline(
            person=person, revision=revision, reason="", client=client_evidence()
        )
    return people


def test_dashboard_shows_counts_shares_and_charts(logged_in, auditor, population):
    page = logged_in(auditor).get("/reports/").content.decode()
    assert "Completion at a glance" in page
    assert 'aria-label="10 people Signed: open the list"' in page
    assert 'aria-label="48 people Pending: open the list"' in page
    assert 'aria-label="2 people Declined: open the list"' in page
    assert "16.7 %" in page and "80 %" in page
    # Charts are inline SVG with a title, a description and a text equivalent.
    assert page.count('role="img"') >= 3
    for svg in re.findall(r"<svg[^>]*role=\"img\"[^>]*>", page):
        ids = re.search(r'aria-labelledby="([^"]+)"', svg).group(1).split()
        assert all(f'id="{i}"' in page for i in ids)
    assert "10 signatures from" in page
    assert "The same as a table" in page
    # Nothing the Content-Security-Policy would block.
    assert "style=" not in page
    assert "<script>" not in page and "<script " not in page.replace('<script src="', "")


def test_the_headline_states_the_signed_share_and_every_segment_is_named(
    logged_in, auditor, population, make_policy, publish
):
    publish(make_policy("second", name="Second Policy"), "1.0", due_days=14)
    page = logged_in(auditor).get("/reports/")
    text = text_of(page)
    # Signed first, with the count behind it: never a bare share that reads as completion.
    assert "Signed 16.7 % (10 of 60)" in text
    assert "Pending 80 % (48)" in text and "Declined 3.3 % (2)" in text
    assert ">Pending 80 %</text>" in page.content.decode()  # named on the bar itself
    # One table compares every policy.
    assert "All policies side by side" in text
    assert "Test Policy 1.0 60 10 (16.7 %) 48 (80 %)" in text
    assert "Second Policy 1.0" in text


def test_every_count_links_to_its_filtered_list(logged_in, auditor, population):
    page = logged_in(auditor).get("/reports/").content.decode()
    link = re.search(r'<a href="([^"]+)" aria-label="2 people Declined', page).group(1)
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query == {"status": ["declined"]}
    listed = logged_in(auditor).get(link.replace("&amp;", "&")).content.decode()
    assert "2 people match." in listed
    assert "Person 10" in listed and "Person 11" in listed

    employees = re.search(
        r'<a href="([^"]+)" aria-label="10 Employees Signed: open the list"', page
    ).group(1)
    query = parse_qs(urlsplit(employees.replace("&amp;", "&")).query)
    assert query == {"status": ["signed"], "audience": ["employees"]}


# The pages an auditor opens most, on the large data set too (bench/reports.py measures them).
BUSIEST_PAGES = [
    "/reports/",
    "/reports/policies/test-policy/people/",
    "/reports/policies/test-policy/people/?status=overdue",
    "/reports/?as_of=<yesterday>",
]
STATEMENT_BUDGET = 10


def statements(client, url) -> int:
    """Every SQL statement of one request: session, user, permissions, signing gate, view."""
    client.get(url)  # sessions and permission caches warm up first
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    # Savepoints exist only because each test runs inside a transaction; in production the
    # session save is a transaction of its own.
    return sum(1 for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def test_busiest_pages_take_a_fixed_number_of_statements(
    logged_in, auditor, make_person, make_policy, revision, publish, policy, sign
):
    client = logged_in(auditor)
    yesterday = timezone.localtime(timezone.now() - DAY).strftime("%Y-%m-%dT%H:%M:%S")
    urls = [url.replace("<yesterday>", yesterday) for url in BUSIEST_PAGES]
    for n in range(3):
        make_person(f"Early {n}")
    few = [statements(client, url) for url in urls]

    # More people, audiences, policies and revisions, signed, declined and overdue.
    later = publish(policy, "1.1", change="minor")
    other = make_policy(
        "other-policy", name="Other Policy", audience_slugs=("employees", "contractors")
    )
    publish(other, "1.0", effective_at=timezone.now() - 30 * DAY)
    other_current = publish(other, "1.1", change="minor", effective_at=timezone.now() - 20 * DAY)
    for n in range(27):
        employee = n % 2 == 0
        person = make_person(f"Late {n}", audience="employees" if employee else "contractors")
        if n % 3 == 0:
            sign(person, other_current)
        if employee and n % 4 == 0:
            sign(person, later)
        elif employee:
            signing_actions.record_decline(
                person=person, revision=later, reason="", client=client_evidence()
            )
    many = [statements(client, url) for url in urls]

    assert few == many
    assert max(many) <= STATEMENT_BUDGET, dict(zip(urls, many, strict=True))


# --- As of ----------------------------------------------------------------------------------------


def test_as_of_shows_the_state_at_that_moment(logged_in, auditor, make_person, revision, sign):
    person = make_person("Early Signer")
    signed_at = timezone.now() - 2 * DAY
    with time_machine.travel(signed_at, tick=False):
        sign(person, revision)
    make_person("Late Signer")
    client = logged_in(auditor)
    before = timezone.localtime(signed_at - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    page = client.get("/reports/", {"as_of": before}).content.decode()
    assert "Showing the state <strong>as of" in page
    assert 'aria-label="0 people Signed: open the list"' in page
    assert f'value="{before}"' in page
    assert "Back to now" in page
    now_page = client.get("/reports/").content.decode()
    assert 'aria-label="1 people Signed: open the list"' in now_page


@pytest.mark.parametrize(
    "value,message",
    [
        ("2999-01-01T00:00", "That moment is in the future"),
        ("yesterday at noon", "Enter a date and time such as 2026-03-31 17:00."),
    ],
)
def test_a_refused_moment_says_why_and_shows_now(logged_in, auditor, revision, value, message):
    for url in ("/reports/", "/reports/policies/test-policy/people/", "/reports/people/1/"):
        response = logged_in(auditor).get(url, {"as_of": value})
        if response.status_code == 404:
            continue
        page = response.content.decode()
        assert message in page
        assert "Showing the state <strong>now</strong>" in page


def test_as_of_is_read_in_the_viewers_time_zone(client, logged_in, auditor, revision):
    client = logged_in(auditor)
    client.cookies["portal_tz"] = "Europe/Paris"
    moment = timezone.now() - DAY
    local = timezone.localtime(moment, zoneinfo.ZoneInfo("Europe/Paris")).replace(microsecond=0)
    page = client.get("/reports/", {"as_of": local.strftime("%Y-%m-%dT%H:%M:%S")}).content.decode()
    assert "Times are in Europe/Paris." in page
    # The links carry the moment with its offset, so nothing is ambiguous.
    assert f"as_of={local.isoformat().replace(':', '%3A').replace('+', '%2B')}" in page
    response = client.post(
        with_query(
            "/reports/policies/test-policy/export/acknowledgements.csv",
            {"as_of": local.strftime("%Y-%m-%dT%H:%M:%S")},
        )
    )
    drain(response)
    entry = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).latest("id")
    assert ledger.decode(entry)["details"]["filters"]["as_of"] == ledger.utc_iso(local)


def test_a_moment_with_an_offset_is_shown_in_the_viewers_zone(logged_in, auditor, revision):
    moment = (timezone.now() - DAY).replace(microsecond=0)
    with_offset = moment.astimezone(dt.timezone(dt.timedelta(hours=5))).isoformat()
    page = logged_in(auditor).get("/reports/", {"as_of": with_offset}).content.decode()
    assert f'value="{moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")}"' in page


# --- The people list -----------------------------------------------------------------------------


def test_people_list_pages_by_fifty(logged_in, auditor, population):
    client = logged_in(auditor)
    first = client.get("/reports/policies/test-policy/people/").content.decode()
    assert "60 people match." in first
    assert first.count('href="/reports/people/') == 50
    assert "Page 1 of 2" in first
    second = client.get("/reports/policies/test-policy/people/", {"page": 2}).content.decode()
    assert second.count('href="/reports/people/') == 10
    assert "Person 59" in second


def test_people_list_filters(logged_in, auditor, population, revision):
    client = logged_in(auditor)

    def listed(**params) -> list[str]:
        page = client.get("/reports/policies/test-policy/people/", params).content.decode()
        return re.findall(r'href="/reports/people/\d+/[^"]*">([^<]+)</a>', page)

    assert listed(status="declined") == ["Person 10", "Person 11"]
    assert listed(q="P05@EXAMPLE") == ["Person 05"]
    assert listed(q="person 0", status="signed") == [f"Person 0{n}" for n in range(10)]
    assert listed(audience="contractors") == []
    today = timezone.localdate().isoformat()
    assert len(listed(signed_from=today, signed_to=today)) == 10
    assert listed(signed_to=(timezone.localdate() - DAY).isoformat()) == []


def test_people_list_sorts_and_marks_the_sorted_column(logged_in, auditor, population):
    client = logged_in(auditor)
    page = client.get("/reports/policies/test-policy/people/", {"sort": "-name"}).content.decode()
    names = re.findall(r'href="/reports/people/\d+/[^"]*">([^<]+)</a>', page)
    assert names[:2] == ["Person 59", "Person 58"]
    assert 'aria-sort="descending"' in page
    page = client.get("/reports/policies/test-policy/people/", {"sort": "status"}).content.decode()
    names = re.findall(r'href="/reports/people/\d+/[^"]*">([^<]+)</a>', page)
    assert names[:2] == ["Person 10", "Person 11"]  # declined before pending and signed


def test_people_list_refuses_bad_filters_with_a_message(logged_in, auditor, population):
    page = (
        logged_in(auditor)
        .get(
            "/reports/policies/test-policy/people/",
            {"status": "asleep", "signed_from": "2026-02-02", "signed_to": "2026-01-01"},
        )
        .content.decode()
    )
    assert "Select a valid choice. asleep is not one of the available choices." in page
    assert "The end date comes before the start date." in page
    assert "60 people match." not in page  # signed_from still applies


def test_exports_link_with_the_lists_filters(logged_in, auditor, population):
    page = (
        logged_in(auditor)
        .get("/reports/policies/test-policy/people/", {"status": "signed", "sort": "-name"})
        .content.decode()
    )
    link = re.search(
        r'action="(/reports/policies/test-policy/export/acknowledgements\.csv[^"]*)"', page
    )
    query = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert query == {"status": ["signed"]}


# --- Exports -------------------------------------------------------------------------------------


def test_csv_export_is_streamed(logged_in, auditor, population):
    response = logged_in(auditor).post("/reports/policies/test-policy/export/acknowledgements.csv")
    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming
    assert drain(response).decode().count("\r\n") == 11  # header and ten signatures
    response = logged_in(auditor).post("/reports/policies/test-policy/export/people.csv")
    assert isinstance(response, StreamingHttpResponse)
    assert drain(response).decode().count("\r\n") == 61


def test_an_export_with_a_refused_moment_exports_nothing(logged_in, auditor, population):
    client = logged_in(auditor)
    response = client.post(
        with_query(
            "/reports/policies/test-policy/export/acknowledgements.csv",
            {"as_of": "2999-01-01T00:00"},
        )
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/reports/policies/test-policy/people/?as_of=2999")
    page = client.get(response["Location"]).content.decode()
    assert "That moment is in the future" in page
    assert "Nothing was exported." in page
    assert exports_recorded() == 0


@pytest.mark.parametrize("name,args", BACKGROUND)
def test_asking_for_a_background_export_shows_what_it_will_hold_and_records_nothing(
    logged_in, auditor, signer, population, name, args
):
    page = logged_in(auditor).get(url_of(name, args, signer), {"status": "signed"})
    assert page.status_code == 200
    assert "Prepare the export" in page.content.decode()
    assert "status=signed" in page.content.decode()
    assert not ExportJob.objects.exists()
    assert exports_recorded() == 0


@pytest.mark.parametrize("name,args", EXPORTS)
def test_every_export_is_recorded_with_who_what_and_rows(
    logged_in, auditor, signer, population, name, args, built_export
):
    client = logged_in(auditor)
    if (name, args) in BACKGROUND:
        built_export(url_of(name, args, signer), {"status": "signed"})
    else:
        drain(ask(client, name, args, signer, {"status": "signed"}))
    assert exports_recorded() == 1
    entry = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).latest("id")
    payload = ledger.decode(entry)
    assert entry.actor == auditor
    assert payload["action"] == "export"
    assert payload["actor"] == {
        "id": auditor.pk,
        "email": "alan@example.com",
        "name": "Alan Turing",
    }
    details = payload["details"]
    assert details["filters"]["policy"] == "test-policy"
    assert details["filters"]["as_of"].endswith("Z")
    # The summary covers everyone in scope (the sixty and Ada); the others, the signed only.
    assert details["rows"] == (61 if name == "reports_export_pdf" else 10)


# --- A person, the audit log, declines -----------------------------------------------------------


def test_person_page_shows_history_notifications_and_receipts(
    logged_in, auditor, signer, revision, sign
):
    acknowledgement = sign(signer, revision)
    page = logged_in(auditor).get(f"/reports/people/{signer.pk}/").content.decode()
    assert "Ada Lovelace" in page
    assert "Consented to sign electronically" in page and "Signed" in page
    assert acknowledgement.receipt_number in page
    assert "receipt still being prepared" in page  # no receipt yet: the task runs after commit
    assert "192.0.2.10" in page


def test_audit_log_filters_and_pages(logged_in, auditor, admin_user, population, revision):
    client = logged_in(auditor)
    for person in population[:55]:
        people_actions.set_gate_exemption(actor=admin_user, person=person, reason="kiosk")
    page = client.get("/reports/audit-log/").content.decode()
    assert "Page 1 of 2" in page
    assert "Gate exemption granted" in page
    assert "Grace Hopper" in page
    filtered = client.get("/reports/audit-log/", {"action": "revision_published"}).content.decode()
    assert "1 entry." in filtered
    by_grace = client.get("/reports/audit-log/", {"actor": "grace"}).content.decode()
    assert "55 entries." in by_grace
    assert by_grace.count("<strong>Gate exemption granted</strong>") == 50
    tomorrow = (timezone.localdate() + DAY).isoformat()
    assert "0 entries." in client.get("/reports/audit-log/", {"since": tomorrow}).content.decode()
    refused = client.get("/reports/audit-log/", {"action": "nonsense"}).content.decode()
    assert "Select a valid choice." in refused


def test_declines_moved_to_the_reports_and_link_to_the_person(logged_in, auditor, population):
    page = logged_in(auditor).get(reverse("acknowledgements:declines")).content.decode()
    assert reverse("acknowledgements:declines") == "/reports/declines/"
    assert f'href="/reports/people/{population[10].pk}/"' in page


def test_receipt_downloads_by_others_appear_in_the_audit_log(
    logged_in, make_person, signer, revision, sign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        acknowledgement = sign(signer, revision)
    auditor = make_person("Other Auditor", email="other@example.com", audience=None, role=AUDITORS)
    client = logged_in(auditor)
    response = client.get(f"/acknowledgements/{acknowledgement.receipt_number}/receipt.pdf")
    assert response.status_code == 200
    drain(response)
    page = client.get("/reports/audit-log/", {"action": "receipt_downloaded"}).content.decode()
    assert acknowledgement.receipt_number in page
