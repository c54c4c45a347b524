from django.contrib.auth.management.commands import createsuperuser
from django.db import transaction

from acknowledgements.models import User
from acknowledgements.people import access


class Command(createsuperuser.Command):
    help = (
        "Create a superuser. The staff and superuser roles it is given are audited ledger rows, "
        "granted by the system through this command, as grant_role records a grant."
    )
    via = "manage.py createsuperuser"

    def handle(self, *args, **options):
        # Django's command creates the account through the model's manager, which sits below
        # the audited actions; the roles it was given are recorded here, in the same transaction.
        database = options["database"]
        superusers = User.objects.db_manager(database).filter(is_superuser=True)
        with transaction.atomic(using=database):
            before = set(superusers.values_list("pk", flat=True))
            super().handle(*args, **options)
            for person in superusers.exclude(pk__in=before):
                access.record_roles_created_with(person=person, via=self.via)
