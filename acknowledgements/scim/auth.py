"""Bearer tokens for the SCIM service: created and revoked (audited), and checked on each request.

A token is 256 random bits shown once; the portal keeps only its SHA-256, which is enough to
recognise it (a token is not a password: it has all the entropy a hash needs, so a slow hash
would only slow every request).
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

PREFIX = "aup_scim_"  # recognisable in a secret scanner's findings and in a configuration
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def via(token: ApiToken) -> str:
    """How the audit rows of a token's changes name it."""
    return f"scim token {token.name}"


@transaction.atomic
def create_api_token(
    *, actor: User | None, name: str, scope: str = ApiToken.Scope.SCIM
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never shown again; audited."""
    name = name.strip()
    if not name:
        raise ActionRefused(_("A token needs a name."))
    if ApiToken.objects.filter(name__iexact=name).exists():
        raise ActionRefused(
            _("A token named %(name)s exists or existed: choose another name.") % {"name": name}
        )
    secret = PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                name=name, token_sha256=_digest(secret), scope=scope, created_by=actor
            )
    except IntegrityError:
        raise ActionRefused(
            _("A token named %(name)s exists or existed: choose another name.") % {"name": name}
        ) from None
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


def authenticate(authorization: str, *, scope: str = ApiToken.Scope.SCIM) -> ApiToken | None:
    """The live token an `Authorization: Bearer ...` header carries, None for any other."""
    kind, _space, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if kind.lower() != "bearer" or not secret:
        return None
    token = ApiToken.objects.filter(token_sha256=_digest(secret), scope=scope).first()
    if token is None or token.revoked_at is not None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        # At most one write a minute per token, and never over a revocation made meanwhile.
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(last_used_at=now)
        token.last_used_at = now
    return token
