"""On a phone 320 px wide (WCAG 1.4.10), no page of the portal scrolls sideways, whoever opens
it, and axe finds no WCAG A or AA violation on it; the header takes one row there, and on a
desktop the person's name and "Sign out" stay on one line.

The pages come from the URLconf: every address of the portal is either visited below, by the
role that reaches it, or named in NOT_PAGES with the reason it is not a page.
"""

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from acknowledgements import concerns as concern_actions
from acknowledgements.models import (
    ConcernReport,
    ExportJob,
    Policy,
    PolicyRevision,
    User,
    WebhookDelivery,
)
from acknowledgements.people import import_jobs
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import jobs as export_jobs
from acknowledgements.webhooks import actions as webhook_actions
from tests.browser.conftest import ARTIFACTS, axe_violations_on, sign_in
from tests.conftest import sign_through_service
from tests.test_access_matrix import portal_routes

PHONE = {"width": 320, "height": 640}
DESKTOP = {"width": 1280, "height": 900}
HEADER_ROW_MAX = 64  # px: one row, the brand mark and the menu button with their padding

SIGNED_OUT, SIGNER, ADMINISTRATOR, AUDITOR = "signed-out", "signer", "administrator", "auditor"
MANAGER = "manager"
ROLES = [SIGNED_OUT, SIGNER, MANAGER, ADMINISTRATOR, AUDITOR]
ACCOUNTS = {
    SIGNER: "employee@example.com",
    MANAGER: "manager@example.com",
    ADMINISTRATOR: "admin@example.com",
    AUDITOR: "auditor@example.com",
}

# The portal's addresses that answer with something other than a page to read.
NOT_PAGES = {
    "favicon": "an icon",
    "healthz": "a probe's answer",
    "readyz": "a probe's answer",
    "ledger_checkpoint": "a signed checkpoint, plain text",
    "ledger_key": "a verifier key, plain text",
    "ledger_checkpoints": "JSON",
    "ledger_checkpoint_at": "a signed checkpoint, plain text",
    "ledger_checkpoint_timestamp": "an RFC 3161 timestamp token (DER)",
    "ledger_inclusion_proof": "JSON",
    "sealing_root": "a PEM certificate",
    "sealing_root_former": "a PEM certificate",
    "sealing_root_crl": "a certificate revocation list",
    "ledger_consistency_proof": "JSON",
    "sign": "POST only (its errors are shown on the policy page, visited below)",
    "decline": "POST only",
    "my_data": "a ZIP file",
    "receipt_download": "a PDF file",
    "manage_policy_audiences": "POST only",
    "manage_policy_renewal": "POST only",
    "team_remind": "POST only",
    "reports_people_remind": "POST only",
    "manage_preview": "POST only, a fragment for the editor",
    "manage_retry_failed": "POST only",
    "manage_person_audiences": "POST only",
    "manage_person_exemption": "POST only",
    "manage_person_invite": "POST only",
    "manage_person_deactivate": "POST only",
    "manage_person_reactivate": "POST only",
    "manage_people_export": "POST only, a CSV file",
    "manage_people_import_apply": "POST only",
    "manage_concern_status": "POST only",
    "manage_concern_attachment": "the reporter's file",
    "manage_integration_revoke": "POST only",
    "manage_webhook_remove": "POST only",
    "manage_webhook_resend": "POST only",
    "reports_export_csv": "a CSV file",
    "reports_audit_log_csv": "a CSV file",
    "reports_export_people_csv": "a CSV file",
    "reports_export_pdf": "a PDF file",
    "reports_export_download": "the export's file",
    "reports_export_retry": "POST only",
    # The read API: JSON for a machine, with a bearer token.
    "api:api-root": "a 404 (the API's base address)",
    "api_base": "a 404 in JSON (the API's base address)",
    "api_unknown": "a 404 in JSON (any other address under /api/)",
    "api:openapi-json": "the OpenAPI schema (JSON)",
    "api:openapi-view": "Swagger UI's own page (tests/browser/test_api_docs_journey.py)",
    "api:policies": "JSON for a machine",
    "api:policy": "JSON for a machine",
    "api:policy_figures": "JSON for a machine",
    "api:policy_people": "JSON for a machine",
    "api:person_status": "JSON for a machine",
    "api:acknowledgements": "JSON for a machine",
    "api:acknowledgement": "JSON for a machine",
    "api:receipt_download": "a PDF file",
    "api:ledger_checkpoint": "JSON for a machine",
}
# The directory's API (JSON for a machine), and the outbox a laptop keeps (a 404 unless DEBUG).
NOT_PAGE_PREFIXES = ("scim_", "dev_outbox")


@dataclass
class Visit:
    role: str
    name: str  # the URL name, or what the page shows
    path: str


@dataclass
class Records:
    """Demo data with one of everything a page can show."""

    policy: Policy
    published: PolicyRevision
    draft: PolicyRevision
    receipt_number: str
    person: User
    concern: ConcernReport
    export_job: ExportJob
    people_import: int
    webhook: int


@pytest.fixture
def records(portal) -> Records:
    policy = Policy.objects.get(slug="acceptable-use-policy")
    published = policy.revisions.published().newest_first().first()
    draft = policy.revisions.filter(published_at__isnull=True).get()
    admin = User.objects.get(email=ACCOUNTS[ADMINISTRATOR])
    auditor = User.objects.get(email=ACCOUNTS[AUDITOR])
    # Someone other than the signer who visits signs, so that the signer still sees the form.
    partner = User.objects.get(email="partner@example.com")
    acknowledgement = sign_through_service(partner, published)
    # The signer has signed another policy, so that "My acknowledgements" shows its table with
    # the receipts, while the Acceptable Use Policy still shows them its form.
    signed_before = policy_actions.create_policy(
        actor=admin,
        name="Clean Desk Policy",
        slug="clean-desk-policy",
        owner=admin,
        audiences=list(policy.audiences.all()),
    )
    signed_before_draft = policy_actions.create_draft(
        actor=admin,
        policy=signed_before,
        version="1.0",
        body="# Clean Desk Policy\n\n## 1. Purpose\n\nLeave no papers on your desk.\n",
        change=PolicyRevision.Change.MATERIAL,
        effective_at=timezone.now(),
        due_days=14,
    )
    sign_through_service(
        User.objects.get(email=ACCOUNTS[SIGNER]),
        policy_actions.publish_revision(actor=admin, revision=signed_before_draft),
    )
    concern = concern_actions.report_concern(
        reporter=partner,
        category=ConcernReport.Category.SECURITY,
        description="A laptop was left unlocked in meeting room 4, with a session open.",
        anonymous=False,
        attachment=SimpleUploadedFile("note.txt", b"what I saw\n"),
    )
    job = export_jobs.request_export(
        actor=auditor,
        kind=ExportJob.Kind.XLSX,
        policy=policy,
        as_of=timezone.now(),
        filters={},
        filename="acceptable-use-policy-acknowledgements.xlsx",
    )
    people_import = import_jobs.request_import(
        actor=admin,
        upload=SimpleUploadedFile(
            "people.csv",
            b"email,full_name\nnew.person.with.a.long.address@example.com,New Person\n",
        ),
        invite=False,
    )
    import_jobs.plan_job(job_id=people_import.pk)
    webhook, _secret = webhook_actions.register_endpoint(
        actor=admin, url="https://93.184.215.14/hooks/policies", events=["acknowledgement.signed"]
    )
    WebhookDelivery.objects.create(
        endpoint=webhook,
        event_id="msg_bG9uZy1ldmVudC1pZC1mb3ItYS1waG9uZQ",
        event_type="acknowledgement.signed",
        body="{}",
        attempts=3,
        last_response_code=503,
        last_error="HTTP 503",
    )
    return Records(
        policy=policy,
        published=published,
        draft=draft,
        receipt_number=acknowledgement.receipt_number,
        person=partner,
        concern=concern,
        export_job=job,
        people_import=people_import.pk,
        webhook=webhook.pk,
    )


def _url(name: str, **kwargs) -> str:
    return reverse(f"acknowledgements:{name}", kwargs=kwargs)


def visits(records: Records) -> list[Visit]:
    """Every page, by the role that reaches it."""
    slug = records.policy.slug
    version = records.published.version
    draft = records.draft.pk
    person = records.person.pk
    pages = {
        SIGNED_OUT: {
            "account_login": "/accounts/login/",
            "account_reset_password": "/accounts/password/reset/",
            "account_signup": "/accounts/signup/",
            "verify": _url("verify"),
            "404": "/no-such-page/",
        },
        SIGNER: {
            "home": _url("home"),
            "policy_detail": _url("policy_detail", slug=slug),
            "revision_detail": _url("revision_detail", slug=slug, version=version),
            "my_acknowledgements": _url("my_acknowledgements"),
            "verify": _url("verify"),
            "preferences": _url("preferences"),
            "concern_new": _url("concern_new"),
            "concern_thanks": _url("concern_thanks"),
            "account_change_password": "/accounts/password/change/",
            "mfa_index": "/accounts/2fa/",
            "mfa_activate_totp": "/accounts/2fa/totp/activate/",
            "403": _url("manage_home"),
            "404": "/no-such-page/",
        },
        ADMINISTRATOR: {
            "manage_home": _url("manage_home"),
            "manage_policy_new": _url("manage_policy_new"),
            "manage_policy": _url("manage_policy", slug=slug),
            "manage_draft_new": _url("manage_draft_new", slug=slug),
            "manage_revision": _url("manage_revision", pk=records.published.pk),
            "manage_revision-draft": _url("manage_revision", pk=draft),
            "manage_draft_edit": _url("manage_draft_edit", pk=draft),
            "manage_translation": _url("manage_translation", pk=draft, language="fr"),
            "manage_publish": _url("manage_publish", pk=draft),
            "manage_concerns": _url("manage_concerns"),
            "manage_people": _url("manage_people"),
            "manage_person": _url("manage_person", pk=person),
            "manage_person_new": _url("manage_person_new"),
            "manage_person_edit": _url("manage_person_edit", pk=person),
            "manage_people_import": _url("manage_people_import"),
            "manage_people_import_job": _url("manage_people_import_job", pk=records.people_import),
            "manage_integrations": _url("manage_integrations"),
            "manage_webhooks": _url("manage_webhooks"),
            "manage_webhook": _url("manage_webhook", pk=records.webhook),
            "acknowledgement_detail": _url(
                "acknowledgement_detail", receipt_number=records.receipt_number
            ),
        },
        MANAGER: {
            "team": _url("team"),
        },
        AUDITOR: {
            "reports_dashboard": _url("reports_dashboard"),
            "reports_people": _url("reports_people", slug=slug),
            "reports_people-pending": _url("reports_people", slug=slug) + "?status=pending",
            "reports_person": _url("reports_person", pk=person),
            "reports_audit_log": _url("reports_audit_log"),
            "declines": _url("declines"),
            "reports_exports": _url("reports_exports"),
            "reports_export_job": _url("reports_export_job", pk=records.export_job.pk),
            "reports_export_xlsx": _url("reports_export_xlsx", slug=slug),
            "reports_export_package": _url("reports_export_package", slug=slug),
        },
    }
    return [
        Visit(role, name, path) for role, named in pages.items() for name, path in named.items()
    ]


# Pages reached by pressing a button rather than by an address: (role, name, address, button).
AFTER_A_BUTTON = [
    (SIGNER, "policy_detail-errors", "/policies/acceptable-use-policy/", "Sign"),
    (SIGNER, "verify-errors", "/verify/", "Check receipt"),
    (SIGNER, "concern_new-errors", "/concerns/new/", "Send the report"),
    (ADMINISTRATOR, "manage_person_new-errors", "/manage/people/new/", "Add and invite"),
    (ADMINISTRATOR, "manage_draft_delete", "/manage/revisions/{draft}/", "Delete draft…"),
]

# The innermost element whose box or content reaches furthest right past the viewport, not
# inside a box which scrolls or clips it (a table in its own scroll container is fine).
WIDEST = """() => {
  const limit = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const overflow = getComputedStyle(up).overflowX;
      if (overflow !== "visible" && up.getBoundingClientRect().right <= limit + 1) return true;
    }
    return false;
  };
  let widest = null, reach = limit;
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    const right = box.left + Math.max(box.width, el.scrollWidth);
    if (box.width > 0 && right > limit && right >= reach && el.checkVisibility() && !clipped(el)) {
      widest = el;
      reach = right;
    }
  }
  if (!widest) return "";
  const classes = widest.classList.length ? "." + [...widest.classList].join(".") : "";
  const text = (widest.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 60);
  return `<${widest.tagName.toLowerCase()}${widest.id ? "#" + widest.id : ""}${classes}> `
    + `reaching ${Math.round(reach)} px: "${text}"`;
}"""


def overflow(page) -> str:
    """Why the page scrolls sideways, or "" when it does not."""
    width = page.evaluate("document.documentElement.scrollWidth")
    if width <= PHONE["width"]:
        return ""
    return f"{width} px wide; widest: {page.evaluate(WIDEST)}"


def look(page, role: str, name: str, found: dict) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"phone-320-{role}-{name}.png"), full_page=True)
    where = f"{name} ({page.url})"
    if why := overflow(page):
        found[where] = why
    if violations := axe_violations_on(page):
        found[f"{where}, axe"] = violations


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, locale="en-GB")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_every_portal_address_is_visited_or_is_not_a_page(portal, records):
    visited = {visit.name for visit in visits(records)}
    visited |= {name for _role, name, _path, _button in AFTER_A_BUTTON}
    unaccounted = [
        name
        for name in portal_routes()
        if name not in visited and name not in NOT_PAGES and not name.startswith(NOT_PAGE_PREFIXES)
    ]
    assert unaccounted == []


@pytest.mark.parametrize("role", ROLES)
def test_no_page_scrolls_sideways_at_320_px(portal, records, phone, settings, role):
    if role in ACCOUNTS:
        sign_in(phone, portal, ACCOUNTS[role])
        expect(phone.locator("summary", has_text="Menu")).to_be_visible()
    found: dict[str, object] = {}
    for visit in visits(records):
        if visit.role == role:
            phone.goto(f"{portal}{visit.path}")
            look(phone, role, visit.name, found)
    if role == SIGNER:
        # Each signature's receipt is on screen, not in a column scrolled out of sight.
        phone.goto(f"{portal}{_url('my_acknowledgements')}")
        receipt = phone.get_by_role("link", name="PDF")
        expect(receipt).to_be_visible()
        box = receipt.bounding_box()
        assert box["x"] + box["width"] <= PHONE["width"], "the receipt is off screen"
    for who, name, path, button in AFTER_A_BUTTON:
        if who == role:
            phone.goto(f"{portal}{path.format(draft=records.draft.pk)}")
            phone.get_by_role("button", name=button, exact=True).click()
            phone.wait_for_load_state()
            look(phone, role, name, found)
    if role == SIGNED_OUT:
        sign_in(phone, portal, ACCOUNTS[SIGNER], password="not the password")
        expect(phone.get_by_role("heading", name="There is a problem")).to_be_visible()
        look(phone, role, "account_login-errors", found)
        # A server error's page, rendered without the request (tests/error_urls.py).
        settings.ROOT_URLCONF = "tests.error_urls"
        phone.goto(f"{portal}/broken/")
        look(phone, role, "500", found)
    assert found == {}, f"pages that do not fit or fail axe at 320 px for the {role}: {found}"


def header_height(page) -> float:
    return page.get_by_role("banner").bounding_box()["height"]


@pytest.mark.parametrize("role", ROLES)
def test_the_header_is_one_row_on_a_phone_and_does_not_wrap_on_a_desktop(
    portal, page, screenshot, role
):
    page.set_viewport_size(PHONE)
    if role in ACCOUNTS:
        sign_in(page, portal, ACCOUNTS[role])
    else:
        page.goto(f"{portal}/accounts/login/")
    assert header_height(page) <= HEADER_ROW_MAX
    screenshot("phone")
    if role not in ACCOUNTS:
        return

    menu = page.locator("summary", has_text="Menu")
    navigation = page.get_by_role("navigation", name="Main")
    expect(navigation).to_be_hidden()
    menu.click()
    expect(navigation).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    screenshot("phone-menu-open")
    menu.click()
    expect(navigation).to_be_hidden()

    page.set_viewport_size(DESKTOP)
    expect(menu).to_be_hidden()
    expect(navigation).to_be_visible()
    screenshot("desktop")
    name = page.locator(".account-menu__name").bounding_box()
    sign_out = page.get_by_role("button", name="Sign out").bounding_box()
    line = page.locator(".account-menu__name").evaluate(
        "el => parseFloat(getComputedStyle(el).lineHeight)"
    )
    assert name["height"] < 1.5 * line, "the person's name wraps"
    assert sign_out["height"] < 3 * line, "Sign out wraps"
    name_middle = name["y"] + name["height"] / 2
    sign_out_middle = sign_out["y"] + sign_out["height"] / 2
    assert abs(name_middle - sign_out_middle) < 4, "the name and Sign out are not on one line"
    # The navigation has a row of its own below them, and keeps to it.
    tops = navigation.get_by_role("link").evaluate_all(
        "links => links.map(link => Math.round(link.getBoundingClientRect().top))"
    )
    assert len(set(tops)) == 1, "the navigation wraps"
    assert min(tops) > sign_out["y"] + sign_out["height"] / 2
    # Shown without the disclosure's button, the links are still reached with the keyboard.
    page.get_by_role("banner").get_by_role("link").first.focus()
    page.keyboard.press("Tab")
    expect(navigation.get_by_role("link", name="My policies")).to_be_focused()
