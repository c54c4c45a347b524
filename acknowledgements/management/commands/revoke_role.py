from acknowledgements.management.commands import grant_role
from acknowledgements.people import access


class Command(grant_role.Command):
    help = (
        f"Revoke a role ({', '.join(access.ROLES)}) from a person, by email. The change is an "
        "audited ledger row; revoking a role they do not hold changes nothing."
    )
    held = False
