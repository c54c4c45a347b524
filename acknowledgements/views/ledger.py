"""The ledger's transparency log, for anyone: checkpoints, the key they are signed with, proofs.

They reveal hashes only, never evidence, so they answer without signing in; a witness, an
auditor's script or a signer holding a receipt can fetch them. Each proof costs O(log n)
(evidence/transparency.py), whatever the ledger's size.
"""

from __future__ import annotations

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from acknowledgements.evidence import transparency
from acknowledgements.models import LedgerCheckpoint

CHECKPOINTS_PER_PAGE = 1_000
MAX_SIZE = 2**63 - 1  # a tree size the database can hold; beyond, a parameter is nonsense


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, content_type="text/plain; charset=utf-8", status=status)


def _refused(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def _count(request, name: str) -> int:
    """A non-negative integer query parameter; ValueError naming it when absent or not one."""
    value = request.GET.get(name, "")
    if not value.isascii() or not value.isdigit() or int(value) > MAX_SIZE:
        raise ValueError(
            _("The parameter %(name)s must be a whole number from 0.") % {"name": name}
        )
    return int(value)


@require_safe
@never_cache
def ledger_checkpoint(request):
    """The latest signed checkpoint (C2SP tlog-checkpoint, signed-note), as plain text."""
    latest = transparency.latest()
    if latest is None:
        return _text(_("The ledger has no checkpoint yet.") + "\n", status=404)
    return _text(latest.note)


@require_safe
def ledger_key(request):
    """The verifier key checkpoints are signed with: name+keyid+base64(key)."""
    return _text(transparency.log_key().verifier + "\n")


@require_safe
def ledger_checkpoint_at(request, size: int):
    if size > MAX_SIZE:
        return _text(_("No checkpoint has that size.") + "\n", status=404)
    return _text(get_object_or_404(LedgerCheckpoint, tree_size=size).note)


@require_safe
def ledger_checkpoint_timestamp(request, size: int):
    """The checkpoint's RFC 3161 timestamp token (DER), over its note as /ledger/checkpoints/<size>
    serves it: `openssl ts -verify -data <note> -in <token> -token_in -CAfile <TSA's CA>`."""
    if size > MAX_SIZE:
        return _text(_("No checkpoint has that size.") + "\n", status=404)
    token = get_object_or_404(LedgerCheckpoint, tree_size=size).timestamp_token
    if not token:
        return _text(_("This checkpoint has no timestamp yet.") + "\n", status=404)
    response = HttpResponse(bytes(token), content_type="application/timestamp-reply")
    response["Content-Disposition"] = f'attachment; filename="checkpoint-{size}.tsr"'
    return response


@require_safe
@never_cache
def ledger_checkpoints(request):
    """Every checkpoint, oldest first, a page at a time (`after`: the last size seen)."""
    try:
        after = _count(request, "after") if "after" in request.GET else 0
    except ValueError as error:
        return _refused(str(error))
    page = list(
        LedgerCheckpoint.objects.filter(tree_size__gt=after)
        .annotate(
            timestamped=ExpressionWrapper(
                Q(timestamp_token__isnull=False), output_field=BooleanField()
            )
        )
        .order_by("tree_size")
        .values_list("tree_size", "root_hash", "created_at", "timestamped")[:CHECKPOINTS_PER_PAGE]
    )
    listed = [
        {
            "tree_size": size,
            "root_hash": transparency.b64(bytes.fromhex(root)),
            "created_at": created.isoformat(),
            "url": request.build_absolute_uri(
                reverse("acknowledgements:ledger_checkpoint_at", args=[size])
            ),
            # The RFC 3161 token proving when the checkpoint existed, once it has one.
            "timestamp_url": request.build_absolute_uri(
                reverse("acknowledgements:ledger_checkpoint_timestamp", args=[size])
            )
            if timestamped
            else None,
        }
        for size, root, created, timestamped in page
    ]
    following = None
    if len(page) == CHECKPOINTS_PER_PAGE:
        following = request.build_absolute_uri(
            f"{reverse('acknowledgements:ledger_checkpoints')}?after={page[-1][0]}"
        )
    return JsonResponse({"checkpoints": listed, "next": following})


@require_safe
def ledger_inclusion_proof(request):
    """The inclusion proof of leaf `index` (ledger sequence index + 1) in the tree of `size`."""
    try:
        index, size = _count(request, "index"), _count(request, "size")
        if index >= size:
            raise ValueError(_("The index must be smaller than the size."))
        hashes = transparency.inclusion_proof(index, size)
    except ValueError as error:
        return _refused(str(error))
    return JsonResponse(
        {"index": index, "size": size, "hashes": [transparency.b64(h) for h in hashes]}
    )


@require_safe
def ledger_consistency_proof(request):
    """The proof that the tree of `to` leaves extends the tree of `from` leaves."""
    try:
        first, second = _count(request, "from"), _count(request, "to")
        if first > second:
            raise ValueError(_("The parameter from must not be larger than to."))
        hashes = transparency.consistency_proof(first, second)
    except ValueError as error:
        return _refused(str(error))
    return JsonResponse(
        {"from": first, "to": second, "hashes": [transparency.b64(h) for h in hashes]}
    )


urlpatterns = [
    path("ledger/checkpoint", ledger_checkpoint, name="ledger_checkpoint"),
    path("ledger/key", ledger_key, name="ledger_key"),
    path("ledger/checkpoints/", ledger_checkpoints, name="ledger_checkpoints"),
    path("ledger/checkpoints/<int:size>", ledger_checkpoint_at, name="ledger_checkpoint_at"),
    path(
        "ledger/checkpoints/<int:size>.tsr",
        ledger_checkpoint_timestamp,
        name="ledger_checkpoint_timestamp",
    ),
    path("ledger/proof/inclusion", ledger_inclusion_proof, name="ledger_inclusion_proof"),
    path("ledger/proof/consistency", ledger_consistency_proof, name="ledger_consistency_proof"),
]
