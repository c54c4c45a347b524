"""The portal's languages are offered in the header and on the sign-in page, not only under
Preferences: one press and the same page comes back in French; a signed-in person's choice is
kept in their account."""

import re

from playwright.sync_api import expect

from acknowledgements.models import User
from tests.browser.conftest import sign_in


def language_switch(page):
    return page.get_by_role("form", name=re.compile(r"^(Language|Langue)$"))


def test_someone_signed_out_switches_the_sign_in_page_to_french(
    portal, page, screenshot, axe_violations, csp_violations
):
    page.goto(f"{portal}/accounts/login/")
    assert axe_violations() == []
    language_switch(page).get_by_role("button", name="Français").click()

    expect(page).to_have_url(f"{portal}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Se connecter")
    expect(language_switch(page).get_by_role("button", name="English")).to_be_visible()
    screenshot("sign-in-in-french")
    assert axe_violations() == []

    # And back, from the same place.
    language_switch(page).get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert csp_violations == []


def test_a_signed_in_person_switches_from_the_header_and_the_choice_is_kept(
    portal, page, screenshot, axe_violations
):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/acknowledgements/")
    banner = page.get_by_role("banner")
    language_switch(banner).get_by_role("button", name="Français").click()

    expect(page).to_have_url(f"{portal}/acknowledgements/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes attestations")
    expect(banner.get_by_role("button", name="Se déconnecter")).to_be_visible()
    assert User.objects.get(email="employee@example.com").preferred_language == "fr"
    screenshot("header-in-french")
    assert axe_violations() == []

    # The account's language wins over the browser's on the next visit.
    page.context.clear_cookies(name="django_language")
    page.goto(f"{portal}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes politiques")


def test_on_a_phone_the_switch_is_in_the_menu(portal, page, screenshot, axe_violations):
    page.set_viewport_size({"width": 320, "height": 640})
    sign_in(page, portal, "employee@example.com")
    banner = page.get_by_role("banner")
    expect(language_switch(banner)).to_be_hidden()
    banner.locator("summary", has_text="Menu").click()
    expect(language_switch(banner)).to_be_visible()
    screenshot("phone-menu")
    assert axe_violations() == []
    language_switch(banner).get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mes politiques")
    expect(banner.locator("summary")).to_have_text("Menu")


def test_the_policy_is_named_in_the_language_its_text_is_read_in(
    portal, page, screenshot, axe_violations
):
    sign_in(page, portal, "employee@example.com")
    page.goto(f"{portal}/policies/acceptable-use-policy/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Acceptable Use Policy")

    language_switch(page.get_by_role("banner")).get_by_role("button", name="Français").click()

    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("article")).to_have_attribute("lang", "fr")
    expect(heading).to_have_text("Politique d\u2019utilisation acceptable")
    expect(page).to_have_title(re.compile(r"^Politique d\u2019utilisation acceptable 1\.1 "))
    screenshot("policy-in-french")
    assert axe_violations() == []

    # The authoritative English text is one click away, under its English name.
    page.get_by_role("link", name="Lire le texte (English)").first.click()
    expect(page.get_by_role("article")).to_have_attribute("lang", "en")
    expect(heading).to_have_text("Acceptable Use Policy")
    expect(heading).to_have_attribute("lang", "en")
    assert axe_violations() == []
