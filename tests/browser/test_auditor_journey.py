"""The demo auditor reads completion, follows a number to the people behind it, looks back in
time, and takes the CSV and the audit package away."""

import csv
import datetime as dt
import io
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement, Policy, User
from acknowledgements.policies import actions as policy_actions
from acknowledgements.signing import actions as signing_actions
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.conftest import client_evidence, sign_through_service

SIGNERS = ["signer001@example.com", "signer002@example.com", "signer003@example.com"]


def _material_revision_due_now() -> tuple[Policy, int]:
    """Publish the demo's drafted 2.0 due at once; three people sign it and one declines it."""
    admin = User.objects.get(email="admin@example.com")
    policy = Policy.objects.get(slug="acceptable-use-policy")
    draft = policy.revisions.get(version="2.0")
    policy_actions.update_draft(
        actor=admin, revision=draft, audiences=list(draft.audiences.all()), due_days=0
    )
    revision = policy_actions.publish_revision(actor=admin, revision=draft)
    for email in SIGNERS:
        person = User.objects.get(email=email)
        sign_through_service(person, revision)
    signing_actions.record_decline(
        person=User.objects.get(email="signer004@example.com"),
        revision=revision,
        reason="I need to ask my manager first",
        client=client_evidence(),
    )
    in_scope = User.objects.filter(is_active=True, audiences__isnull=False).distinct().count()
    return policy, in_scope


@dataclass(frozen=True)
class Scenario:
    policy: Policy
    in_scope: int
    before_material: object


@pytest.fixture
def scenario(portal) -> Scenario:
    """Set up before the browser starts: sealing a receipt runs an event loop of its own, which
    Playwright's (running in this thread once the page exists) would refuse."""
    # Demo data has 1.0 and 1.1 in effect; a moment later 2.0 replaces them. The "as of" field
    # takes whole seconds, so the portal's clock moves on two seconds rather than waiting.
    seeded = timezone.now()
    with time_machine.travel(seeded + dt.timedelta(seconds=2.2), tick=True):
        before_material = (seeded + dt.timedelta(seconds=1.1)).replace(microsecond=0)
        policy, in_scope = _material_revision_due_now()
        yield Scenario(policy, in_scope, before_material)


def test_auditor_finds_overdue_people_and_takes_the_evidence_away(
    scenario, portal, page, screenshot, csp_violations, axe_violations, tmp_path, request
):
    policy, before_material = scenario.policy, scenario.before_material
    overdue = scenario.in_scope - len(SIGNERS) - 1

    sign_in(page, portal, "auditor@example.com")
    page.get_by_role("link", name="Reports", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Completion at a glance")).to_be_visible()
    panel = page.get_by_role("region", name="Acceptable Use Policy")
    expect(panel.get_by_text("2.0 (material)")).to_be_visible()
    expect(
        panel.get_by_role("link", name=f"{overdue} people Overdue: open the list")
    ).to_be_visible()
    expect(panel.get_by_role("link", name="3 people Signed: open the list")).to_be_visible()
    expect(panel.get_by_role("link", name="1 people Declined: open the list")).to_be_visible()
    expect(panel.get_by_role("img", name="Acceptable Use Policy: status of everyone in scope"))
    screenshot("dashboard")
    assert axe_violations() == []

    # Every number opens the list behind it.
    panel.get_by_role("link", name=f"{overdue} people Overdue: open the list").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("People in scope")
    expect(page.get_by_text(f"{overdue} people match.")).to_be_visible()
    expect(page.get_by_label("Status")).to_have_value("overdue")
    rows = page.locator("table.people-table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first.get_by_text("Overdue")).to_be_visible()
    screenshot("overdue-list")
    assert axe_violations() == []

    page.get_by_label("Name or email contains").fill("signer004")
    page.get_by_label("Status").select_option("")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("1 person matches.")).to_be_visible()
    page.locator("table.people-table tbody").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Evidence recorded")).to_be_visible()
    expect(page.get_by_text("I need to ask my manager first")).to_be_visible()
    screenshot("person")

    # As of a moment before 2.0: the state then, computed from the ledger.
    page.get_by_role("link", name="Dashboard").click()
    zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    local = timezone.localtime(before_material, timezone.get_fixed_timezone(0))
    if zone not in ("UTC", "Etc/UTC"):
        import zoneinfo

        local = timezone.localtime(before_material, zoneinfo.ZoneInfo(zone))
    page.get_by_label("As of").fill(local.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("Showing the state as of")).to_be_visible()
    panel = page.get_by_role("region", name="Acceptable Use Policy")
    expect(panel.get_by_text("1.1 (minor)")).to_be_visible()
    expect(panel.get_by_role("link", name="0 people Signed: open the list")).to_be_visible()
    screenshot("as-of")

    page.get_by_label("As of").fill("2999-01-01T00:00:00")
    page.get_by_role("button", name="Show").click()
    expect(
        page.locator("#id_as_of_error").get_by_text("That moment is in the future")
    ).to_be_visible()
    expect(page.get_by_text("Showing the state now")).to_be_visible()
    screenshot("future-refused")

    # Take the evidence away (the refused moment left the page showing now).
    panel = page.get_by_role("region", name="Acceptable Use Policy")
    with page.expect_download() as download_info:
        panel.get_by_role("button", name="Acknowledgements (CSV)").click()
    exported = tmp_path / "acknowledgements.csv"
    download_info.value.save_as(exported)
    rows = list(csv.DictReader(io.StringIO(exported.read_text("utf-8"))))
    signed = Acknowledgement.objects.filter(revision__policy=policy)
    assert sorted(row["Receipt number"] for row in rows) == sorted(
        signed.values_list("receipt_number", flat=True)
    )
    assert {row["Email at signing"] for row in rows} == set(SIGNERS)
    assert all(row["Signed at (UTC)"].endswith("Z") for row in rows)

    # The package is built by a task (at once with the immediate backend): its page offers it.
    panel.get_by_role("button", name="Audit package (ZIP)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Audit package (ZIP): Acceptable Use Policy"
    )
    expect(page.get_by_text("The file is ready.")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"^Download .*\.zip")).click()
    package = tmp_path / "package.zip"
    download_info.value.save_as(package)
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "package")
    assert {"acknowledgements.csv", "ledger.jsonl", "verify_ledger.py", "README.txt"} <= names
    assert {f"receipts/{n}.pdf" for n in signed.values_list("receipt_number", flat=True)} <= names
    check = subprocess.run(
        [sys.executable, "verify_ledger.py", "ledger.jsonl"],
        cwd=tmp_path / "package",
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("OK")

    page.get_by_role("link", name="Dashboard").click()
    panel = page.get_by_role("region", name="Acceptable Use Policy")
    with page.expect_download() as download_info:
        panel.get_by_role("button", name="Summary (PDF)").click()
    summary = tmp_path / "summary.pdf"
    download_info.value.save_as(summary)
    assert summary.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftoppm"):  # a picture of each page, to look at with the screenshots
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "60",
                str(summary),
                str(ARTIFACTS / f"{request.node.name}-summary-pdf"),
            ],
            check=True,
        )

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1, name="Audit log")).to_be_visible()
    page.get_by_label("Action").select_option("export")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("3 entries.")).to_be_visible()
    expect(page.locator("table.audit-table").get_by_text("audit-package.zip")).to_be_visible()
    expect(page.locator("table.audit-table").get_by_text("Demo Auditor").first).to_be_visible()
    screenshot("audit-log")
    assert axe_violations() == []
    assert csp_violations == []
    assert re.search(r"/reports/audit-log/", page.url)
