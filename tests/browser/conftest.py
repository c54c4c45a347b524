"""Real-browser tests: Playwright driving Debian's Chromium against the live test server.

Screenshots of every page a test looks at are saved under test-artifacts/screenshots/ so a
reviewer can see what a person sees.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from tests.conftest import skip_or_fail

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run in
# such a thread unless told that the test knows what it is doing.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _browser_missing() -> str:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs Playwright (pip install -e '.[dev]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    return ""


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser") and (reason := _browser_missing()):
        skip_or_fail(reason, "REQUIRE_BROWSER")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def browser():
    """A Chromium per test: Playwright's sync API keeps an event loop running in this thread
    while it is open, which would break code under test that runs its own (pyHanko's)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()
        # Connections opened while Playwright's loop ran belong to that context: close them
        # here, or the test database cannot be dropped at the end of the run.
        connections.close_all()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def portal(live_server, evidence_db):
    """The portal with its demo data, served for the browser."""
    call_command("seed_demo", force=True, verbosity=0)
    return live_server.url


@pytest.fixture
def csp_violations(page):
    """Content-Security-Policy violations the browser reports while the test runs."""
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return found


@pytest.fixture
def screenshot(page, request):
    """Save a full-page screenshot: screenshot("home") -> <test name>-home.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


AXE_SOURCE = Path(__file__).with_name("vendor") / "axe-4.14.1.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


def axe_violations_on(page) -> list[str]:
    """axe-core's WCAG 2.0/2.1/2.2 A and AA violations on the page as it is now, as readable lines.

    The script is evaluated through the DevTools protocol, which the page's CSP does not
    govern, so the page is checked exactly as it is served.
    """
    page.evaluate(AXE_SOURCE.read_text("utf-8"))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in result["violations"]
    ]


@pytest.fixture
def axe_violations(page):
    """`axe_violations()`: axe-core's violations on the test's page as it is now."""
    return lambda: axe_violations_on(page)


def sign_in(page, base_url: str, email: str, password: str = "portal-demo-2026") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
