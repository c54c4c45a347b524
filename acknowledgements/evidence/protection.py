"""Whether the database still protects the evidence: its triggers present and ENABLE ALWAYS.

The migrations make the evidence tables append-only with triggers that fire ALWAYS, even for
a session in `session_replication_role = replica` (which a routine `DISABLE TRIGGER ALL` then
`ENABLE TRIGGER ALL` quietly turns back into ORIGIN: ENABLE, not ALWAYS). Nothing about the
portal's behaviour shows the difference until someone uses it, so /readyz and `verify_ledger`
ask the catalogue instead. PostgreSQL only: SQLite, the laptop default, has no such triggers.
"""

from __future__ import annotations

from django.db import connection

# (table, trigger), as the migrations create them.
PROTECTING_TRIGGERS = [
    (f"acknowledgements_{table}", f"acknowledgements_{table}_{kind}")
    for table, kinds in {
        "ledgerentry": ("no_change", "no_truncate"),
        "acknowledgement": ("no_change", "no_truncate"),
        "receipt": ("no_change", "no_truncate"),
        "clientdetails": ("no_update",),
        "policyrevision": ("frozen", "no_truncate"),
        "policyrevision_audiences": ("frozen", "no_truncate"),
        "revisiontranslation": ("frozen", "no_truncate"),
        "ledgertreenode": ("no_change", "no_truncate"),
        "ledgercheckpoint": ("no_change", "no_truncate"),
    }.items()
    for kind in kinds
]
ALWAYS = "A"  # pg_trigger.tgenabled
STATES = {"O": "ENABLE (fires only in origin sessions)", "D": "disabled", "R": "ENABLE REPLICA"}


def weakened() -> list[str]:
    """What is wrong with the evidence's protection, one sentence each (empty: all is well)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND c.relname = ANY(%s)",
            [sorted({table for table, _trigger in PROTECTING_TRIGGERS})],
        )
        found = {(table, trigger): state for table, trigger, state in cursor.fetchall()}
    problems = []
    for table, trigger in PROTECTING_TRIGGERS:
        state = found.get((table, trigger))
        if state is None:
            problems.append(f"trigger {trigger} on {table} is missing")
        elif state != ALWAYS:
            shown = STATES.get(state, state)
            problems.append(f"trigger {trigger} on {table} is {shown}, not ENABLE ALWAYS")
    return problems
