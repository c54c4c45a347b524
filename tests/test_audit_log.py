"""The audit log as auditors read and take it away: details in words, the CSV export and its
own audit row, and filters that are refused without exporting anything."""

import csv
import io
import json
import zoneinfo

import pytest
from django.utils import timezone

from acknowledgements.evidence import ledger
from acknowledgements.models import LedgerEntry
from acknowledgements.people import actions as people_actions
from acknowledgements.reports import audit_log
from tests.pages import text_of, with_query

AUDIT_LOG = "/reports/audit-log/"
EXPORT = "/reports/audit-log/export.csv"
ATTACKER = '=HYPERLINK("http://evil.example","x")'


def exports() -> list[dict]:
    """The export records in the ledger, oldest first."""
    return [
        payload
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("id")
        if (payload := ledger.decode(entry))["action"] == "export"
    ]


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def changes(admin_user, make_person, revision):
    """An administrator's changes: a person renamed, an exemption granted, an audience added."""
    ada = make_person("Ada Lovelace", email="countess@example.com")
    people_actions.update_person(actor=admin_user, person=ada, full_name="Ada King")
    people_actions.set_gate_exemption(actor=admin_user, person=ada, reason="kiosk account")
    people_actions.add_audience(actor=admin_user, name="Interns", via="scim token entra")
    return ada


# --- Details in words ----------------------------------------------------------------------------


def test_details_are_labelled_with_people_changes_and_times_in_words():
    recorded = {
        "person": {"id": 7, "email": "countess@example.com", "name": "Ada King"},
        "changed": {"full_name": {"before": "Ada Lovelace", "after": "Ada King"}},
        "left_at": "2026-03-01T09:30:00.000000Z",
        "audiences": ["contractors", "employees"],
        "mystery_key": {"deep": True},
    }

    found = {detail.label: detail for detail in audit_log.details(recorded)}

    assert list(found) == ["Audiences", "Changed", "Left", "Mystery key", "Person"]
    assert found["Person"].value.kind == "person"
    assert (found["Person"].value.name, found["Person"].value.email) == (
        "Ada King",
        "countess@example.com",
    )
    [renamed] = found["Changed"].details
    assert renamed.label == "Full name"
    assert renamed.text == "Full name: Ada Lovelace → Ada King"
    assert found["Left"].value.kind == "time"
    assert found["Left"].value.moment == timezone.datetime(2026, 3, 1, 9, 30, tzinfo=timezone.UTC)
    assert found["Audiences"].value.text == "contractors, employees"
    assert found["Mystery key"].text == "Mystery key: (Deep: yes)"


def test_a_before_and_after_at_one_level_is_one_change():
    recorded = {"policy": "aup", "before": ["employees"], "after": ["contractors", "employees"]}

    found = audit_log.details(recorded)

    assert [detail.text for detail in found] == [
        "Change: employees → contractors, employees",
        "Policy: aup",
    ]


def test_the_page_shows_details_as_readable_fields(logged_in, auditor, changes):
    response = logged_in(auditor).get(AUDIT_LOG, {"action": "person_changed"})

    assert "<dt>Full name</dt>" in response.content.decode()
    text = text_of(response)
    assert "1 entry." in text
    assert "Full name Ada Lovelace → Ada King" in text
    assert "Person Ada King countess@example.com" in text  # the person, by name then email
    assert "full_name" not in text  # no raw key


def test_times_in_details_are_shown_in_the_viewers_zone(
    logged_in, auditor, admin_user, make_person
):
    person = make_person("Leaving Person", email="leaver@example.com")
    left = timezone.datetime(2026, 3, 1, 23, 30, tzinfo=timezone.UTC)
    people_actions.deactivate_person(actor=admin_user, person=person, left_at=left)
    client = logged_in(auditor)
    client.cookies["portal_tz"] = "Europe/Paris"

    page = client.get(AUDIT_LOG, {"action": "person_deactivated"}).content.decode()

    local = left.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert f'<time datetime="{local.isoformat()}">2 Mar 2026, 00:30 CET</time>' in page


def test_an_entry_through_an_integration_says_so(logged_in, auditor, changes):
    text = text_of(logged_in(auditor).get(AUDIT_LOG, {"action": "audience_added"}))

    assert "Through scim token entra" in text
    assert "Interns (interns)" in text


# --- The CSV export ------------------------------------------------------------------------------


def test_the_export_holds_the_filtered_log_and_is_recorded(logged_in, auditor, changes):
    client = logged_in(auditor)
    page = client.get(AUDIT_LOG, {"actor": "grace"}).content.decode()
    assert f'action="{EXPORT}?actor=grace"' in page  # a POST: the export is recorded

    rows = read_csv(client.post(with_query(EXPORT, {"actor": "grace"})))

    assert list(rows[0]) == audit_log.AUDIT_LOG_COLUMNS
    assert [row["Action"] for row in rows] == [
        "audience_added",
        "gate_exemption_granted",
        "person_changed",
    ]
    added, exempted, renamed = rows
    assert int(added["Sequence"]) > int(exempted["Sequence"]) > int(renamed["Sequence"])
    assert added["Via"] == "scim token entra"
    assert added["Actor"] == "Grace Hopper <grace@example.com>"
    assert exempted["Subject"] == "Ada King <countess@example.com>"
    assert exempted["Summary"] == (
        "Person: Ada King <countess@example.com>; Previous reason: ; Reason: kiosk account"
    )
    assert json.loads(exempted["Details (JSON)"]) == {
        "person": {"id": changes.pk, "email": "countess@example.com", "name": "Ada King"},
        "previous_reason": "",
        "reason": "kiosk account",
    }
    assert renamed["Summary"] == (
        "Changed: (Full name: Ada Lovelace → Ada King); Person: Ada King <countess@example.com>"
    )
    recorded_at = timezone.datetime.fromisoformat(renamed["Recorded at (UTC)"])
    assert renamed["Recorded at (UTC)"].endswith("Z") and recorded_at.tzinfo is not None
    [export] = exports()
    assert export["actor"]["email"] == auditor.email
    assert export["details"] == {"what": "audit-log.csv", "filters": {"actor": "grace"}, "rows": 3}


def test_the_export_leaves_out_its_own_record(logged_in, auditor, changes):
    client = logged_in(auditor)

    first = read_csv(client.post(with_query(EXPORT, {"action": "gate_exemption_granted"})))
    second = read_csv(client.post(with_query(EXPORT, {"action": "export"})))

    assert len(first) == 1
    assert [json.loads(row["Details (JSON)"])["rows"] for row in second] == [1]
    assert [e["details"]["rows"] for e in exports()] == [1, 1]


def test_the_export_neutralises_formulas(logged_in, auditor, admin_user, make_person):
    person = make_person(ATTACKER, email="mallory@example.com")
    people_actions.set_gate_exemption(actor=admin_user, person=person, reason="@SUM(A1)")

    rows = read_csv(
        logged_in(auditor).post(with_query(EXPORT, {"action": "gate_exemption_granted"}))
    )

    [row] = rows
    assert row["Subject"] == "'" + f"{ATTACKER} <mallory@example.com>"
    assert row["Summary"].startswith("Person: ")  # a label first: never a formula
    assert "@SUM(A1)" in row["Summary"]


def test_the_export_with_every_entry(logged_in, auditor, changes, revision):
    rows = read_csv(logged_in(auditor).post(EXPORT))

    actions = [row["Action"] for row in rows]
    assert "revision_published" in actions and "person_changed" in actions
    [export] = exports()
    assert len(rows) == export["details"]["rows"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "nonsense"}, "Action: Select a valid choice."),
        ({"since": "yesterday"}, "From: Enter a valid date."),
        (
            {"since": "2026-02-01", "until": "2026-01-01"},
            "The end date comes before the start date.",
        ),
        ({"until": "0001-01-01"}, "Enter a date between 1970-01-01 and 9998-12-31."),
    ],
)
def test_refused_filters_export_nothing_and_say_why(logged_in, auditor, changes, params, message):
    client = logged_in(auditor)
    before = LedgerEntry.objects.count()

    response = client.post(with_query(EXPORT, params), follow=True)

    assert response.redirect_chain[0][0].startswith(AUDIT_LOG)
    text = text_of(response)
    assert message in text
    assert "Nothing was exported." in text
    assert LedgerEntry.objects.count() == before
    assert exports() == []
    assert "Correct the filters to export the log." in text


def test_the_export_is_for_readers_of_reports_only(logged_in, signer, changes):
    response = logged_in(signer).post(EXPORT)

    assert response.status_code == 403
    assert exports() == []


def test_an_export_without_filters_says_none():
    found = audit_log.details({"filters": {}, "rows": 0, "what": "audit-log.csv"})

    assert [(d.label, d.value.kind, d.value.text) for d in found] == [
        ("Filters", "empty", ""),
        ("Rows", "text", "0"),
        ("What", "text", "audit-log.csv"),
    ]
