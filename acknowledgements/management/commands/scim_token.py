from django.core.management.base import BaseCommand, CommandError

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import ApiToken
from acknowledgements.scim import auth


class Command(BaseCommand):
    help = (
        "Bearer tokens for the SCIM service at /scim/v2/: `create --name NAME` prints the new "
        "token alone on the last line (it is shown only once), `revoke --name NAME` revokes "
        "it, `list` lists every token."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a token and print it.")
        create.add_argument("--name", required=True, help="Which system holds the token.")
        revoke = actions.add_parser("revoke", help="Revoke a token.")
        revoke.add_argument("--name", required=True)
        actions.add_parser("list", help="List the tokens (never their secrets).")

    def handle(self, *args, action: str, **options):
        if action == "create":
            try:
                token, secret = auth.create_api_token(actor=None, name=options["name"])
            except ActionRefused as refused:
                raise CommandError(str(refused)) from refused
            self.stdout.write(f"Created the {token.scope} token {token.name}; it is shown once:")
            self.stdout.write(secret)
        elif action == "revoke":
            token = ApiToken.objects.filter(name__iexact=options["name"].strip()).first()
            if token is None:
                raise CommandError(f"No token is named {options['name']}.")
            was_revoked = token.is_revoked
            auth.revoke_api_token(actor=None, token=token)
            self.stdout.write(
                f"{token.name} was already revoked." if was_revoked else f"Revoked {token.name}."
            )
        else:
            for token in ApiToken.objects.select_related("created_by"):
                self.stdout.write(
                    "\t".join(
                        [
                            token.name,
                            token.scope,
                            f"created {token.created_at.isoformat(timespec='seconds')}",
                            "last used "
                            + (
                                token.last_used_at.isoformat(timespec="seconds")
                                if token.last_used_at
                                else "never"
                            ),
                            f"revoked {token.revoked_at.isoformat(timespec='seconds')}"
                            if token.revoked_at
                            else "active",
                        ]
                    )
                )
