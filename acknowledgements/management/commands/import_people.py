from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from acknowledgements.people import import_apply, import_jobs, import_plan


class Command(BaseCommand):
    help = (
        "Import people from a CSV file (the columns of the people download: email, full_name, "
        "audiences, joined_at, manager_email, external_id, employee_number, active, left_at). "
        "Prints what each row does; --dry-run changes nothing. Importing the same file again "
        "changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; write nothing."
        )
        parser.add_argument(
            "--invite",
            action="store_true",
            help="Email each person the file adds their invitation (to set a password).",
        )

    def handle(self, *args, file: str, dry_run: bool, invite: bool, **options):
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}.") from error
        try:
            if dry_run:
                plan = import_plan.plan_import(data)
            else:
                plan = import_apply.apply_import(
                    data, actor=None, filename=path.name, inviting=invite
                )
        except import_plan.ImportRefused as refused:
            raise CommandError(str(refused)) from refused
        for row in plan.rows:
            if row.outcome == import_plan.Outcome.REFUSED:
                self.stdout.write(f"line {row.line}: refused ({'; '.join(row.reasons)})")
            elif row.outcome not in (import_plan.Outcome.UNCHANGED,):
                changed = ", ".join(row.changes) if row.changes else ""
                self.stdout.write(
                    f"line {row.line}: {row.outcome.value} {row.key}"
                    + (f" ({changed})" if changed else "")
                )
        if invite and not dry_run:
            invited = import_jobs.invite_added(plan, actor=None)
            self.stdout.write(f"Invitations queued: {invited}.")
        summary = ", ".join(f"{count} {name}" for name, count in plan.counts.items())
        verb = "Would import" if dry_run else "Imported"
        self.stdout.write(f"{verb} {len(plan.rows)} rows of {path.name}: {summary}.")
