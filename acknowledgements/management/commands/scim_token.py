from acknowledgements.management.token_commands import TokenCommand
from acknowledgements.models import ApiToken


class Command(TokenCommand):
    help = (
        "Bearer tokens for the SCIM service at /scim/v2/: `create --name NAME` prints the new "
        "token alone on the last line (it is shown only once), `revoke --name NAME` revokes "
        "it, `list` lists every token."
    )
    scope = ApiToken.Scope.SCIM
    # Made when every token was a SCIM one: it still revokes and lists them all.
    every_scope = True
