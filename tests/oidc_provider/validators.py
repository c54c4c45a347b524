"""The claims the portal reads from its identity provider."""

from oauth2_provider.oauth2_validators import OAuth2Validator


class PortalClaimsValidator(OAuth2Validator):
    """ID token and userinfo carry email, email_verified, name and groups (Django's groups)."""

    # A claim not listed here is never released; groups come with the profile scope.
    oidc_claim_scope = OAuth2Validator.oidc_claim_scope | {"groups": "profile"}

    def get_additional_claims(self):
        return {
            "email": lambda request: request.user.email,
            "email_verified": lambda request: True,
            "name": lambda request: request.user.get_full_name(),
            "groups": lambda request: sorted(request.user.groups.values_list("name", flat=True)),
        }
