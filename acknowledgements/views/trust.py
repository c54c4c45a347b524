"""The roots a receipt's seal must chain to, for anyone to download and trust.

Without them a signer following /verify/'s offline recipe could not tell this portal's seal
from a look-alike's: pdfsig says "issuer isn't trusted" for both. The current root, and any
former root kept trusted after a rotation (PORTAL_SEALING_FORMER_ROOTS), each with its SHA-256
fingerprint on /verify/. Beside the current root, the certificate revocation list (CRL) it
signed, which the local CA's seal certificate names as its distribution point.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.urls import path
from django.views.decorators.http import require_safe

from acknowledgements.receipts import authority as receipt_authority
from acknowledgements.receipts import local_ca
from acknowledgements.receipts.verification import trusted_roots


@require_safe
def sealing_root(request, number: int = 0):
    """Root `number`: 0 the current one, 1.. the former ones in the order configured."""
    roots = trusted_roots(receipt_authority.load_sealing_identity())
    if number >= len(roots):
        raise Http404("No such root certificate.")
    name = "sealing-root.pem" if number == 0 else f"sealing-root-former-{number}.pem"
    response = HttpResponse(roots[number], content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_safe
def sealing_root_crl(request):
    """The local sealing root's CRL (DER); a configured certificate's CA publishes its own."""
    crls = receipt_authority.load_sealing_identity().crls
    if not crls:
        raise Http404("This portal publishes no CRL: its sealing certificate's CA does.")
    response = HttpResponse(crls[0], content_type="application/pkix-crl")
    response["Content-Disposition"] = 'attachment; filename="sealing-root.crl"'
    return response


urlpatterns = [
    path("verify/sealing-root.pem", sealing_root, name="sealing_root"),
    path(local_ca.CRL_PATH.removeprefix("/"), sealing_root_crl, name="sealing_root_crl"),
    path(
        "verify/sealing-root-former-<int:number>.pem",
        sealing_root,
        name="sealing_root_former",
    ),
]
