"""Exports built in the background: asking, progress, the file, who may see it, failure, retry."""

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from openpyxl import load_workbook

from acknowledgements.evidence import ledger
from acknowledgements.models import ExportJob, LedgerEntry
from acknowledgements.reports import audit_package, documents, lists
from acknowledgements.reports import jobs as export_jobs
from acknowledgements.standings import coverage
from tests.conftest import downloaded
from tests.pages import html_of

DAY = dt.timedelta(days=1)
XLSX = "/reports/policies/test-policy/export/acknowledgements.xlsx"
ZIP = "/reports/policies/test-policy/export/audit-package.zip"


@pytest.fixture
def signed(policy, publish, make_person, sign):
    revision = publish(policy, "1.0", effective_at=timezone.now() - 5 * DAY, due_days=14)
    for index in range(3):
        sign(make_person(f"Person {index}", email=f"p{index}@example.com"), revision)
    return revision


def export_records() -> list[dict]:
    entries = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION).order_by("sequence")
    return [p["details"] for e in entries if (p := ledger.decode(e))["action"] == "export"]


def test_an_auditor_asks_for_a_workbook_follows_it_and_downloads_it(
    client, logged_in, auditor, signed, built_export
):
    logged_in(auditor)

    page = built_export(XLSX, {"status": "signed"})

    job = ExportJob.objects.get()
    assert (job.requested_by, job.kind, job.status) == (auditor, "acknowledgements.xlsx", "done")
    assert job.filters == {"status": "signed"}
    assert (job.rows_done, job.rows_total, job.attempts) == (3, 3, 1)
    text = html_of(page)
    assert "The file is ready." in text
    assert "3 of 3 rows written" in text
    assert 'max="3" value="3"' in text
    assert "data-refresh-seconds" not in text  # nothing left to wait for
    workbook = load_workbook(io.BytesIO(downloaded(client, page)))
    assert len(list(workbook["Acknowledgements"].iter_rows())) == 4
    workbook.close()
    assert export_records() == [
        {
            "what": "acknowledgements.xlsx",
            "filters": {
                "policy": "test-policy",
                "as_of": ledger.utc_iso(job.as_of),
                "status": "signed",
            },
            "rows": 3,
        }
    ]
    # Downloading it again records nothing more: the export was recorded when it was built.
    downloaded(client, page)
    assert len(export_records()) == 1


def test_my_exports_lists_mine_newest_first(client, logged_in, auditor, make_person, signed):
    from acknowledgements.roles import AUDITORS

    other = make_person("Other Auditor", email="other@example.com", audience=None, role=AUDITORS)
    policy = signed.policy
    for who, kind in [(auditor, "acknowledgements.xlsx"), (other, "audit-package.zip")]:
        export_jobs.request_export(
            actor=who, kind=kind, policy=policy, as_of=timezone.now(), filters={}, filename="f"
        )
    export_jobs.request_export(
        actor=auditor,
        kind="audit-package.zip",
        policy=policy,
        as_of=timezone.now(),
        filters={},
        filename="f",
    )

    page = html_of(logged_in(auditor).get("/reports/exports/"))

    assert page.count("Waiting to start") == 2  # the other auditor's is not listed
    assert page.index("Audit package (ZIP)") < page.index("Acknowledgements (Excel)")
    assert "data-refresh-seconds" in page  # looks again while something is being built


def test_the_job_page_shows_progress_while_it_runs(client, logged_in, auditor, signed):
    job = ExportJob.objects.create(
        requested_by=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=signed.policy,
        as_of=timezone.now(),
        filename="x.xlsx",
        status=ExportJob.Status.RUNNING,
        rows_done=40,
        rows_total=160,
    )
    client = logged_in(auditor)

    running = html_of(client.get(f"/reports/exports/{job.pk}/"))

    assert '<label for="export-job-bar">40 of 160 rows written</label>' in running
    assert '<progress id="export-job-bar" max="160" value="40">25 %</progress>' in running
    assert "Building the file: 25 % done." in running
    assert 'data-refresh-seconds="3"' in running
    assert "/download/" not in running
    assert client.get(f"/reports/exports/{job.pk}/download/").status_code == 404

    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.QUEUED, rows_done=0)
    queued = html_of(client.get(f"/reports/exports/{job.pk}/"))
    assert '<progress id="export-job-bar">Waiting to start</progress>' in queued
    assert 'data-refresh-seconds="3"' in queued


def test_builders_report_their_progress(signed, monkeypatch, tmp_path):
    monkeypatch.setattr(documents, "PROGRESS_ROWS", 1)
    policy = signed.policy
    moment = timezone.now()
    timeline = coverage.timeline_for(policy, moment)
    signatures = lists.signatures(policy, timeline, moment)
    seen: list[int] = []

    with (tmp_path / "x.xlsx").open("wb") as target:
        documents.write_acknowledgements_xlsx(target, signatures, about=[], progress=seen.append)
    assert seen == [1, 2, 3]

    seen.clear()
    with (tmp_path / "x.zip").open("wb") as target:
        summary = audit_package.write_package(
            target,
            policy=policy,
            timeline=timeline,
            moment=moment,
            exported_by="t",
            progress=seen.append,
        )
    total = audit_package.package_rows(
        policy=policy, timeline=timeline, moment=moment, filters=lists.PeopleFilter()
    )
    assert seen == sorted(seen) and seen[-1] == total
    assert total == summary.signatures + summary.receipts + summary.ledger_rows


def test_progress_is_saved_while_the_file_is_written(auditor, signed, monkeypatch):
    """Each report of progress is its own UPDATE, committed as the build goes (no transaction)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(documents, "PROGRESS_ROWS", 1)
    job = export_jobs.request_export(
        actor=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=signed.policy,
        as_of=timezone.now(),
        filters={},
        filename="x.xlsx",
    )

    with CaptureQueriesContext(connection) as queries:
        export_jobs.build_export(job_id=job.pk)

    updates = [
        q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "rows_done" in q["sql"]
    ]
    assert len(updates) >= 3  # claimed, then rows 1, 2 and 3
    job.refresh_from_db()
    assert (job.status, job.rows_done, job.rows_total) == ("done", 3, 3)


@pytest.fixture
def others(make_person):
    from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS

    return {
        "auditor": make_person("Other", email="other@example.com", audience=None, role=AUDITORS),
        "admin": make_person("Admin", email="admin@example.com", role=POLICY_ADMINISTRATORS),
    }


@pytest.mark.parametrize("who", ["auditor", "admin", "superuser"])
def test_nobody_else_sees_or_downloads_a_job(client, logged_in, auditor, signed, others, who):
    from acknowledgements.models import User
    from tests.conftest import PASSWORD

    job = export_jobs.request_export(
        actor=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=signed.policy,
        as_of=timezone.now(),
        filters={},
        filename="x.xlsx",
    )
    export_jobs.build_export(job_id=job.pk)
    if who == "superuser":
        User.objects.create_superuser(email="root@example.com", password=PASSWORD, full_name="R")
        client.post("/accounts/login/", {"login": "root@example.com", "password": PASSWORD})
    else:
        logged_in(others[who])

    for path in ["/", "/download/"]:
        assert client.get(f"/reports/exports/{job.pk}{path}").status_code == 404
    assert client.post(f"/reports/exports/{job.pk}/retry/").status_code == 404
    assert "x.xlsx" not in client.get("/reports/exports/").content.decode()


@pytest.fixture
def broken_storage(settings, tmp_path):
    """Media storage that cannot be written: its folder would have to be made inside a file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    working = settings.MEDIA_ROOT
    settings.MEDIA_ROOT = blocker / "media"
    yield lambda: setattr(settings, "MEDIA_ROOT", working)


def test_a_failed_export_says_so_and_can_be_tried_again(
    client,
    logged_in,
    auditor,
    signed,
    built_export,
    broken_storage,
    django_capture_on_commit_callbacks,
):
    logged_in(auditor)

    page = built_export(XLSX)

    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED
    assert not job.file and job.size is None
    assert job.error
    text = html_of(page)
    assert 'role="alert"' in text
    assert "This export failed. No file was kept and nothing was recorded in the audit log." in text
    assert "Try again" in text
    assert "data-refresh-seconds" not in text
    assert export_records() == []

    broken_storage()  # the storage works again
    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(f"/reports/exports/{job.pk}/retry/")
    assert retried["Location"] == f"/reports/exports/{job.pk}/"
    page = client.get(retried["Location"])

    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("done", 2, "")
    assert "The export was queued again." in html_of(page)
    assert downloaded(client, page).startswith(b"PK")
    assert [record["rows"] for record in export_records()] == [3]  # recorded once


def test_only_a_failed_export_can_be_tried_again(client, logged_in, auditor, signed, built_export):
    logged_in(auditor)
    built_export(XLSX)
    job = ExportJob.objects.get()

    response = client.post(f"/reports/exports/{job.pk}/retry/", follow=True)

    assert "Only an export that failed can be tried again." in html_of(response)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 1)
    assert len(export_records()) == 1


def test_a_job_delivered_twice_is_built_and_recorded_once(auditor, signed):
    job = export_jobs.request_export(
        actor=auditor,
        kind=ExportJob.Kind.PACKAGE,
        policy=signed.policy,
        as_of=timezone.now(),
        filters={},
        filename="p.zip",
    )

    assert export_jobs.build_export(job_id=job.pk).status == ExportJob.Status.DONE
    assert export_jobs.build_export(job_id=job.pk) is None

    assert [record["what"] for record in export_records()] == ["audit-package.zip"]
    job.refresh_from_db()
    assert job.attempts == 1


def test_the_export_is_of_the_moment_asked_even_if_built_later(auditor, signed, make_person, sign):
    asked_at = timezone.now()
    job = export_jobs.request_export(
        actor=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=signed.policy,
        as_of=asked_at,
        filters={},
        filename="x.xlsx",
    )
    sign(make_person("Late Signer", email="late@example.com"), signed)  # after the request

    export_jobs.build_export(job_id=job.pk)

    job.refresh_from_db()
    assert job.rows_done == 3
    assert export_records()[0]["filters"]["as_of"] == ledger.utc_iso(asked_at)


def test_tidying_fails_interrupted_jobs_and_deletes_old_exports(
    auditor, signed, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_EXPORT_RETENTION_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):
        old, recent = (
            export_jobs.request_export(
                actor=auditor,
                kind=ExportJob.Kind.XLSX,
                policy=signed.policy,
                as_of=timezone.now(),
                filters={},
                filename=f"{name}.xlsx",
            )
            for name in ("old", "recent")
        )
    old.refresh_from_db()
    storage, old_file = old.file.storage, old.file.name
    assert old.status == ExportJob.Status.DONE and storage.exists(old_file)
    ExportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - 8 * DAY)
    stuck = ExportJob.objects.create(
        requested_by=auditor,
        kind=ExportJob.Kind.PACKAGE,
        policy=signed.policy,
        as_of=timezone.now(),
        filename="stuck.zip",
        status=ExportJob.Status.RUNNING,
        started_at=timezone.now() - export_jobs.EXPORT_INTERRUPTED_AFTER - dt.timedelta(minutes=1),
    )
    records = len(export_records())

    out = io.StringIO()
    call_command("tidy_exports", stdout=out)

    assert out.getvalue().strip() == (
        "1 interrupted export(s) marked failed; 1 old export(s) deleted."
    )
    assert not ExportJob.objects.filter(pk=old.pk).exists() and not storage.exists(old_file)
    assert ExportJob.objects.get(pk=recent.pk).status == ExportJob.Status.DONE
    stuck.refresh_from_db()
    assert stuck.status == ExportJob.Status.FAILED and "Interrupted" in stuck.error
    export_jobs.retry_export(actor=auditor, job=stuck)  # a failed job can be tried again
    assert len(export_records()) == records  # the audit records stay
    call_command("tidy_exports", stdout=io.StringIO())
    assert ExportJob.objects.filter(pk=recent.pk).exists()
