from django.core.management.base import BaseCommand, CommandError

from acknowledgements.api import tokens
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import ApiToken


class Command(BaseCommand):
    help = (
        "Read tokens for the read API at /api/v1/: `create --name NAME` prints the new token "
        "alone on the last line (it is shown only once), `revoke --name NAME` revokes it, "
        "`list` lists every read token."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a read token and print it.")
        create.add_argument("--name", required=True, help="Which system holds the token.")
        revoke = actions.add_parser("revoke", help="Revoke a read token.")
        revoke.add_argument("--name", required=True)
        actions.add_parser("list", help="List the read tokens (never their secrets).")

    def handle(self, *args, action: str, **options):
        read_tokens = ApiToken.objects.filter(scope=ApiToken.Scope.READ)
        if action == "create":
            try:
                token, secret = tokens.create_api_token(
                    actor=None, name=options["name"], scope=ApiToken.Scope.READ
                )
            except ActionRefused as refused:
                raise CommandError(str(refused)) from refused
            self.stdout.write(f"Created the read token {token.name}; it is shown once:")
            self.stdout.write(secret)
        elif action == "revoke":
            token = read_tokens.filter(name__iexact=options["name"].strip()).first()
            if token is None:
                raise CommandError(f"No read token is named {options['name']}.")
            was_revoked = token.is_revoked
            tokens.revoke_api_token(actor=None, token=token)
            self.stdout.write(
                f"{token.name} was already revoked." if was_revoked else f"Revoked {token.name}."
            )
        else:
            for token in read_tokens:
                self.stdout.write(
                    "\t".join(
                        [
                            token.name,
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
