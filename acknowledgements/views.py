from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import evidence, services, verification
from .coverage import standing_for, standings_for
from .forms import DeclineForm, SignForm, VerifyReceiptForm
from .models import Acknowledgement, LedgerEntry, Policy, PolicyRevision
from .policy_text import headings


@require_GET
@login_required
def home(request):
    return render(request, "acknowledgements/home.html", {"standings": standings_for(request.user)})


def _reading_context(request, policy: Policy, revision: PolicyRevision, **extra) -> dict:
    return {
        "policy": policy,
        "revision": revision,
        "toc": headings(revision.body),
        **extra,
    }


@require_GET
@login_required
def policy_detail(request, slug: str):
    """The current revision of a policy, with the signing form when the person must sign it."""
    policy = get_object_or_404(Policy, slug=slug)
    standing = standing_for(request.user, policy)
    if standing is None:
        raise Http404(_("No policy in effect applies to you under this address."))
    revision = standing.current
    sign_form = decline_form = None
    if standing.must_sign:
        services.record_view(
            person=request.user, revision=revision, client=evidence.from_request(request)
        )
        sign_form = SignForm(
            person=request.user, needs_consent=not services.has_consented(request.user)
        )
        decline_form = DeclineForm()
    return render(
        request,
        "acknowledgements/policy_detail.html",
        _reading_context(
            request,
            policy,
            revision,
            standing=standing,
            sign_form=sign_form,
            decline_form=decline_form,
        ),
    )


@require_GET
@login_required
def revision_detail(request, slug: str, version: str):
    """Any published revision of a policy, for reading what was signed earlier."""
    revision = get_object_or_404(
        PolicyRevision.objects.published().select_related("policy"),
        policy__slug=slug,
        version=version,
    )
    return render(
        request,
        "acknowledgements/revision_detail.html",
        _reading_context(request, revision.policy, revision),
    )


def _signable_or_message(request, slug: str, version: str) -> PolicyRevision | None:
    policy = get_object_or_404(Policy, slug=slug)
    try:
        return services.signable_revision(person=request.user, policy=policy, version=version)
    except services.ActionRefused as refused:
        messages.error(request, str(refused))
        return None


@require_POST
@login_required
def sign(request, slug: str, version: str):
    revision = _signable_or_message(request, slug, version)
    if revision is None:
        return redirect("acknowledgements:home")
    form = SignForm(
        request.POST,
        person=request.user,
        needs_consent=not services.has_consented(request.user),
    )
    if not form.is_valid():
        standing = standing_for(request.user, revision.policy)
        return render(
            request,
            "acknowledgements/policy_detail.html",
            _reading_context(
                request,
                revision.policy,
                revision,
                standing=standing,
                sign_form=form,
                decline_form=DeclineForm(),
            ),
            status=400,
        )
    try:
        acknowledgement = services.record_acknowledgement(
            person=request.user,
            revision=revision,
            typed_name=form.cleaned_data["typed_name"],
            checkbox_ticked=form.cleaned_data["agree"],
            consent_accepted=form.cleaned_data.get("consent", False),
            client=evidence.from_request(
                request, browser_time_zone=form.cleaned_data["browser_time_zone"]
            ),
        )
    except services.ActionRefused as refused:
        messages.error(request, str(refused))
        return redirect("acknowledgements:policy_detail", slug=slug)
    return redirect(
        "acknowledgements:acknowledgement_detail", receipt_number=acknowledgement.receipt_number
    )


@require_POST
@login_required
def decline(request, slug: str, version: str):
    revision = _signable_or_message(request, slug, version)
    if revision is None:
        return redirect("acknowledgements:home")
    form = DeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The reason is too long (2,000 characters at most)."))
        return redirect("acknowledgements:policy_detail", slug=slug)
    try:
        services.record_decline(
            person=request.user,
            revision=revision,
            reason=form.cleaned_data["reason"],
            client=evidence.from_request(request),
        )
    except services.ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.warning(
            request,
            _(
                "You declined %(policy)s %(version)s. It is still required: administrators "
                "can see your decline and will follow up."
            )
            % {"policy": revision.policy.name, "version": revision.version},
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
        .order_by("-sequence")
    )
    acknowledgements = {
        ack.ledger_entry_id: ack
        for ack in Acknowledgement.objects.filter(person=request.user).select_related("receipt")
    }
    rows = [(event, acknowledgements.get(event.pk)) for event in events]
    return render(request, "acknowledgements/my_acknowledgements.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
def verify(request):
    """Anyone, signed in or not, can check whether a receipt is genuine."""
    verdict = None
    if request.method == "POST":
        form = VerifyReceiptForm(request.POST, request.FILES)
        if form.is_valid():
            verdict = verification.verify_receipt(form.cleaned_data["receipt"].read())
    else:
        form = VerifyReceiptForm()
    return render(
        request,
        "acknowledgements/verify.html",
        {"form": form, "verdict": verdict},
        status=400 if request.method == "POST" and not form.is_valid() else 200,
    )
