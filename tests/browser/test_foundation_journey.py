import re

from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def test_employee_signs_in_and_reads_the_policy(portal, page, screenshot, csp_violations):
    page.goto(portal)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_role("heading", level=1, name="Sign in")).to_be_visible()
    screenshot("sign-in")

    sign_in(page, portal, "employee@example.com")
    expect(page.get_by_role("heading", level=1, name="My policies")).to_be_visible()
    policy_link = page.get_by_role("link", name="Acceptable Use Policy", exact=True)
    expect(policy_link).to_be_visible()
    expect(page.get_by_text("Version 1.1")).to_be_visible()
    expect(page.get_by_text("Not signed yet")).to_be_visible()
    screenshot("home")

    policy_link.click()
    expect(page.get_by_role("heading", level=1, name="Acceptable Use Policy")).to_be_visible()
    expect(page.get_by_role("heading", name="9. User Agreement")).to_be_visible()
    expect(page.get_by_text("Voipkonnec retains the right to revise this policy")).to_be_visible()
    screenshot("reading")
    assert csp_violations == []


def test_wrong_password_shows_an_error_and_signs_nobody_in(portal, page, screenshot):
    sign_in(page, portal, "employee@example.com", password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("not correct")
    screenshot("wrong-password")
    page.goto(portal)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
