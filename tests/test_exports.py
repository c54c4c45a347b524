"""Exports read back as an auditor would: the CSV with csv, the XLSX with openpyxl, the ZIP with
zipfile and the standard tools its README names, each compared with the database."""

import ast
import contextlib
import csv
import datetime as dt
import hashlib
import importlib
import io
import itertools
import json
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from types import SimpleNamespace

import pytest
import time_machine
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import CheckConstraint
from django.utils import timezone
from openpyxl import load_workbook

from acknowledgements.evidence import (
    checks,
    ledger,
    merkle,
    retention,
    signature_columns,
    transparency,
)
from acknowledgements.models import (
    Acknowledgement,
    Audience,
    ClientDetails,
    ExportJob,
    LedgerCheck,
    LedgerCheckpoint,
    LedgerEntry,
    Policy,
    Receipt,
)
from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.reports import audit_package, exports, figures, lists, signatures_csv
from acknowledgements.standings import coverage
from tests.conftest import client_evidence, downloaded, set_evidence_triggers
from tests.pages import with_query

DAY = dt.timedelta(days=1)
ATTACKER = "=cmd|' /C calc'!A0"
ACKS = "/reports/policies/test-policy/export/acknowledgements.csv"
PEOPLE = "/reports/policies/test-policy/export/people.csv"
XLSX = "/reports/policies/test-policy/export/acknowledgements.xlsx"
PDF = "/reports/policies/test-policy/export/summary.pdf"
ZIP = "/reports/policies/test-policy/export/audit-package.zip"


def _sign_two(policy, publish, make_person, sign, audiences, capture=None):
    start = timezone.now() - 20 * DAY
    revision = publish(policy, "1.0", effective_at=start, due_days=30)
    ada = make_person("Ada Lovelace", email="ada@example.com")
    mallory = make_person(ATTACKER, email="mallory@example.com")
    make_person("Nobody Yet", email="nobody@example.com")
    with capture(execute=True) if capture else contextlib.nullcontext():
        with time_machine.travel(start + 10 * DAY, tick=False):
            first = sign(ada, revision)
        second = sign(mallory, revision)
    # After signing: a new name and another audience. The CSV keeps the name at signing.
    ada.full_name = "Ada King"
    ada.save()
    ada.audiences.add(audiences["contractors"])
    return {"revision": revision, "first": first, "second": second, "start": start}


@pytest.fixture
def signed(policy, publish, make_person, sign, audiences):
    """Two signatures (one ten days ago), then the people change; no receipts (no commit)."""
    return _sign_two(policy, publish, make_person, sign, audiences)


@pytest.fixture
def sealed(policy, publish, make_person, sign, audiences, django_capture_on_commit_callbacks):
    """The same, with their receipts sealed and stored (about half a second each)."""
    return _sign_two(
        policy, publish, make_person, sign, audiences, django_capture_on_commit_callbacks
    )


def download(response) -> bytes:
    # Consuming the stream closes the response (and its file) the way the test client expects;
    # closing it again would also close the database connection.
    return b"".join(response.streaming_content)


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def last_export() -> dict:
    entry = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).latest("id")
    payload = ledger.decode(entry)
    assert payload["action"] == "export"
    return payload


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_has_one_row_per_signature_as_recorded_at_signing(logged_in, auditor, signed):
    response = logged_in(auditor).post(ACKS)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="test-policy-')
    rows = read_csv(download(response))
    assert list(rows[0]) == [header for header, _width in exports.ACKNOWLEDGEMENT_COLUMNS]
    acknowledgements = Acknowledgement.objects.select_related("ledger_entry", "revision")
    expected = acknowledgements.order_by("ledger_entry__sequence")
    assert [row["Receipt number"] for row in rows] == [a.receipt_number for a in expected]
    for row, acknowledgement in zip(rows, expected, strict=True):
        entry = acknowledgement.ledger_entry
        payload = ledger.decode(entry)
        assert row["Email at signing"] == payload["person"]["email"]
        assert row["Signed at (UTC)"] == ledger.utc_iso(acknowledgement.signed_at)
        assert row["Signed at (UTC)"].endswith("Z")
        assert row["Policy"] == "Test Policy"
        assert row["Version"] == "1.0"
        assert row["Text SHA-256"] == acknowledgement.revision.text_sha256
        assert row["IP address"] == "192.0.2.10"
        assert row["User agent"] == entry.client_details.user_agent
        assert row["Authentication method"] == "password"
        assert row["Ledger sequence"] == str(entry.sequence)
        assert row["Row hash"] == entry.row_hash
    ada, mallory = rows
    assert ada["Name at signing"] == "Ada Lovelace"  # renamed "Ada King" since
    assert ada["Audiences (current)"] == "Contractors; Employees"
    assert mallory["Name at signing"] == "'" + ATTACKER  # neutralised for spreadsheets
    payload = last_export()
    assert payload["actor"]["email"] == "alan@example.com"
    assert payload["details"]["what"] == "acknowledgements.csv"
    assert payload["details"]["rows"] == 2
    assert payload["details"]["filters"]["policy"] == "test-policy"


def test_csv_as_of_keeps_the_signatures_recorded_by_then(logged_in, auditor, signed):
    moment = timezone.localtime(signed["start"] + 15 * DAY)
    response = logged_in(auditor).post(with_query(ACKS, {"as_of": moment.isoformat()}))
    rows = read_csv(download(response))
    assert [row["Receipt number"] for row in rows] == [signed["first"].receipt_number]
    details = last_export()["details"]
    assert details["rows"] == 1
    assert details["filters"]["as_of"] == ledger.utc_iso(moment)


def test_csv_honours_the_list_filters(logged_in, auditor, signed):
    response = logged_in(auditor).post(with_query(ACKS, {"q": "mallory", "status": "signed"}))
    rows = read_csv(download(response))
    assert [row["Email at signing"] for row in rows] == ["mallory@example.com"]
    assert last_export()["details"]["filters"] == {
        "policy": "test-policy",
        "as_of": last_export()["details"]["filters"]["as_of"],
        "status": "signed",
        "search": "mallory",
    }


def test_formula_injection_is_neutralised_in_every_dangerous_prefix():
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert exports.neutralise(dangerous) == "'" + dangerous
    assert exports.neutralise("Ada") == "Ada"
    assert exports.neutralise("2026-01-01T00:00:00Z") == "2026-01-01T00:00:00Z"


def test_csv_is_streamed_in_blocks_of_rows(signed):
    many = [("x",)] * (exports.BLOCK_ROWS * 2 + 5)
    blocks = list(exports.csv_blocks(["h"], many))
    assert len(blocks) == 3
    assert sum(block.count("\r\n") for block in blocks) == len(many) + 1


def test_people_csv_lists_everyone_in_scope_with_their_status(logged_in, auditor, signed):
    rows = read_csv(download(logged_in(auditor).post(PEOPLE)))
    by_email = {row["Email"]: row for row in rows}
    assert set(by_email) == {"ada@example.com", "mallory@example.com", "nobody@example.com"}
    assert by_email["ada@example.com"]["Name"] == "Ada King"  # today's name
    assert by_email["ada@example.com"]["Status"] == "signed"
    assert by_email["ada@example.com"]["Version signed"] == "1.0"
    assert by_email["nobody@example.com"]["Status"] == "pending"
    assert by_email["mallory@example.com"]["Name"] == "'" + ATTACKER
    assert last_export()["details"]["what"] == "people.csv"
    assert last_export()["details"]["rows"] == 3


# --- CSV by PostgreSQL's COPY --------------------------------------------------------------------

# Each of these, as a name, user agent or address, has to come out of COPY exactly as out of
# Python's csv writer: formula prefixes, separators, quotes, line breaks inside a cell, accents,
# characters outside the BMP, spaces at either end.
AWKWARD = [
    "=SUM(A1:A9)",
    "+33 1 23 45 67 89",
    "-minus",
    "@handle",
    "\tTabbed",
    "\rReturned",
    "King, Ada",
    'Ada "the Countess" Lovelace',
    "two\nlines",
    "windows\r\nlines",
    "Zoë Ünal",
    "emoji 👩\u200d💻 ok",
    "  padded  ",
    "'already quoted",
    "\\.",
]


def _signature_with_payload(person, revision, number: str, payload: dict):
    """A signature whose ledger payload is exactly `payload` (plus the ledger's own keys), with
    the columns the signing action stores from it."""
    entry = ledger.append(
        kind=LedgerEntry.Kind.SIGNED, person=person, revision=revision, payload=payload
    )
    return Acknowledgement.objects.create(
        person=person,
        revision=revision,
        ledger_entry=entry,
        receipt_number=number,
        signed_at=entry.recorded_at,
        **signature_columns.columns_of(ledger.decode(entry)),
    )


@pytest.fixture
def awkward(policy, publish, make_person, sign, audiences):
    """Signatures with every awkward value, and payloads that lack or bend the usual fields."""
    revision = publish(policy, "1.0", effective_at=timezone.now() - 3 * DAY, due_days=30)
    ombudsmen = Audience.objects.create(name="ombudsman office", slug="ombudsmen")
    for index, text in enumerate(AWKWARD):
        person = make_person(text, email=f"awkward{index}@example.com")
        if index % 3 == 0:
            person.audiences.add(audiences["contractors"], audiences["partners"])
        if index % 5 == 0:
            person.audiences.add(Audience.objects.create(name=f"Équipe {text}", slug=f"e{index}"))
        if index % 4 == 0:  # code point order puts it last, a linguistic collation first
            person.audiences.add(ombudsmen)
        sign(
            person,
            revision,
            # A typed name is one line (names.py); the account's name, recorded with the
            # signature, keeps its awkward characters.
            typed_name=" ".join(text.split()),
            client=client_evidence(user_agent=text, ip=None if index % 2 else text),
        )
    # Payloads written by hand: missing, null, boolean, numeric and misplaced values.
    odd = [
        {},
        {"person": {"email": None, "name": True}, "client": {"ip": 7, "user_agent": False}},
        {"person": "not an object", "client": [1, 2], "authentication": {"method": -12}},
        {"person": {"email": "", "name": ""}, "client": {"ip": "", "user_agent": " "}},
    ]
    for index, payload in enumerate(odd):
        person = make_person(f"Odd {index}", email=f"odd{index}@example.com", audience=None)
        _signature_with_payload(person, revision, f"=ODD-{index}", payload)
    # The kept IP address and user agent: removed after retention for one signature (as the
    # "redacted" event retention writes records), deleted with no recorded removal for another,
    # changed behind the portal's back for a third (PostgreSQL's trigger, which refuses that, is
    # switched off for the rest of the test's transaction).
    signatures = list(Acknowledgement.objects.filter(revision=revision).order_by("id"))
    removed, changed, deleted = signatures[1], signatures[2], signatures[4]
    ledger.link_pending()
    removed.ledger_entry.refresh_from_db()
    ledger.append(
        kind=LedgerEntry.Kind.REDACTED,
        person=removed.person,
        payload={"removed": ["ip", "user_agent"], "entries": [removed.ledger_entry.sequence]},
    )
    ClientDetails.objects.filter(
        ledger_entry__in=[removed.ledger_entry, deleted.ledger_entry]
    ).delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending
            cursor.execute(
                "ALTER TABLE acknowledgements_clientdetails "
                "DISABLE TRIGGER acknowledgements_clientdetails_no_update"
            )
    ClientDetails.objects.filter(ledger_entry=changed.ledger_entry).update(
        ip="198.51.100.7", user_agent=None
    )
    return revision


def _both_paths(queryset) -> tuple[bytes, bytes]:
    return (
        b"".join(signatures_csv.copied_acknowledgements_csv(queryset)),
        b"".join(exports.python_acknowledgements_csv(queryset)),
    )


@pytest.mark.postgres
def test_copy_csv_is_byte_identical_to_the_python_writer(awkward, policy):
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)

    copied, written = _both_paths(signatures)

    assert copied == written
    rows = read_csv(copied)
    assert len(rows) == len(AWKWARD) + 4
    names = [row["Name at signing"] for row in rows]
    assert "'=SUM(A1:A9)" in names and "'\tTabbed" in names and "two\nlines" in names
    # The header and each row end with CRLF; the one inside a name and a user agent stays.
    assert copied.count(b"\r\n") == 1 + len(rows) + 2
    odd = rows[len(AWKWARD) :]
    assert odd[0]["Email at signing"] == "not recorded"
    assert odd[1]["Name at signing"] == "yes" and odd[1]["User agent"] == "no"
    assert odd[1]["IP address"] == "7"
    assert odd[2]["Authentication method"] == "'-12"
    assert odd[3]["Email at signing"] == "" and odd[3]["User agent"] == " "
    assert odd[0]["Receipt number"] == "'=ODD-0"
    # (every other awkward signature recorded no IP address)
    assert (rows[1]["IP address"], rows[1]["User agent"]) == ("not recorded", figures.REMOVED)
    assert rows[2]["IP address"] == f"198.51.100.7 {figures.CLIENT_MISMATCH}"
    assert rows[2]["User agent"] == f"None {figures.CLIENT_MISMATCH}"
    assert rows[3]["User agent"] == exports.neutralise(AWKWARD[3])  # held and matching
    assert rows[0]["Audiences (current)"] == (
        "Contractors; Employees; Partners; ombudsman office; Équipe =SUM(A1:A9)"
    )


@pytest.mark.postgres
def test_copy_csv_tells_a_recorded_removal_from_a_missing_value(awkward, policy):
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)

    copied, written = _both_paths(signatures)

    assert copied == written
    rows = read_csv(copied)
    assert rows[1]["User agent"] == figures.REMOVED  # a "redacted" event lists it
    assert (rows[4]["IP address"], rows[4]["User agent"]) == (figures.MISSING, figures.MISSING)
    assert figures.MISSING not in {rows[1]["IP address"], rows[1]["User agent"]}


@pytest.mark.postgres
def test_copy_csv_is_identical_under_every_filter(awkward, policy):
    moment = timezone.now()
    timeline = coverage.timeline_for(policy, moment)
    for filters in [
        lists.PeopleFilter(search="awkward1"),
        lists.PeopleFilter(status="signed"),
        lists.PeopleFilter(signed_to=(moment - 10 * DAY).date()),  # nothing: an empty CSV
    ]:
        copied, written = _both_paths(lists.signatures(policy, timeline, moment, filters))
        assert copied == written, filters


@pytest.mark.postgres
def test_copy_csv_streams_in_blocks(awkward, policy, monkeypatch):
    monkeypatch.setattr(signatures_csv, "COPY_BLOCK_BYTES", 1)
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)

    blocks = list(signatures_csv.copied_acknowledgements_csv(signatures))

    assert len(blocks) == 1 + signatures.count()  # the header, then one row per block
    assert b"".join(blocks) == b"".join(exports.python_acknowledgements_csv(signatures))


@pytest.mark.postgres
def test_a_copy_stopped_early_is_cancelled_and_the_connection_still_works(
    evidence_db, policy, publish, make_person, sign, monkeypatch
):
    revision = publish(policy, "1.0")
    for index in range(5):
        sign(make_person(f"Person {index}", email=f"p{index}@example.com"), revision)
    monkeypatch.setattr(signatures_csv, "COPY_BLOCK_BYTES", 1)
    monkeypatch.setattr(signatures_csv, "COPY_QUEUE_BLOCKS", 1)
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)
    stream = signatures_csv.copied_acknowledgements_csv(signatures)

    assert next(stream).startswith(b"Receipt number,")
    assert next(stream).count(b"\r\n") == 1
    stream.close()  # as when the client goes away mid-download

    assert not any(thread.name == "csv-copy" for thread in threading.enumerate())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM acknowledgements_acknowledgement")
        assert cursor.fetchone() == (5,)


# --- What each signature stores from its payload ---------------------------------------------------


def stored(acknowledgement) -> dict[str, str | None]:
    return {column: getattr(acknowledgement, column) for column in signature_columns.COLUMNS}


def test_a_signature_stores_what_its_payload_shows(signed):
    acknowledgement = signed["first"]
    payload = ledger.decode(acknowledgement.ledger_entry)

    assert stored(Acknowledgement.objects.get(pk=acknowledgement.pk)) == {
        "email_at_signing": "ada@example.com",
        "name_at_signing": "Ada Lovelace",  # as at signing: the account is renamed since
        "authentication_method": "password",
        "ip_sha256": payload["client"]["ip_sha256"],
        "ip_shown": None,
        "user_agent_sha256": payload["client"]["user_agent_sha256"],
        "user_agent_shown": None,
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {},
            {"email_at_signing": "not recorded", "ip_shown": "not recorded"},
        ),
        (
            {"person": {"email": None, "name": True}, "client": {"ip": 7, "user_agent": False}},
            {"name_at_signing": "yes", "ip_shown": "7", "user_agent_shown": "no"},
        ),
        (
            # A payload written before commitments existed carries the values themselves.
            {"client": {"ip": "192.0.2.1", "user_agent": None}, "authentication": {"mfa": 1}},
            {"ip_shown": "192.0.2.1", "user_agent_shown": "not recorded"},
        ),
        (
            {"client": {"ip_sha256": None, "user_agent_sha256": "ab" * 32}},
            {"ip_shown": "not recorded", "user_agent_sha256": "ab" * 32, "user_agent_shown": None},
        ),
        (
            {"person": {"email": "", "name": {"b": 1, "a": [1.5]}}, "client": "text"},
            {"email_at_signing": "", "name_at_signing": '{"a": [1.5], "b": 1}'},
        ),
    ],
)
def test_the_stored_columns_show_each_kind_of_recorded_value(payload, expected):
    nothing = {column: None for column in signature_columns.COLUMNS if "sha256" in column}
    shown = {
        column: "not recorded" for column in signature_columns.COLUMNS if "sha256" not in column
    }

    assert signature_columns.columns_of(payload) == nothing | shown | expected


def signatures_now(policy):
    moment = timezone.now()
    return lists.signatures(policy, coverage.timeline_for(policy, moment), moment)


def test_the_migration_fills_the_columns_as_the_signing_action_stores_them(
    awkward, policy, make_person
):
    fill = importlib.import_module("acknowledgements.migrations.0030_fill_signature_columns")
    # Numbers, objects and payloads that may hold a \\u0000 escape (which jsonb refuses) are left
    # to the migration's Python on PostgreSQL.
    for index, payload in enumerate(
        [{"person": {"email": "a\\u0000b", "name": 1.0}}, {"person": {"name": {"z": 1, "a": 2}}}]
    ):
        person = make_person(f"Left to Python {index}", email=f"python{index}@example.com")
        _signature_with_payload(person, awkward, f"PY-{index}", payload)
    expected = {a.pk: stored(a) for a in Acknowledgement.objects.all()}
    written = b"".join(exports.python_acknowledgements_csv(signatures_now(policy)))
    table = Acknowledgement._meta.db_table
    postgresql = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        # The columns emptied as before the migration: past the constraints (and the trigger).
        if postgresql:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for constraint in Acknowledgement._meta.constraints:
                if isinstance(constraint, CheckConstraint):
                    cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint.name}")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_no_change")
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        emptied = ", ".join(f"{column} = NULL" for column in signature_columns.COLUMNS)
        cursor.execute(f"UPDATE {table} SET {emptied}")
        if not postgresql:
            cursor.execute("PRAGMA ignore_check_constraints = OFF")

    if postgresql:
        with connection.schema_editor() as editor:
            fill.fill(django_apps, editor)
    else:  # SQLite's schema editor cannot open inside the test's transaction; fill uses none
        fill.fill(django_apps, SimpleNamespace(connection=connection))

    assert {a.pk: stored(a) for a in Acknowledgement.objects.all()} == expected
    assert b"".join(signatures_csv.acknowledgements_csv(signatures_now(policy))) == written


@pytest.mark.postgres
def test_copy_csv_after_retention_is_byte_identical_to_the_python_writer(
    policy, publish, make_person, sign, settings
):
    settings.PORTAL_CLIENT_DETAILS_RETENTION_DAYS = 30
    start = timezone.now() - 60 * DAY
    revision = publish(policy, "1.0", effective_at=start, due_days=30)
    old = make_person("Old Signer", email="old@example.com")
    recent = make_person("Recent Signer", email="recent@example.com")
    with time_machine.travel(start + DAY, tick=False):
        sign(old, revision)
    sign(recent, revision)

    assert retention.redact_client_details().events == 1  # the old signer's entries only
    copied, written = _both_paths(signatures_now(policy))

    assert copied == written
    rows = {row["Email at signing"]: row for row in read_csv(copied)}
    assert (rows["old@example.com"]["IP address"], rows["old@example.com"]["User agent"]) == (
        figures.REMOVED,
        figures.REMOVED,
    )
    assert rows["recent@example.com"]["IP address"] == "192.0.2.10"


def test_the_csv_view_serves_the_python_writers_bytes(logged_in, auditor, signed):
    """Whichever database serves the view, its CSV is what the Python writer writes."""
    served = download(logged_in(auditor).post(ACKS))
    policy = Policy.objects.get(slug="test-policy")
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)
    assert served == b"".join(exports.python_acknowledgements_csv(signatures))


# --- XLSX ----------------------------------------------------------------------------------------


def test_xlsx_holds_the_same_rows_with_real_utc_dates(
    logged_in, auditor, signed, tmp_path, built_export
):
    client = logged_in(auditor)
    csv_rows = read_csv(download(client.post(ACKS)))
    job_page = built_export(XLSX)
    assert job_page.status_code == 200
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.DONE
    response = client.get(f"/reports/exports/{job.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == exports_xlsx_type()
    assert response["Content-Disposition"].startswith('attachment; filename="test-policy-')
    path = tmp_path / "export.xlsx"
    path.write_bytes(download(response))

    workbook = load_workbook(path)
    sheet = workbook["Acknowledgements"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["G"].width == 66
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert list(header) == [h for h, _w in exports.ACKNOWLEDGEMENT_COLUMNS]
    assert "Signed at (UTC)" in header
    assert len(rows) == len(csv_rows) == 2
    for row, expected in zip(rows, csv_rows, strict=True):
        values = dict(zip(header, row, strict=True))
        signed_at = values.pop("Signed at (UTC)")
        assert isinstance(signed_at, dt.datetime) and signed_at.tzinfo is None
        recorded = dt.datetime.fromisoformat(expected.pop("Signed at (UTC)")).replace(tzinfo=None)
        assert abs(signed_at - recorded) < dt.timedelta(milliseconds=1)
        assert {key: str(value) for key, value in values.items()} == expected
    assert rows[1][2] == "'" + ATTACKER  # text, never a formula
    about = dict(workbook["About this export"].iter_rows(min_row=2, values_only=True))
    assert about["Policy"] == "Test Policy"
    assert about["Rows"] == "2"
    workbook.close()
    assert last_export()["details"]["what"] == "acknowledgements.xlsx"
    assert last_export()["details"]["rows"] == 2


def exports_xlsx_type() -> str:
    return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- PDF summary ---------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs pdftotext (poppler-utils)")
def test_pdf_summary_shows_the_figures(logged_in, auditor, signed, tmp_path):
    response = logged_in(auditor).post(PDF)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    path = tmp_path / "summary.pdf"
    path.write_bytes(download(response))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Test Policy" in text
    assert "Acknowledgement summary as of" in text
    assert "People in scope" in text and "3" in text
    assert "66.7 %" in text  # two of three signed
    assert "Signatures since version 1.0 took effect" in text
    details = last_export()["details"]
    assert details["what"] == "summary.pdf"
    assert details["rows"] == 3


# --- The audit package ---------------------------------------------------------------------------


@pytest.fixture
def package(logged_in, auditor, sealed, tmp_path, built_export):
    client = logged_in(auditor)
    built_export(ZIP)
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.DONE
    response = client.get(f"/reports/exports/{job.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    path = tmp_path / "package.zip"
    path.write_bytes(download(response))
    folder = tmp_path / "package"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
        infos = {info.filename: info for info in archive.infolist()}
    return {"folder": folder, "infos": infos}


def test_package_contains_everything_an_auditor_needs(package, sealed):
    signed = sealed
    numbers = [signed["first"].receipt_number, signed["second"].receipt_number]
    head = int((package["folder"] / "chain-head.txt").read_text().split("sequence: ")[1].split()[0])
    sizes = LedgerCheckpoint.objects.filter(tree_size__lte=head).values_list("tree_size", flat=True)
    assert sizes, "the package's ledger is checkpointed"
    assert set(package["infos"]) == {
        "acknowledgements.csv",
        "client-details.csv",
        "client-details.jsonl",
        "people.csv",
        "ledger.jsonl",
        "ledger-payloads.txt",
        "verification.txt",
        "chain-head.txt",
        "sealing-root.pem",
        "sealing-certificate.pem",
        "verify_ledger.py",
        "README.txt",
        "receipts/SHA256SUMS",
        *(f"receipts/{number}.pdf" for number in numbers),
        "ledger-key.txt",
        "checkpoints/latest.txt",
        *(f"checkpoints/{size}.txt" for size in sizes),
        "consistency-proofs.jsonl",
    }
    assert package["infos"][f"receipts/{numbers[0]}.pdf"].compress_type == zipfile.ZIP_STORED
    assert package["infos"]["ledger.jsonl"].compress_type == zipfile.ZIP_DEFLATED
    folder = package["folder"]
    for receipt in Receipt.objects.select_related("acknowledgement"):
        with receipt.pdf.open("rb") as stored:
            original = stored.read()
        copied = (
            folder / "receipts" / f"{receipt.acknowledgement.receipt_number}.pdf"
        ).read_bytes()
        assert copied == original  # the stored bytes, never re-rendered
        assert hashlib.sha256(copied).hexdigest() == receipt.sha256
    rows = read_csv((folder / "acknowledgements.csv").read_bytes())
    assert [row["Receipt number"] for row in rows] == numbers

    lines = (folder / "ledger.jsonl").read_text("utf-8").splitlines()
    last = json.loads(lines[-1])
    assert f"sequence: {last['sequence']}" in (folder / "chain-head.txt").read_text()
    assert f"row_hash: {last['row_hash']}" in (folder / "chain-head.txt").read_text()
    verification = (folder / "verification.txt").read_text()
    assert verification.startswith(f"Ledger intact: {len(lines)} rows checked")
    identity = receipt_authority.load_sealing_identity()
    assert (folder / "sealing-root.pem").read_bytes() == identity.root_pem
    assert (folder / "sealing-certificate.pem").read_bytes() == identity.certificate_pem
    readme = (folder / "README.txt").read_text()
    assert readme.startswith("AUDIT PACKAGE: Test Policy")  # no warning: the ledger verified
    for command in ("sha256sum", "verify_ledger.py", "pdfsig", "pdfdetach -saveall", "openssl"):
        assert command in readme
    assert " ".join(transparency.HASHING_RULE.split()) in " ".join(readme.split())
    assert "verify_ledger --checkpoint FILE" in readme
    # The verifier an auditor reads before running it: Python's standard library only.
    script = (folder / "verify_ledger.py").read_text()
    assert script == audit_package.VERIFY_SCRIPT
    imported = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(script))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported and imported <= sys.stdlib_module_names
    details = last_export()["details"]
    assert details["what"] == "audit-package.zip"
    assert details["rows"] == 2


def test_package_ledger_has_every_row_up_to_the_moment_byte_for_byte(package):
    folder = package["folder"]
    lines = (folder / "ledger.jsonl").read_text("utf-8").splitlines()
    payloads = (folder / "ledger-payloads.txt").read_bytes().split(b"\n")[:-1]
    entries = list(LedgerEntry.objects.exclude(sequence=None).order_by("sequence")[: len(lines)])
    assert len(lines) == len(payloads) == LedgerEntry.objects.count() - 1  # all but the export
    for line, payload, entry in zip(lines, payloads, entries, strict=True):
        row = json.loads(line)
        assert row["payload"].encode("utf-8") == bytes(entry.payload) == payload
        assert (row["sequence"], row["kind"], row["row_hash"]) == (
            entry.sequence,
            entry.kind,
            entry.row_hash,
        )
        assert hashlib.sha256(payload).hexdigest() == row["payload_sha256"]


def verify_package(folder, path: str | None = None):
    """Run the package's verifier as an auditor would, in its folder (PATH: openssl or not)."""
    return subprocess.run(
        [sys.executable, "verify_ledger.py", "ledger.jsonl"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env=None if path is None else {"PATH": path},
    )


def checkpoint_sizes(folder) -> list[int]:
    return sorted(int(file.stem) for file in (folder / "checkpoints").glob("[0-9]*.txt"))


def test_package_carries_the_logs_key_checkpoints_and_proofs_exactly(package, client):
    folder = package["folder"]
    assert (folder / "ledger-key.txt").read_bytes() == client.get("/ledger/key").content
    sizes = checkpoint_sizes(folder)
    head = len((folder / "ledger.jsonl").read_text("utf-8").splitlines())
    stored = LedgerCheckpoint.objects.order_by("tree_size")
    assert sizes == [c.tree_size for c in stored if c.tree_size <= head]
    for checkpoint in stored.filter(tree_size__lte=head):
        kept = (folder / "checkpoints" / f"{checkpoint.tree_size}.txt").read_bytes()
        assert kept == checkpoint.note.encode("utf-8")
    latest = transparency.latest()
    assert (folder / "checkpoints" / "latest.txt").read_bytes() == latest.note.encode("utf-8")
    # One proof per consecutive pair, then to the latest (and from the head when it is not
    # checkpointed); each verifies by RFC 9162 against the two signed roots.
    ends = [*sizes, latest.tree_size] if latest.tree_size > sizes[-1] else sizes
    expected = list(itertools.pairwise(ends))
    if head not in sizes:
        expected.append((head, latest.tree_size))
    lines = [
        json.loads(line) for line in (folder / "consistency-proofs.jsonl").read_text().splitlines()
    ]
    assert [(line["from"], line["to"]) for line in lines] == expected
    for line in lines:
        hashes = transparency.consistency_proof(line["from"], line["to"])
        assert line["hashes"] == [transparency.b64(value) for value in hashes]
        assert merkle.verify_consistency(
            first=line["from"],
            second=line["to"],
            first_root=transparency.root_at(line["from"]),
            second_root=transparency.root_at(line["to"]),
            path=hashes,
        )


def test_a_package_as_of_an_earlier_moment_proves_its_head_against_the_latest_checkpoint(
    sealed, tmp_path
):
    policy = Policy.objects.get(slug="test-policy")
    moment = sealed["start"] + 15 * DAY  # after the first signature, before the second
    target = io.BytesIO()
    summary = audit_package.write_package(
        target,
        policy=policy,
        timeline=coverage.timeline_for(policy, moment),
        moment=moment,
        exported_by="test",
    )
    folder = tmp_path / "earlier"
    with zipfile.ZipFile(target) as archive:
        archive.extractall(folder)
    latest = transparency.latest()
    head = summary.head_sequence
    assert summary.verified and head < latest.tree_size
    assert all(size <= head for size in checkpoint_sizes(folder))
    assert (folder / "checkpoints" / "latest.txt").read_text() == latest.note
    last = json.loads((folder / "consistency-proofs.jsonl").read_text().splitlines()[-1])
    assert (last["from"], last["to"]) == (head, latest.tree_size)

    result = verify_package(folder)
    assert result.returncode == 0, result.stderr
    assert f"OK: {head} rows verify" in result.stdout
    # The rows after the last checkpoint within the head are anchored by the proof from the head.
    ledger_file = folder / "ledger.jsonl"
    ledger_file.write_text("".join(ledger_file.read_text().splitlines(keepends=True)[:-1]))
    result = verify_package(folder)
    assert result.returncode == 1
    assert "entries removed" in result.stderr


def test_bundled_script_verifies_the_ledger_and_catches_one_altered_line(package):
    folder = package["folder"]
    result = verify_package(folder)
    assert result.returncode == 0, result.stderr
    head = (folder / "chain-head.txt").read_text().split("row_hash: ")[1].split()[0]
    first, *others = result.stdout.splitlines()
    assert first.endswith(head)
    files = len(list((folder / "checkpoints").glob("*.txt")))
    if shutil.which("openssl"):
        assert f"OK: the signatures of {files} checkpoints verify (checked with openssl)" in others
    assert others[-1].startswith(f"OK: {files} checkpoint files and ")

    ledger_file = folder / "ledger.jsonl"
    lines = ledger_file.read_text("utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace('\\"schema\\":1', '\\"schema\\":2', 1)
    assert '\\"schema\\":2' in lines[2]
    ledger_file.write_text("".join(lines), "utf-8")
    result = verify_package(folder)
    assert result.returncode == 1
    assert "FAILED at line 3" in result.stderr


def _outer_field(field: str, value: str):
    def change(folder):
        ledger_file = folder / "ledger.jsonl"
        lines = ledger_file.read_text("utf-8").splitlines()
        number = next(i for i, line in enumerate(lines, 1) if json.loads(line)["kind"] == "signed")
        row = json.loads(lines[number - 1])
        row[field] = value
        lines[number - 1] = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        ledger_file.write_text("\n".join(lines) + "\n", "utf-8")
        return f"FAILED at line {number} (sequence {number}): its {field} {value!r}"

    return change


def _rewritten_and_rehashed(folder):
    """A payload changed and every hash after it recomputed: the chain alone verifies."""
    ledger_file = folder / "ledger.jsonl"
    rows = [json.loads(line) for line in ledger_file.read_text("utf-8").splitlines()]
    rows[2]["payload"] = rows[2]["payload"].replace('"schema":1', '"schema":2', 1)
    previous = ledger.GENESIS_HASH
    for row in rows:
        row["payload_sha256"] = ledger.sha256_hex(row["payload"].encode())
        row["previous_hash"] = previous
        row["row_hash"] = previous = ledger.chain_hash(
            sequence=row["sequence"], previous_hash=previous, payload_sha256=row["payload_sha256"]
        )
    ledger_file.write_text(
        "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
    )
    return f"FAILED at checkpoints/{checkpoint_sizes(folder)[0]}.txt: the first "


def _truncated(folder):
    ledger_file = folder / "ledger.jsonl"
    lines = ledger_file.read_text("utf-8").splitlines(keepends=True)
    ledger_file.write_text("".join(lines[:-1]), "utf-8")
    return f"FAILED at checkpoints/{len(lines)}.txt: ledger shorter than checkpoint"


def _swapped_proof_hash(folder):
    proofs = folder / "consistency-proofs.jsonl"
    lines = [json.loads(line) for line in proofs.read_text().splitlines()]
    hashes = lines[0]["hashes"]
    assert len(hashes) > 1, "a proof of several hashes"
    hashes[0], hashes[1] = hashes[1], hashes[0]
    proofs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return (
        f"FAILED at line 1 of consistency-proofs.jsonl (from {lines[0]['from']} to "
        f"{lines[0]['to']}): the proof does not verify"
    )


def _checkpoint_root_changed(folder):
    name = f"checkpoints/{checkpoint_sizes(folder)[0]}.txt"
    note = (folder / name).read_text()
    root = note.split("\n")[2]
    forged = transparency.b64(hashlib.sha256(root.encode()).digest())
    (folder / name).write_text(note.replace(root, forged))
    return f"FAILED at {name}: "


@pytest.mark.parametrize(
    "tamper,reason",
    [
        (_outer_field("kind", "declined"), "is not the payload's event 'signed'"),
        (_outer_field("recorded_at", "2020-01-01T00:00:00.000000Z"), "is not the payload's"),
        (_rewritten_and_rehashed, "entries rewritten"),
        (_truncated, "entries removed"),
        (_swapped_proof_hash, "the later tree does not extend the earlier"),
        (
            _checkpoint_root_changed,
            "its signature does not verify" if shutil.which("openssl") else "entries rewritten",
        ),
    ],
    ids=["outer-kind", "outer-recorded-at", "rewritten", "truncated", "proof", "checkpoint"],
)
def test_bundled_script_names_each_kind_of_tampering(package, tamper, reason):
    folder = package["folder"]
    where = tamper(folder)
    result = verify_package(folder)
    assert result.returncode == 1, result.stdout
    assert where in result.stderr and reason in result.stderr, result.stderr


def test_bundled_script_without_openssl_says_so_and_prints_the_readmes_recipe(package, tmp_path):
    folder = package["folder"]
    (tmp_path / "no-tools").mkdir()
    result = verify_package(folder, path=str(tmp_path / "no-tools"))
    assert result.returncode == 0, result.stderr
    assert "NOT CHECKED: the checkpoints' signatures (openssl is not installed)" in result.stdout
    assert audit_package.OPENSSL_RECIPE in result.stdout
    assert audit_package.OPENSSL_RECIPE in (folder / "README.txt").read_text()
    # Signed by another key: caught without openssl, by the key id.
    key = folder / "ledger-key.txt"
    name, _key_id, rest = key.read_text().split("+", 2)
    key.write_text(f"{name}+00000000+{rest}")
    result = verify_package(folder, path=str(tmp_path / "no-tools"))
    assert result.returncode == 1
    assert "is not signed by the key in ledger-key.txt" in result.stderr


def test_an_auditors_kept_checkpoint_is_checked_too(package):
    folder = package["folder"]
    size = checkpoint_sizes(folder)[0]
    kept = (folder / "checkpoints" / f"{size}.txt").read_text()
    (folder / "checkpoints" / "kept.txt").write_text(kept)
    assert verify_package(folder).returncode == 0
    root = kept.split("\n")[2]
    other = transparency.b64(hashlib.sha256(b"another history").digest())
    (folder / "checkpoints" / "kept.txt").write_text(kept.replace(root, other))
    result = verify_package(folder, path="")
    assert result.returncode == 1
    assert "FAILED at checkpoints/kept.txt: " in result.stderr
    assert "entries rewritten" in result.stderr


# --- The README's recipes, run as printed ---


def readme_step(readme: str, number: int) -> tuple[str, list[str]]:
    """A numbered step's commands (indented six spaces or more) and the quoted output each
    "->" line expects."""
    step = re.split(rf"\n{number}\. [A-Z]", readme)[1]
    step = re.split(r"\n\d+\. [A-Z]", step)[0]
    commands, expected = [], []
    for line in step.splitlines():
        if line.strip().startswith("->"):
            expected += re.findall(r'"([^"]+)"', line)
        elif line.startswith(" " * 6):
            commands.append(line)
    assert commands, f"step {number} has no commands"
    return "\n".join(commands) + "\n", expected


def run_step(folder, number: int) -> subprocess.CompletedProcess:
    commands, expected = readme_step((folder / "README.txt").read_text(), number)
    result = subprocess.run(
        ["bash", "-c", commands], cwd=folder, capture_output=True, text=True, check=False
    )
    for text in expected:
        assert text in result.stdout, (commands, result.stdout, result.stderr)
    return result


def needs(*tools: str):
    missing = [tool for tool in tools if not shutil.which(tool)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


@needs("bash", "sha256sum")
def test_readme_step_1_sha256sum_recipe_matches_every_payload(package):
    result = run_step(package["folder"], 1)
    assert result.returncode == 0, result.stdout + result.stderr


@needs("bash", "python3")
def test_readme_step_2_runs_the_verifier(package):
    result = run_step(package["folder"], 2)
    assert result.returncode == 0, result.stderr


@needs("bash", "openssl", "base64")
def test_readme_step_3_openssl_verifies_every_checkpoint_signature(package):
    folder = package["folder"]
    files = sorted((folder / "checkpoints").glob("*.txt"))
    result = run_step(folder, 3)
    assert result.stdout.splitlines() == [
        f"checkpoints/{file.name}: Signature Verified Successfully" for file in files
    ], result.stderr
    _checkpoint_root_changed(folder)
    result = run_step(folder, 3)
    assert "Signature Verification Failure" in result.stdout


@needs("bash", "openssl")
def test_readme_step_4_openssl_checks_pass(package):
    folder = package["folder"]
    result = run_step(folder, 4)
    assert result.returncode == 0, result.stderr
    fingerprint = receipt_authority.load_sealing_identity().fingerprint
    assert fingerprint in (folder / "README.txt").read_text()
    assert fingerprint in result.stdout.replace(":", "").lower()


@needs("bash", "pdfsig", "certutil")
def test_readme_step_5_receipt_is_sealed_and_trusted_with_the_nss_recipe(package, sealed):
    folder = package["folder"]
    result = run_step(folder, 5)
    assert result.returncode == 0, result.stderr
    assert "Certificate Validation: Certificate is Trusted." in result.stdout
    assert f"{sealed['first'].receipt_number}.pdf: OK" in result.stdout  # sha256sum -c


@needs("bash", "pdfdetach", "sha256sum")
def test_readme_step_6_receipt_carries_its_ledger_payload(package, sealed):
    folder = package["folder"]
    result = run_step(folder, 6)
    assert result.returncode == 0, result.stderr
    number = sealed["first"].receipt_number
    assert f"receipts/{number}.pdf" in (folder / "README.txt").read_text()
    evidence = (folder / "evidence" / "evidence.json").read_bytes()
    rows = read_csv((folder / "acknowledgements.csv").read_bytes())
    row = next(r for r in rows if r["Receipt number"] == number)
    sequence = int(row["Ledger sequence"])
    line = (folder / "ledger-payloads.txt").read_bytes().split(b"\n")[sequence - 1]
    assert evidence == line
    assert result.stdout.split()[0] == hashlib.sha256(line).hexdigest()
    policy_text = (folder / "evidence" / "policy-1.0.md").read_bytes()
    assert hashlib.sha256(policy_text).hexdigest() == row["Text SHA-256"]


@needs("bash", "jq", "sha256sum")
def test_readme_step_7_client_details_open_their_commitments(package):
    result = run_step(package["folder"], 7)
    assert result.returncode == 0, result.stderr
    ip_computed, ip_recorded, agent_computed, agent_recorded = (
        line.split()[0] for line in result.stdout.splitlines()
    )
    assert ip_computed == ip_recorded and agent_computed == agent_recorded
    assert len(ip_recorded) == 64 and ip_recorded != agent_recorded


# --- A package of a ledger that does not verify says so first ---


def _tamper(sql: str, params=()):
    set_evidence_triggers(False)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    set_evidence_triggers(True)


def _write_package_files(tmp_path) -> tuple[audit_package.PackageSummary, dict[str, str]]:
    policy = Policy.objects.get(slug="test-policy")
    moment = timezone.now()
    target = io.BytesIO()
    summary = audit_package.write_package(
        target,
        policy=policy,
        timeline=coverage.timeline_for(policy, moment),
        moment=moment,
        exported_by="test",
    )
    with zipfile.ZipFile(target) as archive:
        archive.extractall(tmp_path / "package")
        return summary, {
            name: archive.read(name).decode() for name in ("README.txt", "verification.txt")
        }


def test_a_package_of_a_tampered_chain_says_so_on_its_first_lines(signed, tmp_path):
    ledger.link_pending()
    sequence = LedgerEntry.objects.get(pk=signed["second"].ledger_entry_id).sequence
    _tamper(
        "UPDATE acknowledgements_ledgerentry SET kind = 'declined' WHERE sequence = %s", [sequence]
    )

    summary, files = _write_package_files(tmp_path)

    assert not summary.verified
    assert files["README.txt"].startswith("WARNING: THE LEDGER DID NOT VERIFY")
    assert files["verification.txt"].startswith(f"Ledger NOT intact: sequence {sequence} fails")
    result = verify_package(tmp_path / "package")
    assert result.returncode == 1
    assert f"FAILED at line {sequence} (sequence {sequence}): its kind 'declined'" in result.stderr


def test_a_package_of_a_forged_checkpoint_says_so_on_its_first_lines(signed, tmp_path):
    ledger.link_pending()
    checkpoint = transparency.checkpoint()
    forged = transparency.b64(hashlib.sha256(b"another history").digest())
    _tamper(
        "UPDATE acknowledgements_ledgercheckpoint SET note = %s WHERE id = %s",
        [
            checkpoint.note.replace(transparency.b64(bytes.fromhex(checkpoint.root_hash)), forged),
            checkpoint.pk,
        ],
    )

    summary, files = _write_package_files(tmp_path)

    assert not summary.verified
    assert files["README.txt"].startswith("WARNING: THE LEDGER DID NOT VERIFY")
    verification = files["verification.txt"]
    assert verification.startswith("Ledger NOT intact: its transparency log does not verify.")
    assert f"- NOT intact: checkpoint {checkpoint.tree_size} is not genuine" in verification


def test_a_package_of_a_truncated_ledger_is_still_made_and_says_so(signed, tmp_path):
    ledger.append(kind=LedgerEntry.Kind.ADMIN_ACTION, payload={"action": "the newest"})
    ledger.link_pending()
    checkpoint = transparency.checkpoint()
    _tamper("DELETE FROM acknowledgements_ledgerentry WHERE sequence = %s", [checkpoint.tree_size])

    summary, files = _write_package_files(tmp_path)

    assert not summary.verified
    assert files["README.txt"].startswith("WARNING: THE LEDGER DID NOT VERIFY")
    verification = files["verification.txt"]
    assert verification.startswith("Ledger NOT intact: its transparency log does not verify.")
    assert f"checkpoint {checkpoint.tree_size} covers more entries" in verification
    result = verify_package(tmp_path / "package")
    assert result.returncode == 1
    assert "no checkpoint or consistency proof covers the ledger's last rows" in result.stderr


# --- The management command ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["csv", "xlsx", "zip"])
def test_command_writes_the_export_and_records_it(sealed, tmp_path, kind):
    signed = sealed
    output = tmp_path / f"export.{kind}"
    call_command("export_acknowledgements", policy="test-policy", format=kind, output=str(output))
    data = output.read_bytes()
    if kind == "csv":
        assert len(read_csv(data)) == 2
    elif kind == "xlsx":
        workbook = load_workbook(output)
        assert len(list(workbook["Acknowledgements"].iter_rows())) == 3
        workbook.close()
    else:
        with zipfile.ZipFile(output) as archive:
            assert f"receipts/{signed['first'].receipt_number}.pdf" in archive.namelist()
    payload = last_export()
    assert payload["actor"] is None
    assert payload["details"]["rows"] == 2
    assert payload["details"]["filters"]["command"] == "export_acknowledgements"
    assert payload["details"]["filters"]["output"] == str(output)


def test_command_as_of_limits_the_rows(signed, tmp_path):
    output = tmp_path / "then.csv"
    moment = ledger.utc_iso(signed["start"] + 15 * DAY)
    call_command(
        "export_acknowledgements",
        policy="test-policy",
        format="csv",
        output=str(output),
        as_of=moment,
    )
    rows = read_csv(output.read_bytes())
    assert [row["Receipt number"] for row in rows] == [signed["first"].receipt_number]
    assert last_export()["details"]["filters"]["as_of"] == moment


@pytest.mark.parametrize(
    "arguments,message",
    [
        ({"policy": "no-such-policy"}, "No policy 'no-such-policy'. Known policies: test-policy."),
        ({"as_of": "last tuesday"}, "is not an ISO 8601 date or time"),
        ({"as_of": "2999-01-01T00:00:00Z"}, "is in the future"),
        (
            {"output": "/nonexistent-folder/export.csv"},
            "Cannot write /nonexistent-folder/export.csv",
        ),
    ],
)
def test_command_refuses_bad_arguments(signed, tmp_path, arguments, message):
    options = {"policy": "test-policy", "format": "csv", "output": str(tmp_path / "x.csv")}
    exports_before = LedgerEntry.objects.count()
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("export_acknowledgements", **(options | arguments))
    assert LedgerEntry.objects.count() == exports_before


def test_command_refuses_an_unknown_format(signed, tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'pdf'"):
        call_command(
            "export_acknowledgements",
            "--policy=test-policy",
            "--format=pdf",
            f"--output={tmp_path / 'x.pdf'}",
        )


# --- While the ledger is damaged, every export says so first ---------------------------------------

PROBLEM = "Ledger NOT intact: sequence 2 fails: payload changed (1 rows checked before it)."
WARNING = (
    "WARNING: the ledger does not verify (Ledger NOT intact: sequence 2 fails: payload changed "
    "(1 rows checked before it)); these figures cannot be relied on until it is repaired."
)
AUDIT_LOG = "/reports/audit-log/export.csv"
HEADERS = {
    ACKS: "Receipt number",
    PEOPLE: "Name",
    AUDIT_LOG: "Sequence",
}


def record_check(*, intact: bool) -> LedgerCheck:
    """A run of the full ledger check, as verify_ledger records it (and forgets the last one)."""
    check = LedgerCheck.objects.create(
        intact=intact, rows_checked=5, problems=[] if intact else [PROBLEM]
    )
    checks.forget_latest()
    return check


def csv_lines(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


def xlsx_rows(data: bytes, tmp_path) -> tuple[list[tuple], str]:
    path = tmp_path / "export.xlsx"
    path.write_bytes(data)
    workbook = load_workbook(path)
    sheet = workbook["Acknowledgements"]
    rows, frozen = list(sheet.iter_rows(values_only=True)), sheet.freeze_panes
    workbook.close()
    return rows, frozen


def pdf_lines(data: bytes, tmp_path) -> list[str]:
    path = tmp_path / "summary.pdf"
    path.write_bytes(data)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("url", [ACKS, PEOPLE, AUDIT_LOG])
def test_a_csv_of_a_damaged_ledger_says_so_on_its_first_line(logged_in, auditor, signed, url):
    record_check(intact=False)

    first, header, *rows = csv_lines(download(logged_in(auditor).post(url)))

    assert first == [WARNING]
    assert header[0] == HEADERS[url]
    assert rows and all(len(row) == len(header) for row in rows)


@pytest.mark.parametrize("url", [ACKS, PEOPLE, AUDIT_LOG])
def test_a_csv_of_a_repaired_ledger_opens_with_its_header_again(logged_in, auditor, signed, url):
    record_check(intact=False)
    record_check(intact=True)  # verified again once repaired: the latest check decides

    data = download(logged_in(auditor).post(url))

    assert data.startswith(HEADERS[url].encode() + b",")
    assert b"WARNING" not in data


def test_the_signatures_csv_of_a_damaged_ledger_is_the_intact_one_below_its_warning(
    logged_in, auditor, signed
):
    client = logged_in(auditor)
    intact = download(client.post(ACKS))
    record_check(intact=False)

    damaged = download(client.post(ACKS))

    assert damaged.split(b"\r\n", 1) == [WARNING.encode(), intact]


@pytest.mark.postgres
def test_copy_csv_of_a_damaged_ledger_is_byte_identical_to_the_python_writer(awkward, policy):
    record_check(intact=False)
    moment = timezone.now()
    signatures = lists.signatures(policy, coverage.timeline_for(policy, moment), moment)

    copied, written = _both_paths(signatures)

    assert copied == written
    assert csv_lines(copied)[0] == [WARNING]


def test_an_xlsx_of_a_damaged_ledger_says_so_in_its_first_row(
    logged_in, auditor, signed, built_export, tmp_path
):
    client = logged_in(auditor)
    record_check(intact=False)

    data = downloaded(client, built_export(XLSX))

    (first, header, *rows), frozen = xlsx_rows(data, tmp_path)
    assert first[0] == WARNING and not any(first[1:])  # one cell; the rest of the row is empty
    assert list(header) == [h for h, _w in exports.ACKNOWLEDGEMENT_COLUMNS]
    assert len(rows) == 2
    assert frozen == "A3"  # the warning and the header stay in view


def test_an_xlsx_reads_the_damage_when_its_task_builds_it(
    logged_in, auditor, signed, django_capture_on_commit_callbacks, tmp_path
):
    client = logged_in(auditor)
    with django_capture_on_commit_callbacks() as queued:  # asked for while the ledger verified
        assert client.post(XLSX).status_code == 302
    record_check(intact=False)  # damage found before the task ran

    for build in queued:
        build()

    job = ExportJob.objects.get()
    data = download(client.get(f"/reports/exports/{job.pk}/download/"))
    (first, *_rest), _frozen = xlsx_rows(data, tmp_path)
    assert first[0] == WARNING and not any(first[1:])  # one cell; the rest of the row is empty


def test_an_xlsx_of_an_intact_ledger_opens_with_its_header(
    logged_in, auditor, signed, built_export, tmp_path
):
    client = logged_in(auditor)
    record_check(intact=True)

    (header, *rows), frozen = xlsx_rows(downloaded(client, built_export(XLSX)), tmp_path)

    assert list(header) == [h for h, _w in exports.ACKNOWLEDGEMENT_COLUMNS]
    assert len(rows) == 2 and frozen == "A2"


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="needs pdftotext (poppler-utils)")
def test_a_pdf_summary_of_a_damaged_ledger_says_so_first(logged_in, auditor, signed, tmp_path):
    client = logged_in(auditor)
    intact = pdf_lines(download(client.post(PDF)), tmp_path)
    record_check(intact=False)

    damaged = pdf_lines(download(client.post(PDF)), tmp_path)

    assert intact[0].endswith("POLICY PORTAL")  # the company's name opens it
    assert " ".join(damaged[: damaged.index(intact[0])]) == WARNING
    assert not any("WARNING" in line for line in intact)
