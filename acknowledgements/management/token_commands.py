"""The `create`, `revoke` and `list` of bearer tokens, shared by the `api_token` and `scim_token`
commands: each names the scope it creates, and whether it also sees the other scopes' tokens."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet

from acknowledgements.api import tokens
from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import ApiToken


def _moment(value: dt.datetime) -> str:
    return value.isoformat(timespec="seconds")


class TokenCommand(BaseCommand):
    scope: str  # of the tokens `create` makes
    noun = "token"  # how the command names one of its tokens
    # Whether `revoke` and `list` reach tokens of every scope (and `list` shows each one's).
    every_scope = False

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help=f"Create a {self.noun} and print it.")
        create.add_argument("--name", required=True, help="Which system holds the token.")
        revoke = actions.add_parser("revoke", help=f"Revoke a {self.noun}.")
        revoke.add_argument("--name", required=True)
        actions.add_parser("list", help=f"List the {self.noun}s (never their secrets).")

    def handle(self, *args, action: str, **options):
        if action == "create":
            self.create(options["name"])
        elif action == "revoke":
            self.revoke(options["name"])
        else:
            for token in self.tokens():
                self.stdout.write("\t".join(self.columns(token)))

    def tokens(self) -> QuerySet[ApiToken]:
        every = ApiToken.objects.all()
        return every if self.every_scope else every.filter(scope=self.scope)

    def create(self, name: str) -> None:
        try:
            token, secret = tokens.create_api_token(actor=None, name=name, scope=self.scope)
        except ActionRefused as refused:
            raise CommandError(str(refused)) from refused
        self.stdout.write(f"Created the {token.scope} token {token.name}; it is shown once:")
        self.stdout.write(secret)

    def revoke(self, name: str) -> None:
        token = self.tokens().filter(name__iexact=name.strip()).first()
        if token is None:
            raise CommandError(f"No {self.noun} is named {name}.")
        was_revoked = token.is_revoked
        tokens.revoke_api_token(actor=None, token=token)
        self.stdout.write(
            f"{token.name} was already revoked." if was_revoked else f"Revoked {token.name}."
        )

    def columns(self, token: ApiToken) -> list[str]:
        last_used = _moment(token.last_used_at) if token.last_used_at else "never"
        return [
            token.name,
            *([token.scope] if self.every_scope else []),
            f"created {_moment(token.created_at)}",
            f"last used {last_used}",
            f"revoked {_moment(token.revoked_at)}" if token.revoked_at else "active",
        ]
