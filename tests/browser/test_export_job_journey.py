"""The demo auditor asks for the Excel workbook, follows its progress page and downloads it."""

import re

import pytest
from django.utils import timezone
from openpyxl import load_workbook
from playwright.sync_api import expect

from acknowledgements.evidence import ledger
from acknowledgements.models import Acknowledgement, ExportJob, LedgerEntry, Policy, User
from acknowledgements.standings import coverage
from tests.browser.conftest import sign_in
from tests.conftest import sign_through_service


@pytest.fixture
def signed(portal) -> int:
    """Three more signatures of the Acceptable Use Policy in effect, before the browser starts
    (sealing their receipts runs an event loop, which Playwright's would refuse)."""
    policy = Policy.objects.get(slug="acceptable-use-policy")
    revision = coverage.timeline_for(policy, timezone.now()).current
    people = (
        User.objects.filter(is_active=True, audiences__in=revision.audiences.all())
        .exclude(acknowledgements__revision=revision)
        .distinct()
        .order_by("email")
    )
    for person in people[:3]:
        sign_through_service(person, revision)
    return Acknowledgement.objects.filter(revision__policy=policy).count()


def test_auditor_asks_for_a_workbook_and_downloads_it(
    signed, portal, page, screenshot, csp_violations, axe_violations, tmp_path
):
    sign_in(page, portal, "auditor@example.com")
    page.get_by_role("link", name="Reports", exact=True).click()
    panel = page.get_by_role("region", name="Acceptable Use Policy")

    panel.get_by_role("button", name="Acknowledgements (Excel)").click()

    # The immediate task backend (tests, laptops) builds it before the page is shown.
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Acknowledgements (Excel): Acceptable Use Policy"
    )
    expected = Acknowledgement.objects.filter(revision__policy__slug="acceptable-use-policy")
    rows = expected.count()
    assert rows == signed >= 3
    progress = page.get_by_role("progressbar", name=f"{rows} of {rows} rows written")
    expect(progress).to_have_attribute("value", str(rows))
    expect(page.get_by_role("status")).to_contain_text("The file is ready.")
    expect(page.locator("[data-refresh-seconds]")).to_have_count(0)
    screenshot("export-ready")
    assert axe_violations() == []

    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"^Download .*\.xlsx")).click()
    workbook_path = tmp_path / "acknowledgements.xlsx"
    download_info.value.save_as(workbook_path)
    assert download_info.value.suggested_filename.startswith("acceptable-use-policy-")
    workbook = load_workbook(workbook_path)
    header, *cells = list(workbook["Acknowledgements"].iter_rows(values_only=True))
    workbook.close()
    assert header[0] == "Receipt number"
    assert sorted(row[0] for row in cells) == sorted(
        expected.values_list("receipt_number", flat=True)
    )
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.DONE
    recorded = [
        details
        for entry in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.ADMIN_ACTION)
        if (details := ledger.decode(entry).get("details") or {}).get("what")
        == "acknowledgements.xlsx"
    ]
    assert [details["rows"] for details in recorded] == [rows]

    page.get_by_role("link", name="My exports").first.click()
    expect(page.get_by_role("heading", level=1, name="My exports")).to_be_visible()
    table = page.get_by_role("table", name="Your recent exports")
    expect(table.get_by_role("cell", name="Ready")).to_be_visible()
    expect(table.get_by_role("link", name=job.filename)).to_be_visible()
    screenshot("my-exports")
    assert axe_violations() == []

    # A build that failed (its storage was down, say) says so and can be tried again.
    failed = ExportJob.objects.create(
        requested_by=job.requested_by,
        kind=ExportJob.Kind.PACKAGE,
        policy=job.policy,
        as_of=job.as_of,
        filename="acceptable-use-policy-audit-package.zip",
        status=ExportJob.Status.FAILED,
        error="OSError: [Errno 28] No space left on device",
        attempts=1,
    )
    page.goto(f"{portal}/reports/exports/{failed.pk}/")
    expect(page.get_by_role("alert")).to_contain_text("This export failed.")
    screenshot("export-failed")
    assert axe_violations() == []
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_text("The export was queued again.")).to_be_visible()
    expect(page.get_by_role("status").last).to_contain_text("The file is ready.")
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (ExportJob.Status.DONE, 2)
    assert csp_violations == []
