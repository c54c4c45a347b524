"""Bearer tokens for the SCIM service: api/tokens.py's, with the SCIM scope.

A token made for the read API is not a SCIM token: `authenticate` here answers None for it.
"""

from __future__ import annotations

from acknowledgements.api import tokens
from acknowledgements.api.tokens import LAST_USED_PRECISION, revoke_api_token, via
from acknowledgements.models import ApiToken, User

__all__ = ["LAST_USED_PRECISION", "authenticate", "create_api_token", "revoke_api_token", "via"]


def create_api_token(
    *, actor: User | None, name: str, scope: str = ApiToken.Scope.SCIM
) -> tuple[ApiToken, str]:
    """Create a token (a SCIM one unless told) and return it with its secret; audited."""
    return tokens.create_api_token(actor=actor, name=name, scope=scope)


def authenticate(authorization: str) -> ApiToken | None:
    """The live SCIM token an `Authorization: Bearer ...` header carries, None for any other."""
    return tokens.authenticate(authorization, scope=ApiToken.Scope.SCIM)
