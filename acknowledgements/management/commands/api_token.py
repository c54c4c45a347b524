from acknowledgements.management.token_commands import TokenCommand
from acknowledgements.models import ApiToken


class Command(TokenCommand):
    help = (
        "Read tokens for the read API at /api/v1/: `create --name NAME` prints the new token "
        "alone on the last line (it is shown only once), `revoke --name NAME` revokes it, "
        "`list` lists every read token."
    )
    scope = ApiToken.Scope.READ
    noun = "read token"
