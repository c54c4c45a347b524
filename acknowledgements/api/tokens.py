"""Bearer tokens for the portal's doors for other systems (SCIM, the read API): created and
revoked (audited), and checked on each request.

A token is 256 random bits shown once; the portal keeps only its SHA-256, which is enough to
recognise it (a token is not a password: it has all the entropy a hash needs, so a slow hash
would only slow every request). A token opens the door of its scope and no other: a SCIM
token cannot read the API, a read token cannot provision people.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from acknowledgements.evidence.audit import record_admin_action
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import ApiToken, User

# Recognisable in a secret scanner's findings and in a configuration, with the door they open.
PREFIXES: dict[str, str] = {ApiToken.Scope.SCIM: "aup_scim_", ApiToken.Scope.READ: "aup_read_"}
# How the audit rows of what a token did name it ("scim token entra", "api token hr-system").
VIA: dict[str, str] = {ApiToken.Scope.SCIM: "scim token", ApiToken.Scope.READ: "api token"}
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def via(token: ApiToken) -> str:
    """How the audit rows of a token's changes and reads name it."""
    return f"{VIA.get(token.scope, 'token')} {token.name}"


@transaction.atomic
def create_api_token(*, actor: User | None, name: str, scope: str) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never shown again; audited."""
    name = name.strip()
    if not name:
        raise ActionRefused(_("A token needs a name."))
    if scope not in PREFIXES:
        raise ActionRefused(_("Choose what the token may do."))
    refused = _("A token named %(name)s exists or existed: choose another name.") % {"name": name}
    if ApiToken.objects.filter(name__iexact=name).exists():
        raise ActionRefused(refused)
    secret = PREFIXES[scope] + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                name=name, token_sha256=_digest(secret), scope=scope, created_by=actor
            )
    except IntegrityError:
        raise ActionRefused(refused) from None
    record_admin_action(
        actor=actor, action="api_token_created", details={"token": name, "scope": scope}
    )
    return token, secret


@transaction.atomic
def revoke_api_token(*, actor: User | None, token: ApiToken) -> ApiToken:
    """Revoke a token: its next request is refused. Revoking it again changes nothing."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    record_admin_action(
        actor=actor,
        action="api_token_revoked",
        details={"token": token.name, "scope": token.scope},
    )
    return token


def bearer_secret(authorization: str) -> str:
    """The secret of an `Authorization: Bearer ...` header ("" for any other header)."""
    kind, _space, secret = authorization.strip().partition(" ")
    return secret.strip() if kind.lower() == "bearer" else ""


def live_token(secret: str) -> ApiToken | None:
    """The token, of any scope, whose secret this is, unless it is revoked."""
    if not secret:
        return None
    token = ApiToken.objects.filter(token_sha256=_digest(secret)).first()
    return token if token is not None and token.revoked_at is None else None


def mark_used(token: ApiToken) -> None:
    """Note when the token was last used, to the minute (at most one write a minute)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        # Never over a revocation made meanwhile.
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(last_used_at=now)
        token.last_used_at = now


def authenticate(authorization: str, *, scope: str) -> ApiToken | None:
    """The live token of `scope` an `Authorization: Bearer ...` header carries, None for any
    other (missing, unknown, revoked, or of another scope)."""
    token = live_token(bearer_secret(authorization))
    if token is None or token.scope != scope:
        return None
    mark_used(token)
    return token
