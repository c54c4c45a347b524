"""Give the portal's application role exactly the rights it needs, and no more (PostgreSQL).

Run as the owner of the tables (the role migrations run as), after every `migrate`:

    python manage.py grant_app_role portal_app [--password SECRET]

The application role (the web processes' and workers' DATABASE_URL) owns nothing, so it can
neither alter a table nor switch its triggers off; it reads and writes rows, but never
updates or deletes evidence (ledger entries only receive their place in the chain, once),
never truncates anything, and never changes client details it may only delete. The triggers
stay as the second line, and the hash chain as the last, against whoever does own the tables.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg2 import sql

# Evidence tables: what the application may do with their rows (nothing else).
EVIDENCE_RIGHTS = {
    "acknowledgements_ledgerentry": ["SELECT", "INSERT"],
    "acknowledgements_acknowledgement": ["SELECT", "INSERT"],
    "acknowledgements_receipt": ["SELECT", "INSERT"],
    "acknowledgements_clientdetails": ["SELECT", "INSERT", "DELETE"],
}
# A ledger entry is linked into the chain after its transaction commits: these columns only.
LEDGER_LINK_COLUMNS = ["sequence", "previous_hash", "row_hash"]
ORDINARY_RIGHTS = ["SELECT", "INSERT", "UPDATE", "DELETE"]


class Command(BaseCommand):
    help = (
        "Grant the application's database role what the portal needs on every table and "
        "sequence, and nothing that changes evidence or the schema (PostgreSQL; run as the "
        "tables' owner after each migrate). Creates the role if --password is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("role", help="The role the web processes and workers connect as.")
        parser.add_argument(
            "--password", help="Create the role (LOGIN) with this password, or set it."
        )

    def handle(self, *args, role: str, password: str | None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Database roles are a PostgreSQL matter; this database is not.")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            (owner,) = cursor.fetchone()
            if role == owner:
                raise CommandError(
                    f"{role} is the role running this command, which owns the tables: the "
                    "application must connect as another role."
                )
            self._ensure_role(cursor, role, password)
            tables = self._tables(cursor)
            self._grant(cursor, role, tables)
        self.stdout.write(
            f"{role} may read and write the portal's {len(tables)} tables, append evidence "
            "and link ledger entries; it owns nothing and may not alter, truncate, update or "
            "delete evidence."
        )

    def _ensure_role(self, cursor, role: str, password: str | None) -> None:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role])
        found = cursor.fetchone()
        name = sql.Identifier(role)
        if found is None:
            if password is None:
                raise CommandError(f"There is no role {role}: give --password to create it.")
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(name), [password])
        else:
            if found[0] or found[1]:
                raise CommandError(
                    f"{role} is a superuser (or bypasses row security): it could switch the "
                    "triggers off. The application must connect as an ordinary role."
                )
            if password is not None:
                cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(name), [password])
        cursor.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(connection.settings_dict["NAME"]), name
            )
        )
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))

    def _tables(self, cursor) -> list[str]:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = "
            "current_user ORDER BY tablename"
        )
        return [table for (table,) in cursor.fetchall()]

    def _grant(self, cursor, role: str, tables: list[str]) -> None:
        name = sql.Identifier(role)
        for table in tables:
            identifier = sql.Identifier(table)
            # Start from nothing, so that running it again after a change takes rights away too.
            cursor.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(identifier, name))
            rights = EVIDENCE_RIGHTS.get(table, ORDINARY_RIGHTS)
            cursor.execute(
                sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(right) for right in rights), identifier, name
                )
            )
        cursor.execute(
            sql.SQL("GRANT UPDATE ({}) ON TABLE {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in LEDGER_LINK_COLUMNS),
                sql.Identifier("acknowledgements_ledgerentry"),
                name,
            )
        )
        cursor.execute(
            sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name)
        )
        # Functions the triggers call run with the caller's rights; nothing else is needed.
        cursor.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(name)
        )
