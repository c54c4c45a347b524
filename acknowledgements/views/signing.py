"""What signers do: read policies, sign or decline them, keep and verify their receipts."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, prefetch_related_objects
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from acknowledgements import ratelimits
from acknowledgements.evidence import client_evidence
from acknowledgements.exceptions import ActionRefused, ConsentRequired
from acknowledgements.forms.signing import DeclineForm, SignForm, VerifyReceiptForm
from acknowledgements.models import (
    AUTHORITATIVE_LANGUAGE,
    TEXT_SHA256_RULE,
    Acknowledgement,
    LedgerEntry,
    Policy,
    PolicyRevision,
)
from acknowledgements.policies import diffs
from acknowledgements.policies.text import headings
from acknowledgements.receipts import actions as receipt_actions
from acknowledgements.receipts import verification
from acknowledgements.reports import personal_data
from acknowledgements.signing import actions as signing_actions
from acknowledgements.templatetags.policy_names import policy_name


@require_GET
@login_required
def home(request):
    standings = request.standings
    # Each policy is named in the page's language (policy_name): one query for all of them.
    prefetch_related_objects([standing.current for standing in standings], "translations")
    return render(request, "acknowledgements/home.html", {"standings": standings})


def _reading_language(request) -> str:
    """The language asked for (?lang=), else the person's own: a translation is shown if any."""
    asked = request.GET.get("lang", "")
    if asked in dict(settings.LANGUAGES):
        return asked
    return (translation.get_language() or AUTHORITATIVE_LANGUAGE).split("-")[0]


def _reading_context(
    request, policy: Policy, revision: PolicyRevision, language: str, **extra
) -> dict:
    shown = revision.text_in(language)
    return {
        "policy": policy,
        "revision": revision,
        "shown": shown,
        "other_languages": [
            code
            for code in [AUTHORITATIVE_LANGUAGE, *(t.language for t in revision.translations.all())]
            if code != shown.language
        ],
        "toc": headings(shown.body),
        **extra,
    }


@require_GET
@login_required
def policy_detail(request, slug: str):
    """The current revision of a policy, with the signing form when the person must sign it."""
    policy = get_object_or_404(Policy, slug=slug)
    standing = next((s for s in request.standings if s.policy.pk == policy.pk), None)
    if standing is None:
        raise Http404(_("No policy in effect applies to you under this address."))
    revision = standing.current
    language = revision.text_in(_reading_language(request)).language
    sign_form = decline_form = changes = None
    if standing.must_sign:
        if client_evidence.needs_fresh_sign_in(request):
            return _reauthenticate(request, policy)
        signing_actions.record_view(
            person=request.user,
            revision=revision,
            client=client_evidence.from_request(request),
            language=language,
        )
        changes = changes_since_signed(request.user, revision)
        sign_form = SignForm(
            person=request.user,
            needs_consent=not signing_actions.has_consented(request.user),
            initial={"language": language},
        )
        decline_form = DeclineForm(initial={"language": language})
    return render(
        request,
        "acknowledgements/policy_detail.html",
        _reading_context(
            request,
            policy,
            revision,
            language,
            standing=standing,
            sign_form=sign_form,
            decline_form=decline_form,
            changes_since_signed=changes,
        ),
    )


def changes_since_signed(person, revision: PolicyRevision) -> dict | None:
    """What changed between the last revision a person signed and the one they must sign now."""
    last = (
        Acknowledgement.objects.filter(person=person, revision__policy_id=revision.policy_id)
        .select_related("revision")
        .order_by("-signed_at")
        .first()
    )
    if last is None or last.revision_id == revision.pk:
        return None
    since = [
        r
        for r in revision.policy.revisions.published().in_publication_order()
        if last.revision.publication_position < r.publication_position
        and r.publication_position <= revision.publication_position
    ]
    return {
        "signed": last,
        "revisions": since,
        "rows": diffs.side_by_side(last.revision.body, revision.body),
    }


@require_GET
@login_required
def revision_detail(request, slug: str, version: str):
    """Any published revision of a policy, for reading what was signed earlier."""
    revision = get_object_or_404(
        PolicyRevision.objects.published().select_related("policy"),
        policy__slug=slug,
        version=version,
    )
    if not _may_read(request.user, revision):
        raise Http404(_("No policy in effect applies to you under this address."))
    return render(
        request,
        "acknowledgements/revision_detail.html",
        _reading_context(request, revision.policy, revision, _reading_language(request)),
    )


def _may_read(person, revision: PolicyRevision) -> bool:
    """A revision is readable by its audiences, by anyone with a record about it (to reread
    what they signed after changing audience), and by administrators and auditors."""
    if person.has_perm("acknowledgements.view_policyrevision"):
        return True
    if revision.audiences.filter(pk__in=person.audiences.values("pk")).exists():
        return True
    return LedgerEntry.objects.filter(person=person, revision=revision).exists()


def _revision_named(slug: str, version: str) -> PolicyRevision:
    """The revision a sign or decline URL names, in whatever state: the service decides, in
    its transaction, whether this person may sign it, and says why not. (A signature that
    goes through needs no lookup here: the service finds the revision itself.)"""
    return get_object_or_404(
        PolicyRevision.objects.select_related("policy"), policy__slug=slug, version=version
    )


def _refused(request, revision: PolicyRevision) -> bool:
    """Whether the person may not sign the revision (the reason is shown as a message)."""
    try:
        signing_actions.check_signable(person=request.user, revision=revision)
    except ActionRefused as refused:
        messages.error(request, str(refused))
        return True
    return False


def _reauthenticate(request, policy: Policy):
    """Send the person to confirm it is them, then back to the policy.

    With a password or a second factor, allauth asks for it; someone who only signs in through
    SSO goes round their identity provider again, which is asked to prompt for a fresh login.
    """
    back = reverse("acknowledgements:policy_detail", args=[policy.slug])
    person = request.user
    sso = person.socialaccount_set.first()
    if sso and not person.has_usable_password() and not person.authenticator_set.exists():
        login = reverse("openid_connect_login", kwargs={"provider_id": sso.provider})
        query = {"process": "login", "next": back, "auth_params": "prompt=login"}
        return redirect(f"{login}?{urlencode(query)}")
    return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': back})}")


@require_POST
@login_required
def sign(request, slug: str, version: str):
    if client_evidence.needs_fresh_sign_in(request):
        revision = _revision_named(slug, version)
        messages.warning(request, _("Please confirm it is you before signing."))
        return _reauthenticate(request, revision.policy)
    # Whether the consent box was needed is the service's to say: it reads the person's
    # consent in the statement that checks everything else about the signature.
    form = SignForm(request.POST, person=request.user, needs_consent=None)
    if form.is_valid():
        try:
            acknowledgement = signing_actions.record_acknowledgement(
                person=request.user,
                policy_slug=slug,
                version=version,
                typed_name=form.cleaned_data["typed_name"],
                checkbox_ticked=form.cleaned_data["agree"],
                consent_accepted=form.cleaned_data["consent"],
                client=client_evidence.from_request(
                    request, browser_time_zone=form.cleaned_data["browser_time_zone"]
                ),
                language=form.cleaned_data["language"],
                statement_language=form.cleaned_data["statement_language"],
            )
        except PolicyRevision.DoesNotExist:
            raise Http404 from None
        except ConsentRequired as refused:
            form.add_error("consent", str(refused))
        except ActionRefused as refused:  # not signable (the form checked the rest)
            messages.error(request, str(refused))
            return redirect("acknowledgements:home")
        else:
            return redirect(
                "acknowledgements:acknowledgement_detail",
                receipt_number=acknowledgement.receipt_number,
            )
    # The form is shown again only to someone who may sign this revision.
    revision = _revision_named(slug, version)
    if _refused(request, revision):
        return redirect("acknowledgements:home")
    form.show_consent(not signing_actions.has_consented(request.user))
    standing = next((s for s in request.standings if s.policy.pk == revision.policy_id), None)
    return render(
        request,
        "acknowledgements/policy_detail.html",
        _reading_context(
            request,
            revision.policy,
            revision,
            form.cleaned_data.get("language") or AUTHORITATIVE_LANGUAGE,
            standing=standing,
            sign_form=form,
            decline_form=DeclineForm(initial={"language": form.cleaned_data.get("language")}),
        ),
        status=400,
    )


# Declines a person may submit in a window: enough for any honest hesitation, few enough that a
# script posting in a loop is stopped (a repeated decline records nothing, but costs a lock).
DECLINES_PER_WINDOW = 5
DECLINE_WINDOW_SECONDS = 10 * 60


@require_POST
@login_required
def decline(request, slug: str, version: str):
    # Counted per person, not per address: a decline is recorded against the signed-in person.
    wait = ratelimits.seconds_until_allowed(
        f"decline:{request.user.pk}",
        limit=DECLINES_PER_WINDOW,
        window_seconds=DECLINE_WINDOW_SECONDS,
    )
    if wait is not None:
        response = HttpResponse(
            _("Too many declines in a short time. Please wait a few minutes and try again."),
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(wait)
        return response
    revision = _revision_named(slug, version)
    # A decline is evidence recorded against the person, as a signature is: the same check.
    if client_evidence.needs_fresh_sign_in(request):
        messages.warning(request, _("Please confirm it is you before declining."))
        return _reauthenticate(request, revision.policy)
    if _refused(request, revision):
        return redirect("acknowledgements:home")
    form = DeclineForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, errors[0])
        return redirect("acknowledgements:policy_detail", slug=slug)
    try:
        signing_actions.record_decline(
            person=request.user,
            revision=revision,
            reason=form.cleaned_data["reason"],
            client=client_evidence.from_request(request),
            language=form.cleaned_data["language"],
        )
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.warning(
            request,
            _(
                "You declined %(policy)s %(version)s. It is still required: administrators "
                "can see your decline and will follow up."
            )
            % {"policy": policy_name(revision), "version": revision.version},
        )
    return redirect("acknowledgements:home")


def _visible_acknowledgement(request, receipt_number: str) -> Acknowledgement:
    """The signer's own acknowledgement, or anyone's for auditors and administrators (else 404)."""
    acknowledgements = Acknowledgement.objects.select_related(
        "revision__policy", "person", "ledger_entry"
    )
    if not (request.user.is_auditor or request.user.is_policy_admin):
        acknowledgements = acknowledgements.filter(person=request.user)
    return get_object_or_404(acknowledgements, receipt_number=receipt_number)


@require_GET
@login_required
def acknowledgement_detail(request, receipt_number: str):
    acknowledgement = _visible_acknowledgement(request, receipt_number)
    receipt = getattr(acknowledgement, "receipt", None)
    return render(
        request,
        "acknowledgements/acknowledgement_detail.html",
        {"acknowledgement": acknowledgement, "receipt": receipt},
    )


@require_GET
@login_required
def receipt_download(request, receipt_number: str):
    acknowledgement = _visible_acknowledgement(request, receipt_number)
    receipt = getattr(acknowledgement, "receipt", None)
    if receipt is None:
        raise Http404(_("The receipt is still being prepared."))
    receipt_actions.record_receipt_access(actor=request.user, acknowledgement=acknowledgement)
    return FileResponse(
        receipt.pdf.open("rb"),
        as_attachment=True,
        filename=f"receipt-{receipt_number}.pdf",
        content_type="application/pdf",
    )


@require_GET
@login_required
def my_acknowledgements(request):
    events = (
        LedgerEntry.objects.filter(person=request.user)
        .filter(Q(kind=LedgerEntry.Kind.SIGNED) | Q(kind=LedgerEntry.Kind.DECLINED))
        .select_related("revision__policy")
        .prefetch_related("revision__translations")  # for the policies' names (policy_name)
        .order_by("-id")
    )
    acknowledgements = {
        ack.ledger_entry_id: ack
        for ack in Acknowledgement.objects.filter(person=request.user).select_related("receipt")
    }
    rows = [(event, acknowledgements.get(event.pk)) for event in events]
    return render(request, "acknowledgements/my_acknowledgements.html", {"rows": rows})


@require_GET
@login_required
def my_data(request):
    """Everything the portal holds about the signed-in person (JSON and their receipts)."""
    archive = personal_data.build_archive(request.user, settings.PORTAL_COMPANY_NAME)
    return FileResponse(
        archive,
        as_attachment=True,
        filename=f"my-policy-portal-data-{timezone.now():%Y%m%d}.zip",
        content_type="application/zip",
    )


# Room for the multipart envelope and the CSRF token around the largest receipt allowed.
VERIFY_ENVELOPE_BYTES = 64 * 1024


@csrf_exempt
@require_http_methods(["GET", "POST"])
def verify(request):
    """Anyone, signed in or not, can check whether a receipt is genuine."""
    # CsrfViewMiddleware would read the whole body to find the token: an upload declared
    # larger than any receipt is refused first, unread; _verify makes the same CSRF check.
    declared = request.META.get("CONTENT_LENGTH") or ""
    limit = settings.PORTAL_MAX_RECEIPT_UPLOAD_BYTES + VERIFY_ENVELOPE_BYTES
    if request.method == "POST" and declared.isdigit() and int(declared) > limit:
        form = VerifyReceiptForm.of_declared_size(int(declared))
        return _verify_page(request, form=form, status=400)
    return _verify(request)


def _verify_page(request, *, form, verdict=None, status: int = 200):
    """The verification page, with the roots a genuine seal chains to for the offline check."""
    return render(
        request,
        "acknowledgements/verify.html",
        {
            "form": form,
            "verdict": verdict,
            "trust_roots": verification.trust_roots(),
            "text_sha256_rule": TEXT_SHA256_RULE,
            "ledger_key_url": reverse("acknowledgements:ledger_key"),
            "ledger_checkpoint_url": reverse("acknowledgements:ledger_checkpoint"),
        },
        status=status,
    )


@csrf_protect
def _verify(request):
    verdict = None
    if request.method == "POST":
        limit = settings.PORTAL_VERIFY_UPLOADS_PER_MINUTE
        client = f"verify:{ratelimits.client_key(request)}"
        if (wait := ratelimits.seconds_until_allowed(client, limit=limit)) is not None:
            response = render(
                request,
                "acknowledgements/verify_limited.html",
                {"retry_after": wait, "limit": limit},
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
        form = VerifyReceiptForm(request.POST, request.FILES)
        if form.is_valid():
            verdict = verification.verify_receipt(form.cleaned_data["receipt"].read())
    else:
        form = VerifyReceiptForm()
    return _verify_page(
        request,
        form=form,
        verdict=verdict,
        status=400 if request.method == "POST" and not form.is_valid() else 200,
    )


urlpatterns = [
    path("", home, name="home"),
    path("policies/<slug:slug>/", policy_detail, name="policy_detail"),
    path("policies/<slug:slug>/v/<str:version>/", revision_detail, name="revision_detail"),
    path("policies/<slug:slug>/v/<str:version>/sign/", sign, name="sign"),
    path("policies/<slug:slug>/v/<str:version>/decline/", decline, name="decline"),
    path("acknowledgements/", my_acknowledgements, name="my_acknowledgements"),
    path("acknowledgements/my-data.zip", my_data, name="my_data"),
    path(
        "acknowledgements/<str:receipt_number>/",
        acknowledgement_detail,
        name="acknowledgement_detail",
    ),
    path(
        "acknowledgements/<str:receipt_number>/receipt.pdf",
        receipt_download,
        name="receipt_download",
    ),
    path("verify/", verify, name="verify"),
]
