from django.core.management.base import BaseCommand, CommandError

from acknowledgements.exceptions import ActionRefused
from acknowledgements.models import User
from acknowledgements.people import access


class Command(BaseCommand):
    help = (
        f"Grant a role ({', '.join(access.ROLES)}) to a person, by email. The change is an "
        "audited ledger row; granting it again changes nothing."
    )
    # revoke_role is this command with held = False.
    held = True

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("role", help=", ".join(access.ROLES))

    def handle(self, *args, email: str, role: str, **options):
        person = User.objects.filter(email__iexact=email.strip()).first()
        if person is None:
            raise CommandError(f"Nobody has the address {email}.")
        try:
            changed = access.set_role(actor=None, person=person, role=role, held=self.held)
        except ActionRefused as refused:
            raise CommandError(str(refused)) from refused
        state = "now" if self.held else "no longer"
        self.stdout.write(f"{person.email} is {state} {role}{'' if changed else ' (unchanged)'}.")
