"""Who may open what: every URL of the portal, for every role, with GET and POST.

The table below has one row per URL name of the portal; the URL configuration is walked, so a
new URL without a row fails `test_every_portal_url_has_a_row`. Each cell is what one role gets
for GET and for POST (empty body): a status, a redirect (`LOGIN`: the sign-in page, `To(...)`:
a known page after a POST), or a status the portal should answer but does not yet (`Bug`,
a strict xfail). No request may change anything unless it is listed in `WRITES`.

The scenario is built once for the module (a sealed receipt takes about half a second) inside
a transaction that is rolled back at the end; every test runs in a savepoint inside it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, TestCase
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from acknowledgements import concerns as concern_actions
from acknowledgements.models import (
    Acknowledgement,
    ApiToken,
    Audience,
    ConcernReport,
    ExportJob,
    LedgerCheckpoint,
    LedgerEntry,
    Notification,
    PeopleImport,
    Policy,
    PolicyRevision,
    Receipt,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from acknowledgements.people import import_jobs
from acknowledgements.policies import actions as policy_actions
from acknowledgements.reports import jobs as export_jobs
from acknowledgements.roles import AUDITORS, POLICY_ADMINISTRATORS
from acknowledgements.scim import auth as scim_auth
from acknowledgements.signing import actions as signing_actions
from acknowledgements.standings import coverage
from acknowledgements.webhooks import actions as webhook_actions
from tests.conftest import PASSWORD, POLICY_BODY, client_evidence, set_evidence_triggers

# --- Roles and cells ------------------------------------------------------------------------------

ANON = "anonymous"
# Employees; signed 1.0 and holds the receipt; reported the concern; manages the decliner.
SIGNER = "signer"
OTHER = "other_audience_signer"  # Contractors: test-policy does not apply to them
ADMIN = "policy_admin"  # also an Employee, who has not signed 1.0 yet
AUDITOR = "auditor"  # no audience
SUPER = "superuser"  # no audience, is_staff (create_superuser)
ROLES = (ANON, SIGNER, OTHER, ADMIN, AUDITOR, SUPER)
METHODS = ("GET", "POST")

# The test policy's revisions are due in a year: nobody in the scenario is overdue, so the
# signing gate never sends anyone to the policy page instead of the page asked for.
DUE_DAYS = 365
LOGIN_PREFIX = "/accounts/login/"


@dataclass(frozen=True)
class To:
    """A 302 to this path; `{placeholders}` are the scenario's ids (see `Scenario.ids`).

    With `prefix`, the location only has to start with it (a page made by the request)."""

    location: str
    prefix: bool = False


LOGIN = To(LOGIN_PREFIX)  # a 302 to the sign-in page (checked as a prefix: ?next= follows)
HOME = To("/")
NEW_EXPORT_JOB = To("/reports/exports/", prefix=True)  # the page of the job just queued
POLICY_PAGE = To("/policies/test-policy/")


@dataclass(frozen=True)
class Bug:
    """The outcome the portal should give but does not: the case is a strict xfail."""

    expected: int | To
    reason: str


Cell = int | To | Bug

# Most rows follow one of these patterns; a row overrides the cells that differ.
PUBLIC_GET = dict.fromkeys(ROLES, (200, 405))
SIGNED_IN_GET = {ANON: (LOGIN, 405)} | dict.fromkeys(ROLES[1:], (200, 405))
SIGNED_IN_POST = {ANON: (405, LOGIN)}
# administrators_only: sign-in for anonymous visitors, 403 for everyone else but administrators
# (require_GET/require_POST come first, so the other method is a 405 even for anonymous ones).
MANAGE_GET = {ANON: (LOGIN, 405), SIGNER: (403, 405), OTHER: (403, 405), AUDITOR: (403, 405)}
MANAGE_GET |= {ADMIN: (200, 405), SUPER: (200, 405)}
MANAGE_POST = {ANON: (405, LOGIN), SIGNER: (405, 403), OTHER: (405, 403), AUDITOR: (405, 403)}
MANAGE_FORM = {ANON: (LOGIN, LOGIN), SIGNER: (403, 403), OTHER: (403, 403), AUDITOR: (403, 403)}
# view_reports: auditors, administrators and superusers.
REPORTS_GET = {ANON: (LOGIN, 405), SIGNER: (403, 405), OTHER: (403, 405)}
REPORTS_GET |= {ADMIN: (200, 405), AUDITOR: (200, 405), SUPER: (200, 405)}
# A receipt is its signer's, or anyone's for auditors and administrators; another person gets
# the same 404 as for a receipt number that does not exist.
RECEIPT_GET = SIGNED_IN_GET | {OTHER: (404, 405)}
# A background export: GET shows what it will hold, POST queues it (view_reports only).
# An export made at once and recorded: a POST only, so that no link can make one.
RECORDED_EXPORT = {ANON: (405, LOGIN), SIGNER: (405, 403), OTHER: (405, 403)}
RECORDED_EXPORT |= dict.fromkeys((ADMIN, AUDITOR, SUPER), (405, 200))
BACKGROUND_EXPORT = {ANON: (LOGIN, LOGIN), SIGNER: (403, 403), OTHER: (403, 403)}
BACKGROUND_EXPORT |= dict.fromkeys((ADMIN, AUDITOR, SUPER), (200, NEW_EXPORT_JOB))
# An export job is its requester's (the auditor's in the scenario): anyone else with
# view_reports, superusers included, gets the 404 of a job that does not exist.
EXPORT_JOB_GET = REPORTS_GET | {ADMIN: (404, 405), SUPER: (404, 405)}

PERSON_PAGE_AFTER_POST = (405, To("/manage/people/{signer}/"))
# The SCIM service answers a bearer token only: without one, whoever asks and however, a 401
# (a session is no token), before the method or the address is even looked at.
SCIM = dict.fromkeys(ROLES, (401, 401))
# The read API answers a read token only: without one a 401 for everyone (a session is no
# token); it only reads, so any other method is a 405 before the token is looked at.
READ_API = dict.fromkeys(ROLES, (401, 405))
# Pages of a laptop's portal (DEBUG on): a 404 for everyone, however asked, without DEBUG.
DEVELOPMENT_ONLY = dict.fromkeys(ROLES, (404, 404))

TABLE: dict[str, dict[str, tuple[Cell, Cell]]] = {
    # --- health (views/health.py): open to all, GET only
    "healthz": PUBLIC_GET,
    "readyz": PUBLIC_GET,
    # --- the ledger's transparency log (views/ledger.py): hashes only, open to all, GET only;
    # a proof asked for without its parameters is a 400 naming them
    "ledger_checkpoint": PUBLIC_GET,
    "ledger_key": PUBLIC_GET,
    "ledger_checkpoints": PUBLIC_GET,
    "ledger_checkpoint_at": PUBLIC_GET,
    # No checkpoint has a timestamp token in this table's data (no TSA): for anyone, a 404.
    "ledger_checkpoint_timestamp": dict.fromkeys(ROLES, (404, 405)),
    "ledger_inclusion_proof": dict.fromkeys(ROLES, (400, 405)),
    # --- the roots a seal chains to (views/trust.py): for anyone; no former root configured
    "sealing_root": PUBLIC_GET,
    "sealing_root_crl": PUBLIC_GET,
    "sealing_root_former": dict.fromkeys(ROLES, (404, 405)),
    "ledger_consistency_proof": dict.fromkeys(ROLES, (400, 405)),
    # --- the icon browsers ask for at the root (urls.py): the static SVG, for everyone
    "favicon": dict.fromkeys(ROLES, (To("/static/img/favicon.svg"), 405)),
    # --- signing (views/signing.py)
    "home": SIGNED_IN_GET,
    "policy_detail": SIGNED_IN_GET | {OTHER: (404, 405), AUDITOR: (404, 405), SUPER: (404, 405)},
    # Readable by its audiences, by people with a record about it, auditors and administrators.
    "revision_detail": SIGNED_IN_GET | {OTHER: (404, 405)},
    # An empty form is a 400 for those who may sign; the others are sent home with a message.
    "sign": SIGNED_IN_POST
    | {SIGNER: (405, 400), OTHER: (405, HOME), ADMIN: (405, 400)}
    | {AUDITOR: (405, HOME), SUPER: (405, HOME)},
    # The reason is optional, so an empty form declines for those who may; everyone is sent
    # home with a message.
    "decline": SIGNED_IN_POST | dict.fromkeys(ROLES[1:], (405, HOME)),
    "my_acknowledgements": SIGNED_IN_GET,
    "my_data": SIGNED_IN_GET,
    "acknowledgement_detail": RECEIPT_GET,
    "receipt_download": RECEIPT_GET,
    "verify": dict.fromkeys(ROLES, (200, 400)),
    # --- account (views/account.py): an empty POST leaves the form unbound, shown again (200)
    "preferences": {ANON: (LOGIN, LOGIN)} | dict.fromkeys(ROLES[1:], (200, 400)),
    # --- concerns (views/concerns.py)
    "concern_new": {ANON: (LOGIN, LOGIN)} | dict.fromkeys(ROLES[1:], (200, 400)),
    "concern_thanks": SIGNED_IN_GET,
    # --- manage (views/manage.py)
    "manage_home": MANAGE_GET,
    "manage_policy_new": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_policy": MANAGE_GET,
    "manage_policy_audiences": MANAGE_POST | {ADMIN: (405, 400), SUPER: (405, 400)},
    "manage_policy_renewal": MANAGE_POST | {ADMIN: (405, 400), SUPER: (405, 400)},
    "manage_draft_new": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_preview": MANAGE_POST | {ADMIN: (405, 200), SUPER: (405, 200)},
    "manage_revision": MANAGE_GET,
    "manage_draft_edit": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    # An empty POST leaves the form unbound: it is shown again (200).
    "manage_translation": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    # Without `confirm=yes` the POST shows the confirmation page.
    "manage_draft_delete": MANAGE_POST | {ADMIN: (405, 200), SUPER: (405, 200)},
    "manage_publish": MANAGE_FORM
    | {
        ADMIN: (200, To("/manage/revisions/{draft}/")),
        SUPER: (200, To("/manage/revisions/{draft}/")),
    },
    "manage_retry_failed": MANAGE_POST
    | {
        ADMIN: (405, To("/manage/revisions/{published}/")),
        SUPER: (405, To("/manage/revisions/{published}/")),
    },
    "manage_people": MANAGE_GET,
    "manage_person": MANAGE_GET,
    # No audience ticked is allowed: the person then belongs to none.
    "manage_person_audiences": MANAGE_POST
    | {ADMIN: (405, To("/manage/people/{signer}/")), SUPER: (405, To("/manage/people/{signer}/"))},
    "manage_person_exemption": MANAGE_POST | {ADMIN: (405, 400), SUPER: (405, 400)},
    # An empty form is refused with its errors; nothing is added or changed.
    "manage_person_new": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_person_edit": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_person_invite": MANAGE_POST
    | {ADMIN: PERSON_PAGE_AFTER_POST, SUPER: PERSON_PAGE_AFTER_POST},
    # No leaving date: today.
    "manage_person_deactivate": MANAGE_POST
    | {ADMIN: PERSON_PAGE_AFTER_POST, SUPER: PERSON_PAGE_AFTER_POST},
    # The signer is active: reactivating them changes nothing.
    "manage_person_reactivate": MANAGE_POST
    | {ADMIN: PERSON_PAGE_AFTER_POST, SUPER: PERSON_PAGE_AFTER_POST},
    "manage_people_export": MANAGE_POST | {ADMIN: (405, 200), SUPER: (405, 200)},
    # An empty upload is refused with the form's error.
    "manage_people_import": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_people_import_job": MANAGE_GET,
    "manage_people_import_apply": MANAGE_POST
    | dict.fromkeys((ADMIN, SUPER), (405, To("/manage/people/import/{people_import}/"))),
    "manage_concerns": MANAGE_GET,
    # An invalid status is reported as a message on the list it came from.
    "manage_concern_status": MANAGE_POST
    | {ADMIN: (405, To("/manage/concerns/")), SUPER: (405, To("/manage/concerns/"))},
    "manage_concern_attachment": MANAGE_GET,
    # --- integrations (views/integrations.py): an empty name is refused with the form's error
    "manage_integrations": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_integration_revoke": MANAGE_POST
    | dict.fromkeys((ADMIN, SUPER), (405, To("/manage/integrations/"))),
    # --- webhooks (views/webhooks.py): an empty form is refused with its errors
    "manage_webhooks": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_webhook": MANAGE_FORM | {ADMIN: (200, 400), SUPER: (200, 400)},
    "manage_webhook_remove": MANAGE_POST
    | dict.fromkeys((ADMIN, SUPER), (405, To("/manage/integrations/webhooks/"))),
    "manage_webhook_resend": MANAGE_POST
    | dict.fromkeys((ADMIN, SUPER), (405, To("/manage/integrations/webhooks/{webhook}/"))),
    # --- SCIM (views/scim.py)
    "scim_users": SCIM,
    "scim_users_search": SCIM,
    "scim_user": SCIM,
    "scim_groups": SCIM,
    "scim_groups_search": SCIM,
    "scim_group": SCIM,
    "scim_service_provider_config": SCIM,
    "scim_resource_types": SCIM,
    "scim_resource_type": SCIM,
    "scim_schemas": SCIM,
    "scim_schema": SCIM,
    "scim_search": SCIM,
    "scim_not_found": SCIM,
    # --- the read API (api/endpoints.py); its schema and documentation are public
    "api:openapi-json": PUBLIC_GET,
    "api:openapi-view": PUBLIC_GET,
    "api:api-root": dict.fromkeys(ROLES, (404, 404)),
    "api_base": dict.fromkeys(ROLES, (404, 404)),
    "api_unknown": dict.fromkeys(ROLES, (404, 404)),
    "api:policies": READ_API,
    "api:policy": READ_API,
    "api:policy_figures": READ_API,
    "api:policy_people": READ_API,
    "api:person_status": READ_API,
    "api:acknowledgements": READ_API,
    "api:acknowledgement": READ_API,
    "api:receipt_download": READ_API,
    "api:ledger_checkpoint": READ_API,
    # --- reports (views/reports.py): GET only
    "reports_dashboard": REPORTS_GET,
    "reports_people": REPORTS_GET,
    "reports_person": REPORTS_GET,
    "reports_audit_log": REPORTS_GET,
    "reports_audit_log_csv": RECORDED_EXPORT,
    "declines": REPORTS_GET,
    "reports_export_csv": RECORDED_EXPORT,
    "reports_export_people_csv": RECORDED_EXPORT,
    "reports_export_xlsx": BACKGROUND_EXPORT,
    "reports_export_pdf": RECORDED_EXPORT,
    "reports_export_package": BACKGROUND_EXPORT,
    "reports_exports": REPORTS_GET,
    "reports_export_job": EXPORT_JOB_GET,
    "reports_export_download": EXPORT_JOB_GET,
    # The scenario's job is done: trying it again is refused with a message on its page.
    "reports_export_retry": {ANON: (405, LOGIN), SIGNER: (405, 403), OTHER: (405, 403)}
    | {ADMIN: (405, 404), AUDITOR: (405, To("/reports/exports/{job}/")), SUPER: (405, 404)},
    # --- the team page and reminders sent by hand (views/team.py): a manager's page is theirs
    # alone, anyone else gets the 404 of a page that does not exist; an empty reminder is a 400
    # for the manager. Reminding from a report list is for administrators; with nobody ticked
    # it is sent back to the list with a message.
    "team": {ANON: (LOGIN, 405), SIGNER: (200, 405)}
    | dict.fromkeys((OTHER, ADMIN, AUDITOR, SUPER), (404, 405)),
    "team_remind": {ANON: (405, LOGIN), SIGNER: (405, 400)}
    | dict.fromkeys((OTHER, ADMIN, AUDITOR, SUPER), (405, 404)),
    "reports_people_remind": MANAGE_POST
    | dict.fromkeys((ADMIN, SUPER), (405, To("/reports/policies/test-policy/people/"))),
    # --- the development outbox (views/outbox.py): only with DEBUG on, so never here
    "dev_outbox": DEVELOPMENT_ONLY,
    "dev_outbox_message": DEVELOPMENT_ONLY,
    "dev_outbox_html": DEVELOPMENT_ONLY,
    "dev_outbox_text": DEVELOPMENT_ONLY,
    "dev_outbox_attachment": DEVELOPMENT_ONLY,
}

# Which object a route's `pk` names, per URL name.
PK_OF = {
    "manage_revision": "published",
    "manage_retry_failed": "published",
    "manage_draft_edit": "draft",
    "manage_translation": "draft",
    "manage_draft_delete": "draft",
    "manage_publish": "draft",
    "manage_person": "signer",
    "manage_person_audiences": "signer",
    "manage_person_exemption": "signer",
    "manage_person_edit": "signer",
    "manage_person_invite": "signer",
    "manage_person_deactivate": "signer",
    "manage_person_reactivate": "signer",
    "manage_people_import_job": "people_import",
    "manage_people_import_apply": "people_import",
    "reports_person": "signer",
    "manage_concern_status": "concern",
    "manage_concern_attachment": "concern",
    "reports_export_job": "job",
    "reports_export_download": "job",
    "reports_export_retry": "job",
    "manage_integration_revoke": "api_token",
    "manage_webhook": "webhook",
    "manage_webhook_remove": "webhook",
    "manage_webhook_resend": "webhook_delivery",
}

_EXPORTS = [
    "reports_export_csv",
    "reports_export_people_csv",
    "reports_export_pdf",
    "reports_audit_log_csv",
]
_BACKGROUND_EXPORTS = ["reports_export_xlsx", "reports_export_package"]
_WEBHOOK_WRITES = {
    "manage_webhook_remove": "removes the endpoint",
    "manage_webhook_resend": "queues the delivery again",
}
# The requests that may change something (every other one must leave the state as it was).
WRITES = {
    ("policy_detail", ADMIN, "GET"): "records that the administrator opened what they must sign",
    ("decline", SIGNER, "POST"): "records a decline (its reason is optional)",
    ("decline", ADMIN, "POST"): "records a decline (its reason is optional)",
    ("receipt_download", ADMIN, "GET"): "a receipt read by someone else than its signer",
    ("receipt_download", AUDITOR, "GET"): "a receipt read by someone else than its signer",
    ("receipt_download", SUPER, "GET"): "a receipt read by someone else than its signer",
    ("manage_publish", ADMIN, "POST"): "publishes draft 2.0",
    ("manage_publish", SUPER, "POST"): "publishes draft 2.0",
    ("manage_retry_failed", ADMIN, "POST"): "queues the failed email again",
    ("manage_retry_failed", SUPER, "POST"): "queues the failed email again",
    ("manage_person_audiences", ADMIN, "POST"): "removes the signer from every audience",
    ("manage_person_audiences", SUPER, "POST"): "removes the signer from every audience",
    ("manage_person_invite", ADMIN, "POST"): "invites the signer again",
    ("manage_person_invite", SUPER, "POST"): "invites the signer again",
    ("manage_person_deactivate", ADMIN, "POST"): "records that the signer left today",
    ("manage_person_deactivate", SUPER, "POST"): "records that the signer left today",
    ("manage_people_export", ADMIN, "POST"): "an export is audited",
    ("manage_people_export", SUPER, "POST"): "an export is audited",
    ("manage_people_import_apply", ADMIN, "POST"): "applies the checked import",
    ("manage_people_import_apply", SUPER, "POST"): "applies the checked import",
    ("manage_integration_revoke", ADMIN, "POST"): "revokes the directory's token",
    ("manage_integration_revoke", SUPER, "POST"): "revokes the directory's token",
    **{(n, r, "POST"): w for n, w in _WEBHOOK_WRITES.items() for r in (ADMIN, SUPER)},
    **{(n, r, "POST"): "an export is audited" for n in _EXPORTS for r in (ADMIN, AUDITOR, SUPER)},
    **{
        (n, r, "POST"): "queues an export job"
        for n in _BACKGROUND_EXPORTS
        for r in (ADMIN, AUDITOR, SUPER)
    },
}

# allauth (/accounts/) and the Django admin (/django-admin/) bring dozens of URLs of their own,
# protected by their own code: they are not enumerated here but checked by a representative
# few in `test_third_party_urls`, so they are left out of the "every URL has a row" rule.
THIRD_PARTY_PREFIXES = ("accounts/", "django-admin/")
NAMESPACE = "acknowledgements"


# --- Discovering the URLs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # the full pattern, e.g. "manage/revisions/<int:pk>/"
    name: str | None  # "namespace:name"
    params: tuple[str, ...]


def discover(resolver=None, prefix: str = "", namespace: str = "") -> list[Route]:
    """Every URL pattern of the project, with its full route and namespaced name."""
    found = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found += discover(entry, route, inner)
        elif isinstance(entry, URLPattern):
            pattern = entry.pattern
            converters = getattr(pattern, "converters", None)
            params = tuple(converters) if converters else tuple(pattern.regex.groupindex)
            name = f"{namespace}{entry.name}" if entry.name else None
            found.append(Route(route, name, params))
    return found


def portal_routes() -> dict[str, Route]:
    """The portal's own URLs by name (without the namespace)."""
    return {
        route.name.removeprefix(f"{NAMESPACE}:"): route
        for route in discover()
        if route.name and route.name.startswith(f"{NAMESPACE}:")
    }


# --- The scenario ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    people: dict[str, User]  # by role, and "decliner"
    policy: Policy
    published: PolicyRevision
    draft: PolicyRevision
    acknowledgement: Acknowledgement
    concern: ConcernReport
    job: ExportJob
    people_import: PeopleImport
    api_token: ApiToken

    @property
    def ids(self) -> dict[str, int]:
        return {
            "published": self.published.pk,
            "draft": self.draft.pk,
            "signer": self.people[SIGNER].pk,
            "concern": self.concern.pk,
            "job": self.job.pk,
            "people_import": self.people_import.pk,
            "api_token": self.api_token.pk,
            # Read back (None once a request removed them): the scenario makes one of each.
            "webhook": WebhookEndpoint.objects.values_list("pk", flat=True).first(),
            "webhook_delivery": WebhookDelivery.objects.values_list("pk", flat=True).first(),
        }

    def url(self, name: str, params: tuple[str, ...]) -> str:
        values = {
            "slug": self.policy.slug,
            "version": self.published.version,
            "receipt_number": self.acknowledgement.receipt_number,
            "language": "fr",  # a translation's language (English is the authoritative text)
            # SCIM: the signer's id (also an audience's: any id gets the same 401), a schema,
            # a resource type, and an address under the base URL that names nothing.
            "scim_id": str(self.people[SIGNER].pk),
            "schema_id": "urn:ietf:params:scim:schemas:core:2.0:User",
            "resource_type": "User",
            "unknown": "Nothing",
            "rest": "nothing",  # an address under /api/ that the read API does not have
            # The development outbox: a message's name, and its first attachment.
            "message": "20260101T000000000000Z-00000000",
            "number": 1,
            # The ledger's latest checkpoint (the receipt's issuing signed one).
            "size": LedgerCheckpoint.objects.order_by("-tree_size")
            .values_list("tree_size", flat=True)
            .first(),
        }
        kwargs = {}
        for param in params:
            if param == "pk":
                assert name in PK_OF, f"say in PK_OF which object the pk of {name!r} names"
                kwargs[param] = self.ids[PK_OF[name]]
            else:
                assert param in values, f"no value for the route parameter {param!r} of {name!r}"
                kwargs[param] = values[param]
        return reverse(f"{NAMESPACE}:{name}", kwargs=kwargs)


def _person(name: str, email: str, audience: str | None = None, role: str | None = None) -> User:
    person = User.objects.create_user(
        email=email,
        password=PASSWORD,
        full_name=name,
        date_joined=timezone.now() - dt.timedelta(days=365),
    )
    if audience:
        person.audiences.add(Audience.objects.get(slug=audience))
    if role:
        person.groups.add(Group.objects.get(name=role))
    return person


def _build() -> Scenario:
    people = {
        SIGNER: _person("Ada Lovelace", "ada@example.com", "employees"),
        "decliner": _person("Blaise Pascal", "blaise@example.com", "employees"),
        OTHER: _person("Charles Babbage", "charles@example.com", "contractors"),
        ADMIN: _person("Grace Hopper", "grace@example.com", "employees", POLICY_ADMINISTRATORS),
        AUDITOR: _person("Alan Turing", "alan@example.com", None, AUDITORS),
        SUPER: User.objects.create_superuser(
            email="root@example.com", password=PASSWORD, full_name="Root Superuser"
        ),
    }
    policy = policy_actions.create_policy(
        actor=None,
        name="Test Policy",
        slug="test-policy",
        owner=None,
        audiences=[Audience.objects.get(slug="employees")],
    )

    def draft(version: str) -> PolicyRevision:
        return policy_actions.create_draft(
            actor=None,
            policy=policy,
            version=version,
            body=f"{POLICY_BODY}\nVersion {version}.\n",
            change=PolicyRevision.Change.MATERIAL,
            effective_at=timezone.now() - dt.timedelta(seconds=1),
            due_days=DUE_DAYS,
        )

    published = policy_actions.publish_revision(actor=None, revision=draft("1.0"))
    people["decliner"].manager = people[SIGNER]
    people["decliner"].save(update_fields=["manager"])
    with TestCase.captureOnCommitCallbacks(execute=True):  # issues the sealed receipt
        acknowledgement = signing_actions.record_acknowledgement(
            person=people[SIGNER],
            policy_slug=published.policy.slug,
            version=published.version,
            typed_name=people[SIGNER].full_name,
            checkbox_ticked=True,
            consent_accepted=True,
            client=client_evidence(),
        )
    assert Receipt.objects.filter(acknowledgement=acknowledgement).exists()
    signing_actions.record_decline(
        person=people["decliner"], revision=published, reason="No.", client=client_evidence()
    )
    # A failed email, so that retrying (manage_retry_failed) has something to do.
    Notification.objects.create(
        person=people["decliner"],
        revision=published,
        kind=Notification.Kind.ANNOUNCEMENT,
        status=Notification.Status.FAILED,
        attempts=5,
        last_error="550 mailbox unavailable",
    )
    concern = concern_actions.report_concern(
        reporter=people[SIGNER],
        category=ConcernReport.Category.SECURITY,
        description="A laptop was left unlocked.",
        anonymous=False,
        attachment=SimpleUploadedFile("note.txt", b"what I saw\n"),
    )
    # The auditor's workbook, built (tasks run after commit, which the scenario never reaches).
    job = export_jobs.request_export(
        actor=people[AUDITOR],
        kind=ExportJob.Kind.XLSX,
        policy=policy,
        as_of=timezone.now(),
        filters={},
        filename="test-policy-acknowledgements.xlsx",
    )
    export_jobs.build_export(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE, job.error
    # An administrator's import, checked and waiting to be applied.
    people_import = import_jobs.request_import(
        actor=people[ADMIN],
        upload=SimpleUploadedFile("people.csv", b"email,full_name\nnew@example.com,New Person\n"),
        invite=False,
    )
    import_jobs.plan_job(job_id=people_import.pk)
    people_import.refresh_from_db()
    assert people_import.status == PeopleImport.Status.PLANNED, people_import.error
    # The directory's SCIM token, which administrators may revoke.
    api_token, _secret = scim_auth.create_api_token(actor=None, name="directory")
    # A webhook endpoint and one delivery in its log, which administrators may send again.
    webhook, _secret = webhook_actions.register_endpoint(
        actor=None, url="https://93.184.215.14/hooks", events=["acknowledgement.signed"]
    )
    WebhookDelivery.objects.create(
        endpoint=webhook, event_id="msg_1", event_type="acknowledgement.signed", body="{}"
    )
    return Scenario(
        people,
        policy,
        published,
        draft("2.0"),
        acknowledgement,
        concern,
        job,
        people_import,
        api_token,
    )


@pytest.fixture(scope="module")
def scenario(django_db_setup, django_db_blocker):
    """The scenario, built once in a transaction rolled back after the module's last test.

    Each test's `db` fixture runs in a savepoint inside it, so what a request changes is undone
    after that test. Rolling back (not deleting) also suits PostgreSQL, whose triggers refuse to
    delete evidence.
    """
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            set_evidence_triggers(True)  # as migrated: /readyz checks them (PostgreSQL)
            built = _build()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    yield built
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _defaults(settings):
    """The defaults this table assumes, whatever the environment of the test run says."""
    settings.PORTAL_REQUIRE_MFA_FOR_STAFF = False
    settings.PORTAL_SIGNING_REAUTH_MINUTES = 30


def signed_in(role: str, scenario: Scenario) -> Client:
    """A client for a role, signed in through the real sign-in form (anonymous: not at all)."""
    client = Client()
    if role != ANON:
        response = client.post(
            "/accounts/login/", {"login": scenario.people[role].email, "password": PASSWORD}
        )
        assert response.status_code == 302, f"{role} could not sign in"
    return client


def fetch(client: Client, method: str, path: str, data: dict | None = None):
    response = client.get(path) if method == "GET" else client.post(path, data or {})
    if response.streaming:  # read to the end: the test client then closes the file
        b"".join(response.streaming_content)
    # Never call response.close() here: it sends request_finished, whose handler closes the
    # database connection (and the transaction the scenario lives in) on PostgreSQL.
    return response


def state() -> dict:
    """What a request must leave as it was, unless it is listed in WRITES."""
    return {
        "ledger entries": LedgerEntry.objects.count(),
        "revisions": list(PolicyRevision.objects.order_by("pk").values_list("pk", "status")),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", "status")),
        "acknowledgements": Acknowledgement.objects.count(),
        "policies": list(Policy.objects.order_by("pk").values_list("pk", "slug")),
        "policy audiences": sorted(
            Policy.audiences.through.objects.values_list("policy_id", "audience_id")
        ),
        "memberships": sorted(User.audiences.through.objects.values_list("user_id", "audience_id")),
        "people": list(
            User.objects.order_by("pk").values_list(
                "pk",
                "email",
                "full_name",
                "gate_exemption",
                "preferred_language",
                "is_active",
                "left_at",
                "manager",
                "external_id",
                "invited_at",
            )
        ),
        "concerns": list(ConcernReport.objects.order_by("pk").values_list("pk", "status")),
        "export jobs": list(ExportJob.objects.order_by("pk").values_list("pk", "status")),
        "people imports": list(PeopleImport.objects.order_by("pk").values_list("pk", "status")),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        "webhooks": list(WebhookEndpoint.objects.order_by("pk").values_list("pk", "active")),
        "deliveries": list(WebhookDelivery.objects.order_by("pk").values_list("pk", "status")),
    }


# --- The matrix -----------------------------------------------------------------------------------


def _describe(expected: Cell) -> str:
    return f"302->{expected.location}" if isinstance(expected, To) else str(expected)


def _cases():
    for name, row in TABLE.items():
        for role in ROLES:
            for method, expected in zip(METHODS, row[role], strict=True):
                marks = ()
                if isinstance(expected, Bug):
                    marks = pytest.mark.xfail(strict=True, reason=f"BUG: {expected.reason}")
                    expected = expected.expected
                yield pytest.param(
                    name, role, method, expected, id=f"{name}-{role}-{method}", marks=marks
                )


def test_every_portal_url_has_a_row():
    routes = portal_routes()
    missing = sorted(set(routes) - set(TABLE))
    assert not missing, f"URLs without a row in TABLE (add one): {missing}"
    stale = sorted(set(TABLE) - set(routes))
    assert not stale, f"rows in TABLE for URLs that no longer exist: {stale}"
    for name, row in TABLE.items():
        assert set(row) == set(ROLES), f"{name}: a cell per role"
        for param in routes[name].params:
            assert param != "pk" or name in PK_OF, f"{name}: say in PK_OF what its pk names"
    unowned = [
        route.route
        for route in discover()
        if not route.route.startswith(THIRD_PARTY_PREFIXES)
        and not (route.name or "").startswith(f"{NAMESPACE}:")
    ]
    assert not unowned, f"URLs outside the portal's namespace and the third-party ones: {unowned}"


@pytest.mark.parametrize(("name", "role", "method", "expected"), list(_cases()))
def test_access(scenario, db, name, role, method, expected):
    path = scenario.url(name, portal_routes()[name].params)
    client = signed_in(role, scenario)
    before = state()

    response = fetch(client, method, path)

    if isinstance(expected, To):
        assert response.status_code == 302, f"{method} {path} as {role}"
        location = response["Location"]
        if expected == LOGIN:
            assert location.startswith(f"{LOGIN_PREFIX}?next="), location
        elif expected.prefix:
            assert location.startswith(expected.location), location
        else:
            assert location == expected.location.format(**scenario.ids), location
    else:
        assert response.status_code == expected, (
            f"{method} {path} as {role}: {response.status_code}, expected {_describe(expected)}"
        )
    if (name, role, method) not in WRITES:
        assert state() == before, f"{method} {path} as {role} changed something"


# --- Another person's records (IDOR) ------------------------------------------------------------


@pytest.mark.parametrize("name", ["acknowledgement_detail", "receipt_download"])
def test_someone_elses_receipt_looks_like_one_that_does_not_exist(scenario, db, name):
    client = signed_in(OTHER, scenario)
    mine = reverse(f"{NAMESPACE}:{name}", args=[scenario.acknowledgement.receipt_number])
    nobodys = reverse(f"{NAMESPACE}:{name}", args=["VK-0000-0000-0000"])

    theirs, missing = fetch(client, "GET", mine), fetch(client, "GET", nobodys)

    assert theirs.status_code == missing.status_code == 404
    assert scenario.acknowledgement.receipt_number.encode() not in theirs.content


@pytest.mark.parametrize(
    ("role", "expected"), [(SIGNER, 200), (OTHER, 404), (ADMIN, 200), (AUDITOR, 200)]
)
def test_a_receipt_is_served_to_its_signer_and_to_staff_only(scenario, db, role, expected):
    path = reverse(f"{NAMESPACE}:receipt_download", args=[scenario.acknowledgement.receipt_number])
    client = signed_in(role, scenario)

    response = client.get(path)
    body = b"".join(response.streaming_content) if response.streaming else response.content

    assert response.status_code == expected
    assert body.startswith(b"%PDF-") == (expected == 200)


@pytest.mark.parametrize("name", ["reports_person", "manage_person"])
def test_another_persons_page_is_refused_to_a_signer(scenario, db, name):
    client = signed_in(OTHER, scenario)
    path = reverse(f"{NAMESPACE}:{name}", args=[scenario.people[SIGNER].pk])

    response = fetch(client, "GET", path)

    assert response.status_code == 403
    assert scenario.people[SIGNER].email.encode() not in response.content


@pytest.mark.parametrize("person", ["decliner", ADMIN, OTHER])
def test_a_manager_reminds_their_own_reports_only(scenario, db, person):
    """The signer manages the decliner: the team page shows them, and nobody else; reminding
    anyone else is the 404 of a person who does not exist, and changes nothing."""
    client = signed_in(SIGNER, scenario)
    target = scenario.people[person]
    before = state()

    page = fetch(client, "GET", reverse(f"{NAMESPACE}:team"))
    response = fetch(
        client,
        "POST",
        reverse(f"{NAMESPACE}:team_remind"),
        {"person": target.pk, "policy": "test-policy"},
    )

    assert (target.email.encode() in page.content) == (person == "decliner")
    if person == "decliner":
        assert response.status_code == 302
        assert Notification.objects.filter(
            person=target, kind=Notification.Kind.MANUAL_REMINDER
        ).exists()
    else:
        assert response.status_code == 404
        assert state() == before


@pytest.mark.parametrize("role", [SIGNER, ADMIN, AUDITOR, SUPER])
def test_a_draft_is_not_readable_on_the_signing_pages(scenario, db, role):
    path = reverse(f"{NAMESPACE}:revision_detail", args=["test-policy", scenario.draft.version])

    assert fetch(signed_in(role, scenario), "GET", path).status_code == 404


# --- CSRF -----------------------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_is_refused(scenario, db):
    client = Client(enforce_csrf_checks=True)
    client.get("/accounts/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    signed_in_page = client.post(
        "/accounts/login/",
        {"login": scenario.people[ADMIN].email, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert signed_in_page.status_code == 302
    token = client.cookies["csrftoken"].value  # rotated on sign-in
    path = reverse(f"{NAMESPACE}:manage_publish", args=[scenario.draft.pk])
    before = state()

    refused = fetch(client, "POST", path)

    assert refused.status_code == 403
    assert state() == before
    # The same request with its token goes through: the 403 was the missing token.
    published = fetch(client, "POST", path, {"csrfmiddlewaretoken": token})
    assert published.status_code == 302
    assert PolicyRevision.objects.get(pk=scenario.draft.pk).is_published


# --- allauth and the Django admin (a representative few) -------------------------------------------


@pytest.mark.parametrize(
    ("path", "role", "status", "location"),
    [
        ("/accounts/login/", ANON, 200, None),
        ("/accounts/2fa/", ANON, 302, f"{LOGIN_PREFIX}?next=/accounts/2fa/"),
        ("/accounts/2fa/", SIGNER, 200, None),
        ("/django-admin/", ANON, 302, "/django-admin/login/?next=/django-admin/"),
        ("/django-admin/", SIGNER, 302, "/django-admin/login/?next=/django-admin/"),
        ("/django-admin/", ADMIN, 302, "/django-admin/login/?next=/django-admin/"),
        ("/django-admin/", AUDITOR, 302, "/django-admin/login/?next=/django-admin/"),
        ("/django-admin/", SUPER, 200, None),
    ],
)
def test_third_party_urls(scenario, db, path, role, status, location):
    response = fetch(signed_in(role, scenario), "GET", path)

    assert response.status_code == status
    if location:
        assert response["Location"] == location


def test_the_scenario_is_what_the_table_assumes(scenario, db):
    """Nobody is overdue (the gate would redirect), and the records the table relies on exist."""
    for role in ROLES[1:]:
        standings = coverage.standings_for(scenario.people[role])
        assert not [s for s in standings if s.overdue], role
    assert not PolicyRevision.objects.get(pk=scenario.draft.pk).is_published
    assert PolicyRevision.objects.get(pk=scenario.published.pk).is_published
    assert ConcernReport.objects.get(pk=scenario.concern.pk).attachment
    assert Notification.objects.filter(status=Notification.Status.FAILED).count() == 1
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.DECLINED).count() == 1
    assert scenario.people[SUPER].is_superuser and scenario.people[SUPER].is_staff
