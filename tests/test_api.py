"""The read API at /api/v1/: what each resource says, that it says what /reports/ says, its
pages, who may read it, what it records, its rate limit and its errors; and an independent
schema-driven fuzzer (schemathesis) against the live server."""

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from acknowledgements.api import tokens
from acknowledgements.evidence import ledger
from acknowledgements.models import Acknowledgement, ApiToken, LedgerEntry, PolicyRevision, User
from acknowledgements.scim import auth as scim_auth
from acknowledgements.signing import actions as signing_actions
from tests.conftest import client_evidence, sign_through_service

API = "/api/v1"
PROBLEM = "application/problem+json"


# --- The scenario ---------------------------------------------------------------------------------


@pytest.fixture
def read_token(db):
    return tokens.create_api_token(actor=None, name="hr-system", scope=ApiToken.Scope.READ)


@pytest.fixture
def api(client, read_token):
    """GET an address of the API with the read token."""
    _token, secret = read_token

    def get(path: str, **params):
        return client.get(f"{API}{path}", params, HTTP_AUTHORIZATION=f"Bearer {secret}")

    return get


def audit_rows(action: str | None = None) -> list[dict]:
    rows = [
        ledger.decode(entry)
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("pk")
    ]
    return [row for row in rows if action is None or row["action"] == action]


@pytest.fixture
def world(make_person, make_policy, publish, django_capture_on_commit_callbacks):
    """A policy for employees: 1.0 (material, 40 days ago, 14 days to sign), then 1.1 (minor,
    10 days ago). Ada signed 1.0 back then (covered by 1.1), Blaise joined 3 days ago
    (pending), Carol never signed (overdue), Dan declined 1.1 (declined), Eve is a contractor
    (out of scope)."""
    now = timezone.now()
    policy = make_policy()
    first = publish(policy, "1.0", effective_at=now - dt.timedelta(days=40), due_days=14)
    people = {
        "ada": make_person("Ada Lovelace", email="ada@example.com"),
        "blaise": make_person(
            "Blaise Pascal", email="blaise@example.com", joined=now - dt.timedelta(days=3)
        ),
        "carol": make_person("Carol Shaw", email="carol@example.com"),
        "dan": make_person("Dan Bricklin", email="dan@example.com"),
        "eve": make_person("Eve Contractor", email="eve@example.com", audience="contractors"),
    }
    people["ada"].external_id = "HR-0001"
    people["ada"].save(update_fields=["external_id"])
    with (
        time_machine.travel(now - dt.timedelta(days=30), tick=True),
        django_capture_on_commit_callbacks(execute=False),
    ):
        ada_signed = sign_through_service(people["ada"], first)
    second = publish(
        policy, "1.1", effective_at=now - dt.timedelta(days=10), change=PolicyRevision.Change.MINOR
    )
    with django_capture_on_commit_callbacks(execute=False):
        signing_actions.record_decline(
            person=people["dan"], revision=second, reason="No.", client=client_evidence()
        )
    ledger.link_pending()
    return {
        "policy": policy,
        "first": first,
        "second": second,
        "people": people,
        "ada_signed": Acknowledgement.objects.get(pk=ada_signed.pk),
        "now": now,
    }


# --- Policies ---------------------------------------------------------------------------------------


def test_policies_list_their_published_revisions(api, world):
    response = api("/policies")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    [policy] = response.json()["items"]
    assert policy["slug"] == "test-policy" and policy["current_version"] == "1.1"
    first, second = policy["revisions"]
    assert first["version"] == "1.0" and first["change"] == "material"
    assert second["version"] == "1.1" and second["change"] == "minor"
    assert first["text_sha256"] == world["first"].text_sha256
    assert first["effective_at"] == ledger.utc_iso(world["first"].effective_at)
    assert first["due_at"] == ledger.utc_iso(world["first"].due_at)
    assert first["due_days"] == 14 and first["audiences"] == ["employees"]
    assert api("/policies/test-policy").json() == policy


def test_a_draft_is_never_shown(api, world):
    from acknowledgements.policies import actions as policy_actions

    policy_actions.create_draft(
        actor=None, policy=world["policy"], version="2.0", body="# Draft\n", change="material"
    )

    versions = [r["version"] for r in api("/policies/test-policy").json()["revisions"]]

    assert versions == ["1.0", "1.1"]


def test_an_unknown_policy_is_a_404_problem(api, db):
    response = api("/policies/no-such-policy")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and body["type"] == "about:blank"
    assert "no-such-policy" in body["detail"]


# --- People and their status: the reports' rule and figures ------------------------------------


def statuses(api, **params) -> dict[str, str]:
    body = api("/policies/test-policy/people", **params).json()
    return {row["person"]["email"]: row["status"] for row in body["items"]}


def test_a_policys_people_with_their_status_now(api, world):
    response = api("/policies/test-policy/people")

    assert response.status_code == 200
    body = response.json()
    assert body["current_version"] == "1.1" and body["next"] is None
    assert {row["person"]["email"]: row["status"] for row in body["items"]} == {
        "ada@example.com": "signed",
        "blaise@example.com": "pending",
        "carol@example.com": "overdue",
        "dan@example.com": "declined",
    }
    ada = next(row for row in body["items"] if row["person"]["email"] == "ada@example.com")
    assert ada["covering_version"] == "1.0" and ada["audiences"] == ["Employees"]
    assert ada["covered_at"] == ledger.utc_iso(world["ada_signed"].signed_at)
    assert ada["person"]["external_id"] == "HR-0001"


def test_as_of_answers_for_a_past_moment(api, world):
    before_signing = (world["now"] - dt.timedelta(days=35)).isoformat()

    assert statuses(api, as_of=before_signing) == {
        "ada@example.com": "pending",
        "carol@example.com": "pending",
        "dan@example.com": "pending",
    }
    # Ten days after 1.0 took effect its 14 days had not run out; twenty days after, they had.
    at = (world["now"] - dt.timedelta(days=20)).isoformat()
    assert statuses(api, as_of=at) == {
        "ada@example.com": "signed",
        "carol@example.com": "overdue",
        "dan@example.com": "overdue",  # declined only 1.1, which was not published yet
    }


def test_filters_by_status_and_audience(api, world, audiences, make_person):
    make_person("Fay Both", email="fay@example.com", audience="contractors").audiences.add(
        audiences["employees"]
    )

    assert statuses(api, status="overdue") == {"carol@example.com": "overdue"}
    assert set(statuses(api, audience="contractors")) == {"fay@example.com"}
    assert statuses(api, audience="contractors", status="signed") == {}


def test_the_figures_are_the_dashboards_at_the_same_moment(api, world, logged_in, auditor):
    reports = logged_in(auditor)
    for moment in (world["now"], world["now"] - dt.timedelta(days=20)):
        as_of = moment.isoformat()
        dashboard = reports.get("/reports/", {"as_of": as_of})
        [panel] = [p for p in dashboard.context["panels"] if p.figures.policy.slug == "test-policy"]
        shown = panel.figures.completion

        figures = api("/policies/test-policy/figures", as_of=as_of).json()
        listed = Counter(statuses(api, as_of=as_of).values())

        expected = {
            "total": shown.total,
            "signed": shown.signed,
            "pending": shown.pending,
            "overdue": shown.overdue,
            "declined": shown.declined,
            "renewal_due": shown.renewal_due,
            "lapsed": shown.lapsed,
        }
        assert figures["counts"] == expected
        assert dict(listed) == {key: n for key, n in expected.items() if key != "total" and n}
        assert [(a["audience"], a["counts"]["total"]) for a in figures["audiences"]] == [
            (row.audience.slug, row.completion.total) for row in panel.figures.audiences
        ]
        # The reports' people list, filtered by each status, counts the same people.
        for status in ("signed", "pending", "overdue", "declined"):
            page = reports.get(
                "/reports/policies/test-policy/people/", {"as_of": as_of, "status": status}
            )
            assert page.context["page"].paginator.count == listed[status]


def test_pages_are_stable_while_people_are_added(api, world, make_person):
    seen: list[int] = []
    params = {"limit": 2}
    added = []
    while True:
        body = api("/policies/test-policy/people", **params).json()
        seen += [row["person"]["id"] for row in body["items"]]
        if not body["next_cursor"]:
            break
        # Someone joins while the list is read: the list is of its first page's moment.
        added.append(
            make_person(
                f"Late {len(added)}", email=f"late{len(added)}@example.com", joined=timezone.now()
            )
        )
        params = {"limit": 2, "cursor": body["next_cursor"]}
        assert body["next"].endswith("cursor=" + quote(body["next_cursor"], safe=""))

    in_scope = [world["people"][n].pk for n in ("ada", "blaise", "carol", "dan")]
    assert seen == sorted(in_scope)
    # A new list, now, has them too.
    assert {p.pk for p in added} <= {
        row["person"]["id"]
        for row in api("/policies/test-policy/people", limit=500).json()["items"]
    }


def test_a_page_costs_the_same_queries_wherever_it_starts(api, world, make_person):
    for n in range(12):
        make_person(f"Person {n}", email=f"p{n}@example.com")
    api("/policies/test-policy/people", limit=1)  # the token's first use, the hour's audit row
    counts = []
    params: dict = {"limit": 5}
    while True:
        with CaptureQueriesContext(connection) as queries:
            body = api("/policies/test-policy/people", **params).json()
        counts.append(len(queries))
        if not body["next_cursor"]:
            break
        params = {"limit": 5, "cursor": body["next_cursor"]}

    assert len(counts) == 4 and len(set(counts)) == 1, counts


def test_a_cursor_keeps_its_moment(api, world):
    first = api("/policies/test-policy/people", limit=1).json()

    other = api(
        "/policies/test-policy/people",
        cursor=first["next_cursor"],
        as_of=(world["now"] - dt.timedelta(days=20)).isoformat(),
    )

    assert other.status_code == 400
    assert other.json()["invalid_params"][0]["name"] == "cursor"


def test_a_cursor_is_taken_back_only_by_its_own_list(api, world, sign):
    sign(world["people"]["carol"], world["second"])
    people = api("/policies/test-policy/people", limit=1).json()["next_cursor"]
    signatures = api("/acknowledgements", limit=1).json()["next_cursor"]

    assert api("/acknowledgements", cursor=people).status_code == 400
    assert api("/policies/test-policy/people", cursor=signatures).status_code == 400


# --- One person -------------------------------------------------------------------------------------


def test_one_persons_status_by_email_external_id_or_id(api, world):
    ada = world["people"]["ada"]
    by_email = api("/people/status", email="ADA@example.com").json()

    assert by_email == api("/people/status", external_id="HR-0001").json() | {
        "as_of": by_email["as_of"]
    }
    assert api("/people/status", id=ada.pk).json()["person"]["email"] == "ada@example.com"
    [standing] = by_email["policies"]
    assert standing["policy"] == "test-policy" and standing["status"] == "signed"
    assert standing["current_version"] == "1.1" and standing["covering_version"] == "1.0"
    assert standing["covering_receipt_number"] == world["ada_signed"].receipt_number
    carol = api("/people/status", email="carol@example.com").json()["policies"][0]
    assert carol["status"] == "overdue" and carol["overdue"] is True
    assert api("/people/status", email="eve@example.com").json()["policies"] == []


def test_naming_a_person_takes_exactly_one_key(api, world):
    for params in ({}, {"email": "ada@example.com", "id": 1}):
        response = api("/people/status", **params)
        assert response.status_code == 400, params
        assert response["Content-Type"] == PROBLEM
        assert "exactly one" in response.json()["detail"]
    missing = api("/people/status", email="nobody@example.com")
    assert missing.status_code == 404 and missing["Content-Type"] == PROBLEM


# --- Acknowledgements ------------------------------------------------------------------------------


def test_acknowledgements_with_receipt_and_ledger_sequence(api, world, sign):
    ack = world["ada_signed"]

    [row] = api("/acknowledgements").json()["items"]

    assert row["receipt_number"] == ack.receipt_number
    assert row["ledger_sequence"] == ack.ledger_entry.sequence is not None
    assert row["policy"] == "test-policy" and row["version"] == "1.0"
    assert row["revision_id"] == world["first"].pk and row["person"]["email"] == "ada@example.com"
    assert row["signed_at"] == ledger.utc_iso(ack.signed_at)
    assert row["receipt"] is None  # not issued in this scenario
    assert api(f"/acknowledgements/{ack.receipt_number}").json() == row


def test_acknowledgements_filters(api, world, sign):
    later = sign(world["people"]["carol"], world["second"])
    ledger.link_pending()
    since = (world["now"] - dt.timedelta(days=1)).isoformat()

    def receipts(**params) -> list[str]:
        response = api("/acknowledgements", **params)
        assert response.status_code == 200, response.content
        return [row["receipt_number"] for row in response.json()["items"]]

    ada = world["ada_signed"].receipt_number
    assert receipts() == [ada, later.receipt_number]
    assert receipts(policy="test-policy") == [ada, later.receipt_number]
    assert receipts(revision=world["second"].pk) == [later.receipt_number]
    assert receipts(person=world["people"]["ada"].pk) == [ada]
    assert receipts(signed_since=since) == [later.receipt_number]
    unknown = api("/acknowledgements", policy="nope")
    assert unknown.status_code == 400 and unknown.json()["invalid_params"][0]["name"] == "policy"


def test_acknowledgement_pages_are_stable_while_people_sign(api, world, sign):
    sign(world["people"]["carol"], world["second"])
    first = api("/acknowledgements", limit=1).json()
    newest = sign(world["people"]["blaise"], world["second"])

    rest = api("/acknowledgements", limit=1, cursor=first["next_cursor"]).json()
    last = api("/acknowledgements", limit=1, cursor=rest["next_cursor"]).json()

    numbers = [r["receipt_number"] for page in (first, rest, last) for r in page["items"]]
    assert numbers == list(
        Acknowledgement.objects.order_by("pk").values_list("receipt_number", flat=True)
    )
    assert numbers[-1] == newest.receipt_number and last["next_cursor"] is None


def test_the_receipt_downloads_with_the_token(
    api, client, read_token, signer, revision, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # links the entry, issues the receipt
        ack = sign_through_service(signer, revision)

    row = api(f"/acknowledgements/{ack.receipt_number}").json()

    assert row["receipt"]["sha256"] == ack.receipt.sha256
    url = row["receipt"]["url"]
    assert url == f"http://testserver{API}/acknowledgements/{ack.receipt_number}/receipt.pdf"
    pdf = client.get(url, HTTP_AUTHORIZATION=f"Bearer {read_token[1]}")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    assert client.get(url).status_code == 401


# --- The ledger -----------------------------------------------------------------------------------


def test_the_latest_ledger_checkpoint(api, world):
    from acknowledgements.evidence import transparency

    assert api("/ledger/checkpoint").status_code in (200, 404)
    made = transparency.checkpoint()

    body = api("/ledger/checkpoint").json()

    assert body["tree_size"] == made.tree_size == LedgerEntry.objects.exclude(sequence=None).count()
    assert body["root_hash"] == made.root_hash and body["note"] == made.note
    assert body["created_at"] == ledger.utc_iso(made.created_at)


def test_no_checkpoint_yet_is_a_404(api, db):
    response = api("/ledger/checkpoint")

    assert response.status_code == 404 and response["Content-Type"] == PROBLEM


# --- Tokens ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/policies",
        "/policies/test-policy",
        "/policies/test-policy/figures",
        "/policies/test-policy/people",
        "/people/status?email=ada@example.com",
        "/acknowledgements",
        "/acknowledgements/R-1",
        "/acknowledgements/R-1/receipt.pdf",
        "/ledger/checkpoint",
    ],
)
def test_every_resource_needs_a_live_read_token(client, world, path):
    _read, read_secret = tokens.create_api_token(actor=None, name="r", scope=ApiToken.Scope.READ)
    _scim, scim_secret = scim_auth.create_api_token(actor=None, name="entra")
    revoked, revoked_secret = tokens.create_api_token(actor=None, name="old", scope="read")
    tokens.revoke_api_token(actor=None, token=revoked)

    def status(secret: str | None) -> tuple[int, str]:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
        response = client.get(f"{API}{path}", **headers)
        return response.status_code, response["Content-Type"]

    assert status(None) == (401, PROBLEM)
    assert status("aup_read_not-a-token") == (401, PROBLEM)
    assert status(revoked_secret) == (401, PROBLEM)
    assert status(scim_secret) == (403, PROBLEM)
    assert status(read_secret)[0] in (200, 404)


def test_a_401_says_how_to_authenticate(client, db):
    response = client.get(f"{API}/policies")

    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert "Authorization: Bearer" in response.json()["detail"]


def test_a_read_token_does_not_open_scim(client, read_token):
    response = client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {read_token[1]}")

    assert response.status_code == 401


def test_a_session_is_not_a_token(logged_in, admin_user):
    assert logged_in(admin_user).get(f"{API}/policies").status_code == 401


def test_the_last_use_is_noted(api, read_token, db):
    token, _secret = read_token
    assert token.last_used_at is None

    api("/policies")

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_the_command_creates_lists_and_revokes_read_tokens(db):
    out = StringIO()
    call_command("api_token", "create", "--name", "grc-tool", stdout=out)
    secret = out.getvalue().strip().splitlines()[-1]
    assert re.fullmatch(r"aup_read_[A-Za-z0-9_-]{40,}", secret)
    assert tokens.authenticate(f"Bearer {secret}", scope=ApiToken.Scope.READ).name == "grc-tool"
    assert scim_auth.authenticate(f"Bearer {secret}") is None

    listed = StringIO()
    call_command("api_token", "list", stdout=listed)
    assert listed.getvalue().startswith("grc-tool\tcreated ")
    assert secret not in listed.getvalue()

    call_command("api_token", "revoke", "--name", "grc-tool", stdout=StringIO())
    assert tokens.authenticate(f"Bearer {secret}", scope=ApiToken.Scope.READ) is None
    assert [(r["action"], r["details"]) for r in audit_rows()] == [
        ("api_token_created", {"token": "grc-tool", "scope": "read"}),
        ("api_token_revoked", {"token": "grc-tool", "scope": "read"}),
    ]


def test_administrators_create_a_read_token(logged_in, admin_user, client):
    page = logged_in(admin_user).post(
        "/manage/integrations/", {"name": "GRC tool", "scope": "read"}
    )

    assert page.status_code == 200
    secret = re.search(rb'data-testid="token-secret">([^<]+)<', page.content).group(1).decode()
    assert secret.startswith("aup_read_")
    assert ApiToken.objects.get(name="GRC tool").scope == ApiToken.Scope.READ
    assert b"/api/v1/docs" in page.content
    refused = client.post("/manage/integrations/", {"name": "Other", "scope": "admin"})
    assert refused.status_code == 400


# --- What is recorded --------------------------------------------------------------------------------


def test_reads_of_personal_data_are_recorded_once_an_hour(api, world, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    api("/policies")  # no personal data
    assert audit_rows("api_personal_data_read") == []

    api("/policies/test-policy/people")
    api("/people/status", email="ada@example.com")
    api("/acknowledgements")

    [row] = audit_rows("api_personal_data_read")
    assert row["via"] == "api token hr-system" and row["actor"] is None
    assert row["details"]["token"] == "hr-system"
    assert row["details"]["first_read"] == "/api/v1/policies/test-policy/people"

    time_machine.shift(dt.timedelta(hours=1))
    api("/acknowledgements")
    assert len(audit_rows("api_personal_data_read")) == 2


def test_auditors_see_the_tokens_reads_in_the_audit_log(api, world, logged_in, auditor):
    api("/acknowledgements")

    page = logged_in(auditor).get("/reports/audit-log/", {"action": "api_personal_data_read"})

    assert page.status_code == 200
    assert b"api token hr-system" in page.content


# --- Rate limit ---------------------------------------------------------------------------------------


def test_too_many_requests_get_a_429_with_retry_after(api, db, settings, client):
    settings.PORTAL_API_REQUESTS_PER_MINUTE = 3
    assert [api("/policies").status_code for _ in range(3)] == [200, 200, 200]

    refused = api("/policies")

    assert refused.status_code == 429 and refused["Content-Type"] == PROBLEM
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Counted per token: another token is not held back.
    _other, secret = tokens.create_api_token(actor=None, name="other", scope="read")
    assert client.get(f"{API}/policies", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


# --- Problem details: no value is a 500 --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/policies/test-policy/people", {"limit": "0"}, "limit"),
        ("/policies/test-policy/people", {"limit": "10" * 30}, "limit"),
        ("/policies/test-policy/people", {"limit": "ten"}, "limit"),
        ("/policies/test-policy/people", {"as_of": "9999-12-31T23:59:59Z"}, "as_of"),
        ("/policies/test-policy/people", {"as_of": "0001-01-01T00:00:00+14:00"}, "as_of"),
        ("/policies/test-policy/people", {"as_of": "2999-01-01T00:00:00Z"}, "as_of"),
        ("/policies/test-policy/people", {"as_of": "2026-01-01T00:00:00"}, "as_of"),
        ("/policies/test-policy/people", {"as_of": "yesterday"}, "as_of"),
        ("/policies/test-policy/people", {"status": "happy"}, "status"),
        ("/policies/test-policy/people", {"audience": "nobody"}, "audience"),
        ("/policies/test-policy/people", {"cursor": "not-a-cursor"}, "cursor"),
        ("/policies/test-policy/people", {"cursor": "x" * 5000}, "cursor"),
        ("/policies/test-policy/figures", {"as_of": "0001-01-01T00:00:00Z"}, "as_of"),
        ("/people/status", {"id": str(2**64)}, "id"),
        ("/people/status", {"id": "-1"}, "id"),
        ("/acknowledgements", {"person": "9" * 40}, "person"),
        ("/acknowledgements", {"revision": "1e9"}, "revision"),
        ("/acknowledgements", {"signed_since": "9999-12-31T23:59:59-14:00"}, "signed_since"),
        ("/acknowledgements", {"cursor": "eyJhZnRlciI6IDF9"}, "cursor"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(api, world, path, params, name):
    response = api(path, **params)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400 and body["title"] == "Bad Request"
    assert name in [param["name"] for param in body["invalid_params"]]
    assert body["detail"].startswith(f"{name}: ") or f"{name}: " in body["detail"]


def test_the_api_accepts_the_moments_the_reports_accept():
    from acknowledgements.api import schemas
    from acknowledgements.forms import reports

    assert (schemas.EARLIEST_DATE, schemas.LATEST_DATE) == (
        reports.EARLIEST_DATE,
        reports.LATEST_DATE,
    )


def test_a_nul_byte_is_a_400_problem(client, read_token, db):
    for address in (f"{API}/policies/a%00b", f"{API}/acknowledgements?policy=%00"):
        response = client.get(address, HTTP_AUTHORIZATION=f"Bearer {read_token[1]}")
        assert response.status_code == 400
        assert response["Content-Type"] == PROBLEM
        assert json.loads(response.content)["status"] == 400


def test_other_addresses_under_the_api_are_404_problems(api, client, db):
    for address in ("/api/v1/", "/api/v1/nothing", "/api/v2/policies", "/api/"):
        response = client.post(address)
        assert response.status_code == 404, address
        assert response["Content-Type"] == PROBLEM
    assert api("/policies/a/b/c").status_code == 404


def test_unknown_ids_and_long_receipt_numbers_are_404s(api, world):
    assert api("/people/status", id=str(2**63 - 1)).status_code == 404
    assert api("/acknowledgements/" + "R" * 5000).status_code == 404
    assert api("/acknowledgements", person=str(2**63 - 1)).json()["items"] == []


# --- The schema and its documentation ------------------------------------------------------------


def test_the_schema_is_public_and_describes_every_resource(client, db):
    response = client.get(f"{API}/openapi.json")

    assert response.status_code == 200

    def no_repeated_key(pairs: list) -> dict:  # Swagger UI's YAML parser refuses one
        keys = [key for key, _value in pairs]
        assert len(keys) == len(set(keys)), keys
        return dict(pairs)

    schema = json.loads(response.content, object_pairs_hook=no_repeated_key)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        f"{API}/policies",
        f"{API}/policies/{{slug}}",
        f"{API}/policies/{{slug}}/figures",
        f"{API}/policies/{{slug}}/people",
        f"{API}/people/status",
        f"{API}/acknowledgements",
        f"{API}/acknowledgements/{{receipt_number}}",
        f"{API}/acknowledgements/{{receipt_number}}/receipt.pdf",
        f"{API}/ledger/checkpoint",
    }
    errors = schema["paths"][f"{API}/policies"]["get"]["responses"]["401"]["content"]
    assert list(errors) == [PROBLEM]
    assert schema["components"]["securitySchemes"]["ReadToken"]["scheme"] == "bearer"


def test_the_documentation_uses_no_cdn(client, db):
    response = client.get(f"{API}/docs")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]


# --- The README's examples --------------------------------------------------------------------------


def readme_curls() -> list[str]:
    """The curl commands of the README's "Read API" section (under "Integrations"),
    continuation lines joined."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    section = readme.split("\n### Read API\n", 1)[1]
    section = re.split(r"\n#{2,3} ", section, maxsplit=1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("curl "):
                commands.append(command.strip())
    return commands


def test_the_readmes_curl_examples_work(
    live_server, evidence_db, make_person, make_policy, publish
):
    if not shutil.which("curl"):
        pytest.skip("needs curl")
    policy = make_policy("acceptable-use-policy", name="Acceptable Use Policy")
    publish(policy, "1.0")
    make_person("Ada Lovelace", email="ada@example.com")
    _token, secret = tokens.create_api_token(actor=None, name="readme", scope="read")
    commands = readme_curls()
    assert len(commands) >= 4

    for command in commands:
        command = command.replace("https://policies.example.com", live_server.url).replace(
            "curl ", "curl -sS -o /dev/null -w '%{http_code}' ", 1
        )
        result = subprocess.run(
            ["bash", "-c", command],
            env={"TOKEN": secret, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout == "200", (command, result.stdout, result.stderr)


# --- An independent fuzzer against the live server -----------------------------------------------


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("needs schemathesis (pip install -e '.[dev]')")
    return found


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(
    live_server, evidence_db, settings, tmp_path
):
    """Schemathesis generates requests from the schema (valid and invalid values of every
    parameter) and checks each response: never a 5xx, always a documented status, content
    type, headers and body matching the schema."""
    settings.PORTAL_API_REQUESTS_PER_MINUTE = 0  # it sends thousands
    from acknowledgements.models import Audience
    from acknowledgements.policies import actions as policy_actions

    policy = policy_actions.create_policy(
        actor=None,
        name="Fuzzed Policy",
        slug="test-policy",
        owner=None,
        audiences=[Audience.objects.get(slug="employees")],
    )
    draft = policy_actions.create_draft(
        actor=None,
        policy=policy,
        version="1.0",
        body="# Fuzzed\n",
        change="material",
        effective_at=timezone.now(),
    )
    revision = policy_actions.publish_revision(actor=None, revision=draft)
    person = User.objects.create_user(email="fuzz@example.com", password=None, full_name="Fuzz")
    person.audiences.add(Audience.objects.get(slug="employees"))
    sign_through_service(person, revision)
    ledger.link_pending()
    _token, secret = tokens.create_api_token(actor=None, name="fuzzer", scope="read")

    result = subprocess.run(
        [
            _schemathesis(),
            "run",
            f"{live_server.url}{API}/openapi.json",
            "--header",
            f"Authorization: Bearer {secret}",
            "--checks",
            "all",
            # A valid-looking request can still be refused: a moment in the future, an audience
            # or a policy that does not exist (a 400 or a 404, each documented).
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "40",
            "--seed",
            "20261205",
            "--no-color",
            "--generation-database",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failures:" not in result.stdout, result.stdout[-6000:]
    assert re.search(r"(\d+) generated, \1 passed", result.stdout), result.stdout[-3000:]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("post", "/api/v1/policies", "GET"),
        ("delete", "/api/v1/policies/test-policy/people", "GET"),
        ("put", "/api/v1/openapi.json", "GET"),
    ],
)
def test_a_method_an_address_does_not_serve_is_a_problem_detail(db, client, method, path, allowed):
    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == allowed
    problem = response.json()
    assert (problem["status"], problem["title"]) == (405, "Method Not Allowed")
    assert allowed in problem["detail"]
