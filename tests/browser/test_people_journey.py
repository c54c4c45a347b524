"""An administrator adds a person, who sets a password from the invitation, signs in and signs;
then the person leaves and can no longer get in."""

import re

from playwright.sync_api import expect

from acknowledgements.models import Acknowledgement, User
from tests.browser.conftest import sign_in

NEW_PASSWORD = "a-long-and-new-passphrase-2026"


def test_an_added_person_accepts_the_invitation_signs_and_later_leaves(
    portal, browser, page, screenshot, csp_violations, axe_violations, mailoutbox
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/manage/people/")
    page.get_by_role("link", name="Add a person").click()
    expect(page.get_by_role("heading", name="Add a person")).to_be_visible()
    assert axe_violations() == []

    # A bad address is refused next to its field, and nobody is added.
    page.get_by_label("Email address").fill("not an address")
    page.get_by_label("Full name").fill("Nina Newcomer")
    page.get_by_role("button", name="Add and invite").click()
    expect(
        page.locator("#id_email_error").get_by_text("Enter a valid email address.")
    ).to_be_visible()
    assert not User.objects.filter(full_name="Nina Newcomer").exists()

    page.get_by_label("Email address").fill("nina@example.com")
    page.get_by_label("Employees").check()
    page.get_by_label("Employee number").fill("E-2026-7")
    page.get_by_role("button", name="Add and invite").click()
    expect(
        page.get_by_text("Nina Newcomer is added, and an invitation is on its way")
    ).to_be_visible()
    screenshot("added")
    assert axe_violations() == []

    (invitation,) = [m for m in mailoutbox if m.to == ["nina@example.com"]]
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", invitation.body)
    assert link, invitation.body

    newcomer = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-GB"
    ).new_page()
    newcomer.goto(f"{portal}{link.group(1)}")
    newcomer.get_by_label("New Password", exact=True).fill(NEW_PASSWORD)
    newcomer.get_by_label("New Password (again)").fill(NEW_PASSWORD)
    newcomer.get_by_role("button", name="Change Password").click()
    expect(newcomer.get_by_text("Your password is now changed.")).to_be_visible()

    sign_in(newcomer, portal, "nina@example.com", NEW_PASSWORD)
    newcomer.get_by_role("link", name="Read and sign", exact=True).first.click()
    newcomer.get_by_label("I have read and understood this policy").check()
    newcomer.get_by_label("I agree to sign policy acknowledgements electronically").check()
    newcomer.get_by_label("Full name", exact=True).fill("Nina Newcomer")
    newcomer.get_by_role("button", name="Sign", exact=True).click()
    expect(
        newcomer.get_by_role("heading", name="Thank you, your signature is recorded")
    ).to_be_visible()
    assert Acknowledgement.objects.filter(person__email="nina@example.com").count() == 1

    # She leaves: the administrator records it, and her open session no longer gets her in.
    person = User.objects.get(email="nina@example.com")
    page.goto(f"{portal}/manage/people/{person.pk}/")
    page.get_by_role("button", name="Record as having left").click()
    expect(page.get_by_text("is recorded as having left")).to_be_visible()
    expect(page.get_by_role("button", name="Reactivate")).to_be_visible()
    screenshot("left")
    assert axe_violations() == []

    newcomer.goto(f"{portal}/")
    expect(newcomer).to_have_url(re.compile(r"/accounts/login/"))
    # What she signed is kept.
    assert Acknowledgement.objects.filter(person=person).count() == 1
    assert csp_violations == []


def test_an_administrator_imports_a_file_checks_it_and_the_figures_change(
    portal, page, screenshot, csp_violations, axe_violations, tmp_path
):
    sign_in(page, portal, "admin@example.com")
    page.goto(f"{portal}/reports/")
    in_scope = page.locator("dt", has_text="People in scope").locator("xpath=..").locator("dd")
    before = int(in_scope.first.inner_text())

    hr_export = tmp_path / "hr-export.csv"
    hr_export.write_text(
        "email,full_name,audiences,joined_at,manager_email,external_id,active\n"
        "ivy@example.com,Ivy Import,employees,2026-01-05,,hr-901,yes\n"
        "jon@example.com,Jon Import,employees;contractors,2026-01-05,ivy@example.com,hr-902,yes\n"
        "kim@example.com,Kim Import,astronauts,2026-01-05,,hr-903,yes\n"
        "employee@example.com,Demo Employee,employees,,,,no\n"
    )
    page.goto(f"{portal}/manage/people/")
    page.get_by_role("link", name="Import from CSV").click()
    page.get_by_label("CSV file").set_input_files(str(hr_export))
    page.get_by_role("button", name="Check the file").click()

    expect(
        page.get_by_role("heading", name="Checked: waiting for your confirmation")
    ).to_be_visible()
    expect(page.get_by_role("row", name="People to add 2")).to_be_visible()
    expect(page.get_by_role("row", name="Leavers to record 1")).to_be_visible()
    expect(page.get_by_text("unknown audience astronauts")).to_be_visible()
    screenshot("checked")
    assert axe_violations() == []
    assert not User.objects.filter(email="ivy@example.com").exists()

    page.get_by_role("button", name="Apply the import").click()
    expect(page.get_by_text("Applied on")).to_be_visible()
    screenshot("applied")
    assert User.objects.get(email="jon@example.com").manager.email == "ivy@example.com"
    assert not User.objects.get(email="employee@example.com").is_active

    page.goto(f"{portal}/reports/")
    after = int(in_scope.first.inner_text())
    assert after == before + 2 - 1  # two added, one leaver
    assert csp_violations == []
