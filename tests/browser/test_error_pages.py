"""What a person sees when something goes wrong: a missing page, a refused one, a form refused
for its security token and a server error all keep the portal's header, lead home and name the
compliance contact. The browser asks for no icon the portal cannot serve."""

from playwright.sync_api import expect

from tests.browser.conftest import sign_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def check_error_page(page, name: str, heading: str, screenshot, axe_violations) -> None:
    expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
    expect(
        page.get_by_role("banner").get_by_role("link", name="Voipkonnec Policy Portal")
    ).to_be_visible()
    expect(page.get_by_role("link", name="Back to my policies")).to_have_attribute("href", "/")
    contact = page.get_by_role("main").get_by_role("link", name="compliance@voipkonnec.com")
    expect(contact).to_have_attribute("href", "mailto:compliance@voipkonnec.com")
    assert axe_violations() == [], name
    screenshot(name)
    page.set_viewport_size(PHONE)
    screenshot(f"{name}-phone")
    assert axe_violations() == [], name
    page.set_viewport_size(DESKTOP)


def test_each_error_page_keeps_the_header_a_way_home_and_the_contact(
    portal, page, settings, screenshot, axe_violations, csp_violations
):
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    sign_in(page, portal, "employee@example.com")
    expect(page.get_by_role("heading", level=1, name="My policies")).to_be_visible()

    response = page.goto(f"{portal}/no-such-page/")
    assert response.status == 404
    check_error_page(page, "404", "Page not found", screenshot, axe_violations)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # still signed in

    response = page.goto(f"{portal}/manage/")
    assert response.status == 403
    check_error_page(page, "403", "You cannot open this page", screenshot, axe_violations)

    # The security token's cookie is gone (cleared, or blocked by the browser): the next form
    # sent is refused, and the person is told what to do.
    page.goto(portal)
    page.context.clear_cookies(name="csrftoken")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1, name="The form was not sent")).to_be_visible()
    expect(page.get_by_text("Go back, reload the page and send the form again.")).to_be_visible()
    check_error_page(page, "csrf", "The form was not sent", screenshot, axe_violations)

    settings.ROOT_URLCONF = "tests.error_urls"
    response = page.goto(f"{portal}/broken/")
    assert response.status == 500
    check_error_page(page, "500", "Something went wrong", screenshot, axe_violations)
    # Rendered without the request, so without the signed-in menu that might fail again.
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)

    assert [url for url in missing if "/no-such-page/" not in url] == []
    assert csp_violations == []


def test_the_favicon_is_served(portal, page):
    page.goto(f"{portal}/accounts/login/")
    icon = page.locator('link[rel="icon"]')
    expect(icon).to_have_attribute("href", "/static/img/favicon.svg")

    linked = page.request.get(f"{portal}/static/img/favicon.svg")
    assert linked.status == 200
    assert linked.headers["content-type"] == "image/svg+xml"
    legacy = page.request.get(f"{portal}/favicon.ico")  # follows the redirect
    assert legacy.status == 200
    assert legacy.url.endswith("/static/img/favicon.svg")
