"""Findings of the second outside security test: each answer is a clear 2xx, 3xx or 4xx, never
a 500, and records nothing it should not."""

import csv
import datetime as dt
import io
import re
import threading
import unicodedata
import zipfile
from urllib.parse import quote

import pytest
import time_machine
from django.db import connection, connections
from django.test import Client
from django.urls import URLPattern, get_resolver
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from acknowledgements.concerns import report_concern
from acknowledgements.evidence import chain_check, ledger
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import (
    Acknowledgement,
    ConcernReport,
    ExportJob,
    LedgerEntry,
    Policy,
)
from acknowledgements.policies.actions import create_policy
from acknowledgements.roles import POLICY_ADMINISTRATORS
from acknowledgements.signing.actions import record_decline
from acknowledgements.signing.names import name_refusal, signature_name
from tests.conftest import PASSWORD, client_evidence, downloaded
from tests.pages import field_error, text_of, with_query

DAY = dt.timedelta(days=1)
THREAD_TIMEOUT = 60


def streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def run_at_once(count: int, work) -> list:
    """work(0..count-1) in threads released together, each on its own database connection:
    what each returned, or the exception it raised."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=THREAD_TIMEOUT)
            outcomes[index] = work(index)
        except Exception as error:  # judged by the test, in its own thread
            outcomes[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return outcomes


# --- 1. Health endpoints behind a load balancer ---------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("method", ["get", "head"])
def test_health_endpoints_answer_plain_http_probes_behind_the_https_redirect(
    enforced_triggers, client, settings, path, method
):
    settings.SECURE_SSL_REDIRECT = True

    response = getattr(client, method)(path)  # plain HTTP, no X-Forwarded-Proto

    assert response.status_code == 200
    assert response.get("Location") is None


def test_other_pages_are_still_redirected_to_https(db, client, settings):
    settings.SECURE_SSL_REDIRECT = True

    response = client.get("/verify/")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/verify/"


def test_health_endpoints_refuse_changes(db, client):
    assert client.post("/healthz").status_code == 405


# --- 2. Control characters in addresses, and dates no calendar conversion can hold -------------

CONTROL_ADDRESSES = [
    "/policies/test-policy/v/1.0%00/",
    "/policies/test-policy%00/",
    "/acknowledgements/VK%00/",
    "/acknowledgements/VK%00/receipt.pdf",
    "/reports/policies/test-policy/people/?q=%00",
    "/reports/policies/test-policy/people/?audience=employees%00",
    "/reports/audit-log/?actor=a%0Ab",
    "/verify/?x=%7F",
]


@pytest.mark.parametrize("address", CONTROL_ADDRESSES)
def test_a_control_character_in_an_address_is_a_400_that_says_why(
    logged_in, admin_user, revision, address
):
    response = logged_in(admin_user).get(address)

    assert response.status_code == 400
    assert "control character" in response.content.decode()


@pytest.mark.parametrize("action", ["sign", "decline"])
def test_a_nul_in_a_sign_or_decline_address_records_nothing(logged_in, signer, revision, action):
    before = LedgerEntry.objects.count()
    response = logged_in(signer).post(
        f"/policies/test-policy/v/1.0%00/{action}/",
        {"agree": "on", "typed_name": signer.full_name, "consent": "on"},
    )

    assert response.status_code == 400
    assert LedgerEntry.objects.count() == before


def test_an_encoded_percent_sign_is_text_not_a_control_character(logged_in, auditor, revision):
    response = logged_in(auditor).get("/reports/policies/test-policy/people/?q=%2500")

    assert response.status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("address", CONTROL_ADDRESSES)
def test_a_nul_never_reaches_postgresql(logged_in, admin_user, revision, address):
    client = logged_in(admin_user)
    client.raise_request_exception = False

    assert client.get(address).status_code == 400
    assert client.post(address).status_code == 400


PEOPLE = "/reports/policies/test-policy/people/"
REPORT_ADDRESSES = [
    PEOPLE,
    "/reports/policies/test-policy/export/people.csv",
    "/reports/policies/test-policy/export/acknowledgements.csv",
    "/reports/policies/test-policy/export/summary.pdf",
    "/reports/policies/test-policy/export/acknowledgements.xlsx",
    "/reports/policies/test-policy/export/audit-package.zip",
]
EXTREME_FILTERS = [
    {"signed_to": "9999-12-31"},
    {"signed_from": "0001-01-01"},
    {"as_of": "0001-01-01T00:00"},
    {"as_of": "0001-01-01T00:00:00+14:00"},
    {"as_of": "1969-12-31T23:59"},
]


@pytest.mark.parametrize("params", EXTREME_FILTERS, ids=lambda params: "&".join(params.values()))
@pytest.mark.parametrize("address", REPORT_ADDRESSES)
def test_dates_out_of_range_are_refused_by_the_report_forms(
    logged_in, auditor, signed_revision, address, params
):
    client = logged_in(auditor)
    client.cookies["portal_tz"] = "Etc/GMT-14"  # UTC+14: the last zone before the date line

    recorded = address.endswith((".csv", ".pdf"))  # an export made at once: a POST
    if recorded:
        response = client.post(with_query(address, params), follow=True)
    else:
        response = client.get(address, params, follow=True)

    assert response.status_code in (200, 400)
    assert "Enter a date between 1970-01-01 and 9998-12-31." in response.content.decode()
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("kind", ["acknowledgements.xlsx", "audit-package.zip"])
def test_a_background_export_of_a_moment_out_of_range_is_refused_and_queues_nothing(
    logged_in, auditor, signed_revision, kind
):
    client = logged_in(auditor)
    client.cookies["portal_tz"] = "Etc/GMT-14"
    url = f"/reports/policies/test-policy/export/{kind}?as_of=0001-01-01T00:00"

    response = client.post(url, follow=True)

    assert response.status_code == 200
    page = text_of(response)
    assert "Enter a date between 1970-01-01 and 9998-12-31." in page
    assert "Nothing was exported." in page
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("params", [{"until": "9999-12-31"}, {"since": "0001-01-01"}])
def test_the_audit_log_refuses_dates_out_of_range(logged_in, auditor, params):
    client = logged_in(auditor)
    client.cookies["portal_tz"] = "Etc/GMT+12"

    response = client.get("/reports/audit-log/", params)

    assert response.status_code == 200
    assert "Enter a date between 1970-01-01 and 9998-12-31." in response.content.decode()


@pytest.mark.parametrize("zone", ["Etc/GMT-14", "Etc/GMT+12"])
def test_the_range_limits_themselves_are_reports_that_work(
    logged_in, auditor, signed_revision, zone
):
    client = logged_in(auditor)
    client.cookies["portal_tz"] = zone
    limits = {"signed_from": "1970-01-01", "signed_to": "9998-12-31"}

    page = client.get(PEOPLE, limits | {"as_of": "1970-01-01T00:00"})
    export = client.post(
        with_query("/reports/policies/test-policy/export/acknowledgements.csv", limits)
    )
    audit_log = client.get("/reports/audit-log/", {"since": "1970-01-01", "until": "9998-12-31"})

    assert page.status_code == 200 and "Enter a date between" not in page.content.decode()
    assert export.status_code == 200
    assert len(csv_rows(streamed(export))) == 2  # the header and the one signature
    assert audit_log.status_code == 200


# --- 3. Exports of a moment when no revision was in effect ----------------------------------------


@pytest.fixture
def signed_revision(policy, publish, signer, sign):
    revision = publish(policy, "1.0", effective_at=timezone.now() - 5 * DAY)
    sign(signer, revision)
    return revision


def test_the_people_csv_before_the_first_revision_is_a_header_only(
    logged_in, auditor, signed_revision
):
    before = timezone.localtime(signed_revision.effective_at - DAY).strftime("%Y-%m-%dT%H:%M")

    response = logged_in(auditor).post(
        with_query("/reports/policies/test-policy/export/people.csv", {"as_of": before})
    )

    assert response.status_code == 200
    rows = csv_rows(streamed(response))
    assert rows[0][:2] == ["Name", "Email"] and len(rows) == 1


def test_the_people_csv_of_a_policy_never_published_is_a_header_only(
    logged_in, auditor, make_policy
):
    make_policy("unpublished", name="Unpublished")

    response = logged_in(auditor).post("/reports/policies/unpublished/export/people.csv")

    assert response.status_code == 200
    assert len(csv_rows(streamed(response))) == 1


@pytest.mark.parametrize("export", ["acknowledgements.csv", "people.csv"])
def test_exports_of_a_policy_never_published_filtered_by_audience_are_a_header_only(
    logged_in, auditor, make_policy, export
):
    # On PostgreSQL the signatures CSV is written by COPY, for which Django writes no SQL when
    # the people filter can match nobody.
    make_policy("unpublished", name="Unpublished")

    response = logged_in(auditor).post(
        with_query(f"/reports/policies/unpublished/export/{export}", {"audience": "employees"})
    )

    assert response.status_code == 200
    assert len(csv_rows(streamed(response))) == 1


def test_the_audit_package_before_the_first_revision_has_no_signatures(
    client, logged_in, auditor, signed_revision, built_export
):
    logged_in(auditor)
    before = timezone.localtime(signed_revision.effective_at - DAY).strftime("%Y-%m-%dT%H:%M")

    page = built_export("/reports/policies/test-policy/export/audit-package.zip", {"as_of": before})

    assert ExportJob.objects.get().status == ExportJob.Status.DONE
    package = zipfile.ZipFile(io.BytesIO(downloaded(client, page)))
    assert len(csv_rows(package.read("people.csv"))) == 1
    assert len(csv_rows(package.read("acknowledgements.csv"))) == 1
    assert package.read("receipts/SHA256SUMS") == b""
    assert b"Signatures:    0 in acknowledgements.csv" in package.read("README.txt")


# --- 4. The typed name is a signature: one line, plain letters, stored in NFC ---------------------

SIGN_URL = "/policies/test-policy/v/1.0/sign/"
DECLINE_URL = "/policies/test-policy/v/1.0/decline/"


@pytest.fixture
def demo_contractor(make_person):
    return make_person("Demo Contractor", email="contractor@example.com")


@pytest.mark.parametrize(
    ("typed", "refused"),
    [
        ("D̶e̶m̶o̶ C̶o̶n̶t̶r̶a̶c̶t̶o̶r̶", "U+0336 COMBINING LONG STROKE OVERLAY"),
        ("Demo\r\n\r\nContractor", "U+000D"),
        ("Demo\nContractor", "U+000A"),
        ("Demo\u2028Contractor", "U+2028 LINE SEPARATOR"),
        ("Demo\tContractor", "U+0009"),
        ("Demo Contractor\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("Ｄｅｍｏ Ｃｏｎｔｒａｃｔｏｒ", "U+FF24 FULLWIDTH LATIN CAPITAL LETTER D"),  # noqa: RUF001
        ("𝐃𝐞𝐦𝐨 Contractor", "U+1D403 MATHEMATICAL BOLD CAPITAL D"),  # noqa: RUF001
        ("Demo\u20dd Contractor", "U+20DD COMBINING ENCLOSING CIRCLE"),
        ("Demo \u0301Contractor", "U+0301 COMBINING ACUTE ACCENT"),
    ],
    ids=[
        "strike-through",
        "crlf",
        "lf",
        "line-separator",
        "tab",
        "bidi-override",
        "full-width",
        "math-bold",
        "enclosing-mark",
        "detached-accent",
    ],
)
def test_a_typed_name_that_would_print_differently_is_refused_on_the_form(
    logged_in, demo_contractor, revision, typed, refused
):
    response = logged_in(demo_contractor).post(
        SIGN_URL, {"agree": "on", "typed_name": typed, "consent": "on"}
    )

    assert response.status_code == 400
    error = field_error(response, "typed_name")
    assert refused in error
    assert not LedgerEntry.objects.filter(person=demo_contractor).exclude(kind="viewed").exists()


def test_the_service_refuses_the_same_names(demo_contractor, revision, sign):
    with pytest.raises(ActionRefused, match="U\\+0336 COMBINING LONG STROKE OVERLAY"):
        sign(demo_contractor, revision, typed_name="D̶e̶m̶o̶ C̶o̶n̶t̶r̶a̶c̶t̶o̶r̶")
    with pytest.raises(ActionRefused, match="line breaks"):
        sign(demo_contractor, revision, typed_name="Demo\r\n\r\nContractor")

    assert not Acknowledgement.objects.exists()


def test_the_typed_name_is_stored_and_printed_in_nfc(
    logged_in, make_person, revision, django_capture_on_commit_callbacks
):
    person = make_person("Zoë Ångström", email="zoe@example.com")
    decomposed = "Zoe\u0308 A\u030angstro\u0308m"

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(person).post(
            SIGN_URL, {"agree": "on", "typed_name": decomposed, "consent": "on"}
        )

    assert response.status_code == 302
    entry = LedgerEntry.objects.get(person=person, kind=LedgerEntry.Kind.SIGNED)
    assert ledger.decode(entry)["typed_name"] == "Zoë Ångström"
    assert unicodedata.is_normalized("NFC", ledger.decode(entry)["typed_name"])


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ångström",
        "Nguyễn Văn An",
        "Łukasz Żółć",
        "Seán Ó Briain",
        "Jean-Luc O'Neill",
        "李小龍",
        "देवनागरी लिपि",
        "שָׁלוֹם כהן",
        "محمد\u200cرضا",  # noqa: RUF001
        "Ada\u00a0Lovelace",
    ],
)
def test_names_in_any_script_are_accepted(make_person, revision, sign, name):
    person = make_person(name)

    acknowledgement = sign(person, revision, typed_name=name)

    assert ledger.decode(acknowledgement.ledger_entry)["typed_name"] == unicodedata.normalize(
        "NFC", name
    )


@given(st.text(max_size=60))
def test_name_refusal_accepts_any_text_and_what_it_accepts_is_one_line(typed):
    refusal = name_refusal(typed)
    if refusal is None:
        stored = signature_name(typed)
        assert unicodedata.is_normalized("NFC", stored)
        assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in stored)
        assert not any(unicodedata.combining(c) == 1 for c in stored)
    else:
        assert "U+" in refusal


# --- 5. Declines: once per revision, after a fresh sign-in, rate limited -------------------------


def declines_of(person) -> int:
    return LedgerEntry.objects.filter(person=person, kind=LedgerEntry.Kind.DECLINED).count()


def test_a_second_decline_records_nothing_and_says_it_is_already_recorded(
    logged_in, signer, revision
):
    client = logged_in(signer)
    first = client.post(DECLINE_URL, {"reason": "I need legal advice."}, follow=True)
    second = client.post(DECLINE_URL, {"reason": "Still no."}, follow=True)

    assert declines_of(signer) == 1
    assert "You declined Test Policy 1.0." in text_of(first)
    assert "Your decline of Test Policy 1.0 is already recorded" in text_of(second)
    decline = LedgerEntry.objects.get(person=signer, kind=LedgerEntry.Kind.DECLINED)
    assert ledger.decode(decline)["reason"] == "I need legal advice."


def test_the_service_records_one_decline_per_person_and_revision(signer, revision):
    record_decline(person=signer, revision=revision, reason="", client=client_evidence())

    with pytest.raises(ActionRefused, match="already recorded"):
        record_decline(person=signer, revision=revision, reason="", client=client_evidence())

    assert declines_of(signer) == 1


def test_a_stale_sign_in_cannot_decline(settings, logged_in, signer, revision):
    client = logged_in(signer)
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 1

    with time_machine.travel(dt.timedelta(minutes=2)):
        response = client.post(DECLINE_URL, {"reason": "No."})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/?next=")
    assert declines_of(signer) == 0


def test_reauthenticating_lets_the_person_decline(settings, logged_in, signer, revision):
    client = logged_in(signer)
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 0
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 5

    client.post(DECLINE_URL, {"reason": "No."})

    assert declines_of(signer) == 1


def test_decline_submissions_are_rate_limited(logged_in, signer, revision):
    client = logged_in(signer)

    answers = [client.post(DECLINE_URL, {"reason": "No."}).status_code for _ in range(8)]

    assert answers[:5] == [302] * 5
    assert answers[5:] == [429] * 3
    refused = client.post(DECLINE_URL, {"reason": "No."})
    assert "Too many declines in a short time" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert declines_of(signer) == 1
    with time_machine.travel(dt.timedelta(minutes=11)):
        assert client.post(DECLINE_URL, {"reason": "No."}).status_code == 302


def test_the_rate_limit_is_per_person(logged_in, signer, make_person, revision):
    other = make_person("Katherine Johnson", email="katherine@example.com")
    for _ in range(6):
        logged_in(signer).post(DECLINE_URL, {"reason": "No."})

    other_client = Client()
    other_client.post("/accounts/login/", {"login": other.email, "password": PASSWORD})

    assert other_client.post(DECLINE_URL, {"reason": "No."}).status_code == 302
    assert declines_of(other) == 1


@pytest.mark.postgres
def test_twenty_simultaneous_declines_record_one(evidence_db, make_person, make_policy, publish):
    person = make_person("Ada Lovelace", email="ada@example.com")
    revision = publish(make_policy(), "1.0")

    def decline(_index: int):
        return record_decline(person=person, revision=revision, reason="", client=client_evidence())

    outcomes = run_at_once(20, decline)

    assert declines_of(person) == 1
    assert sum(isinstance(outcome, LedgerEntry) for outcome in outcomes) == 1
    assert all(
        isinstance(outcome, LedgerEntry) or "already recorded" in str(outcome)
        for outcome in outcomes
    )
    assert chain_check.verify_chain().intact


# --- 6. The same policy created twice at once ------------------------------------------------------

NEW_POLICY = "/manage/policies/new/"


def new_policy_form(admin_user, audiences) -> dict:
    return {
        "name": "Travel Policy",
        "slug": "travel-policy",
        "owner": admin_user.pk,
        "audiences": [audiences["employees"].pk],
    }


def test_creating_a_policy_whose_slug_is_taken_is_refused_by_the_service(admin_user, audiences):
    create_policy(actor=admin_user, name="Travel", slug="travel", owner=None, audiences=[])

    with pytest.raises(ActionRefused, match="Another policy already uses this short name"):
        create_policy(actor=admin_user, name="Travel", slug="travel", owner=None, audiences=[])

    assert Policy.objects.filter(slug="travel").count() == 1


def test_a_slug_taken_after_the_form_checked_it_is_a_form_error(logged_in, admin_user, audiences):
    client = logged_in(admin_user)
    rivals = []

    def rival_takes_the_slug_after_the_check(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        checked = sql.startswith("SELECT") and 'FROM "acknowledgements_policy"' in sql
        if checked and not rivals:
            # Another administrator's request commits the same slug at this very moment.
            rivals.append(Policy.objects.create(name="Rival", slug="travel-policy"))
        return result

    with connection.execute_wrapper(rival_takes_the_slug_after_the_check):
        response = client.post(NEW_POLICY, new_policy_form(admin_user, audiences))

    assert rivals, "the form no longer checks the slug first"
    assert response.status_code == 400
    assert field_error(response, "slug") == "Another policy already uses this short name."
    assert list(Policy.objects.values_list("name", flat=True)) == ["Rival"]


@pytest.mark.postgres
def test_ten_administrators_creating_the_same_policy_at_once(evidence_db, make_person, audiences):
    admin = make_person("Grace Hopper", email="grace@example.com", role=POLICY_ADMINISTRATORS)
    client = Client()
    client.post("/accounts/login/", {"login": admin.email, "password": PASSWORD})
    form = new_policy_form(admin, audiences)

    def create(_index: int):
        threaded = Client()
        threaded.cookies = client.cookies
        threaded.raise_request_exception = False
        return threaded.post(NEW_POLICY, form).status_code

    answers = run_at_once(10, create)

    assert sorted(set(answers)) in ([302, 400], [302])
    assert answers.count(302) == 1
    assert Policy.objects.filter(slug="travel-policy").count() == 1


# --- Every address of the app, with hostile path segments and report parameters ------------------

CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")
# The read API under /api/v1/ is an included resolver of its own: schemathesis fuzzes it from
# its schema (tests/test_api.py).
ROUTES = [
    (str(pattern.pattern), pattern.name)
    for pattern in next(
        resolver
        for resolver in get_resolver().url_patterns
        if getattr(resolver, "namespace", None) == "acknowledgements"
    ).url_patterns
    if isinstance(pattern, URLPattern)
]
# Text a browser would never send: any character (control characters are rarer, since the
# middleware refuses them before anything else could go wrong), and known troublemakers.
HOSTILE_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40),
    st.text(min_size=1, max_size=5),
    st.sampled_from(
        [
            "..",
            "%",
            "%00",
            "'; DROP TABLE acknowledgements_policy; --",
            '"><script>alert(1)</script>',
            "x" * 2000,
            "\u202e",
            "D̶e̶m̶o̶",
            "-1",
            "1e309",
            "NaN",
        ]
    ),
)
HOSTILE_INTEGERS = st.one_of(
    st.sampled_from(["0", str(2**31), str(2**63), str(10**40)]),
    st.integers(min_value=10**6, max_value=10**40).map(str),
)
# Where a calendar conversion can leave the range of Python's dates, and just inside it.
EXTREME_DAYS = ["0001-01-01", "9999-12-31", "1969-12-31", "1970-01-01", "9998-12-31"]
DAYS = st.one_of(st.sampled_from(EXTREME_DAYS), st.dates().map(dt.date.isoformat), HOSTILE_TEXT)
MOMENTS = st.one_of(
    st.sampled_from(
        [
            *(f"{day}T00:00" for day in EXTREME_DAYS),
            "9999-12-31T23:59:59+14:00",
            "0001-01-01T00:00:00-12:00",
        ]
    ),
    st.datetimes().map(lambda moment: moment.isoformat(timespec="minutes")),
    st.builds(
        lambda moment, hours: f"{moment.isoformat(timespec='seconds')}{hours:+03d}:00",
        st.datetimes(),
        st.integers(min_value=-14, max_value=14),
    ),
    HOSTILE_TEXT,
)
CHOICES = st.one_of(
    st.sampled_from(
        ["employees", "signed", "pending", "overdue", "declined", "-signed", "due", "fr", "1"]
    ),
    HOSTILE_TEXT,
    HOSTILE_INTEGERS,
)
# Every query parameter the report and list views read (their forms and pagination).
QUERY_PARAMETERS = {
    "as_of": MOMENTS,
    "signed_from": DAYS,
    "signed_to": DAYS,
    "since": DAYS,
    "until": DAYS,
    **dict.fromkeys(["status", "audience", "q", "sort", "page", "action", "actor"], CHOICES),
    "lang": CHOICES,
    # The ledger's public proofs and listings (views/ledger.py).
    **dict.fromkeys(["index", "size", "from", "to", "after"], st.one_of(HOSTILE_INTEGERS, CHOICES)),
}
QUERIES = st.lists(st.sampled_from(sorted(QUERY_PARAMETERS)), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: QUERY_PARAMETERS[name] for name in names})
)
# The zones furthest from UTC either way, and one that is not a zone.
ZONES = st.sampled_from(["", "Etc/GMT-14", "Etc/GMT+12", "Pacific/Kiritimati", "Nope/Nowhere"])
FUZZ = hypothesis_settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def portal(policy, publish, make_person, sign, auditor, admin_user, make_policy):
    """Something behind every kind of address: policies, signatures, a decline, jobs, a concern."""
    revision = publish(policy, "1.0", effective_at=timezone.now() - 5 * DAY)
    make_policy("unpublished", name="Unpublished")
    signer = make_person("Ada Lovelace", email="ada@example.com")
    acknowledgement = sign(signer, revision)
    decliner = make_person("Katherine Johnson", email="katherine@example.com")
    record_decline(person=decliner, revision=revision, reason="No.", client=client_evidence())
    concern = report_concern(
        reporter=signer,
        category=ConcernReport.Category.SECURITY,
        description="A laptop was left unlocked.",
        anonymous=False,
    )
    job = ExportJob.objects.create(
        requested_by=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=policy,
        as_of=timezone.now(),
        filters={},
        filename="x.xlsx",
    )
    return {
        "slug": ["test-policy", "unpublished"],
        "int": sorted({signer.pk, auditor.pk, admin_user.pk, revision.pk, concern.pk, job.pk}),
        "str": ["1.0", "fr", acknowledgement.receipt_number],
    }


def address(route: str, segments: dict[str, str]) -> str:
    return "/" + CONVERTER.sub(lambda match: quote(segments[match["name"]], safe=""), route)


def segment_values(route: str, known: dict[str, list], *, hostile_only: bool) -> st.SearchStrategy:
    """Values for a route's segments: mostly real ones (a GET then reaches the page's own code)
    or, with `hostile_only`, none that names anything real."""
    strategies = {}
    for match in CONVERTER.finditer(route):
        kind = match["kind"] or "str"
        hostile = HOSTILE_INTEGERS if kind == "int" else HOSTILE_TEXT
        real = st.sampled_from([str(value) for value in known.get(kind, known["str"])])
        strategies[match["name"]] = hostile if hostile_only else st.one_of(real, real, hostile)
    return st.fixed_dictionaries(strategies)


def answered(response) -> int:
    if response.streaming:  # a streamed export fails while it is read, not before
        b"".join(response.streaming_content)
    return response.status_code


# Tried on every address before the random examples: the dates the first test found to overflow.
EXTREME_QUERIES = [
    {"as_of": "0001-01-01T00:00"},
    {"as_of": "9999-12-31T23:59:59+14:00"},
    {"signed_from": "0001-01-01"},
    {"signed_to": "9999-12-31"},
    {"since": "0001-01-01"},
    {"until": "9999-12-31"},
]


@pytest.mark.parametrize("role", ["admin_user", "auditor", "signer", "anonymous"])
@pytest.mark.parametrize(("route", "name"), ROUTES, ids=[name for _route, name in ROUTES])
def test_no_address_of_the_app_answers_with_a_server_error(request, portal, role, route, name):
    client = Client()
    if role != "anonymous":  # the signer is the portal's Ada, who signed and must sign nothing
        email = "ada@example.com" if role == "signer" else request.getfixturevalue(role).email
        signed_in = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
        assert signed_in.status_code == 302

    def explore(real: dict[str, str], hostile: dict[str, str], query: dict, zone: str) -> None:
        client.cookies["portal_tz"] = zone
        get = answered(client.get(address(route, real), query))
        assert get < 500, (address(route, real), query, zone)
        if hostile:  # hostile segments only: a POST to them changes nothing real
            post = answered(client.post(address(route, hostile), {}))
            assert post < 500, address(route, hostile)

    first = {
        match["name"]: str(portal.get(match["kind"] or "str", portal["str"])[0])
        for match in CONVERTER.finditer(route)
    }
    explore = given(
        real=segment_values(route, portal, hostile_only=False),
        hostile=segment_values(route, portal, hostile_only=True),
        query=QUERIES,
        zone=ZONES,
    )(explore)
    for query in EXTREME_QUERIES:
        explore = example(real=first, hostile={}, query=query, zone="Etc/GMT-14")(explore)
    FUZZ(explore)()


@pytest.mark.postgres
@pytest.mark.parametrize(("route", "name"), ROUTES, ids=[name for _route, name in ROUTES])
def test_a_nul_anywhere_in_any_address_is_a_400_on_postgresql(
    logged_in, admin_user, portal, route, name
):
    client = logged_in(admin_user)
    with_nul = address(route, {match["name"]: "1\x00" for match in CONVERTER.finditer(route)})
    plain = address(route, {match["name"]: "1" for match in CONVERTER.finditer(route)})

    if with_nul != plain:
        assert client.get(with_nul).status_code == 400
        assert client.post(with_nul).status_code == 400
    for parameter in QUERY_PARAMETERS:
        assert client.get(plain, {parameter: "x\x00"}).status_code == 400, parameter
